/**
 * Every ggml block decoder of the importer (quantizer/import/ggml-*.ts) against the tests'
 * own: blocks packed from known fields must decode to the values those fields stand for
 * (spec-blocks.ts), at ordinary and extreme scales (f16 max, the smallest subnormal, −0,
 * negative scales and both signs of mins), and random bytes (every bit pattern, NaN and
 * infinite scales included) must decode as the independent decoder of spec-decoders.ts does.
 * Comparisons are bit for bit.
 */
import { describe, expect, test } from "bun:test";
import { blockFormat, DEQUANTIZABLE, dequantizeGgml } from "../../runtime/import/ggml-dequantize.ts";
import { ggmlTypeByName } from "../../runtime/import/gguf-types.ts";
import { KSIGNS_IQ2XS } from "../../runtime/import/ggml-grids.ts";
import { type BlockFields, packBlock, PACKERS } from "./spec-blocks.ts";
import { SPEC, specDecode } from "./spec-decoders.ts";

/** Deterministic integers from a 32-bit LCG. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.floor((s / 2 ** 32) * n);
  };
}

/** First index whose bits differ (NaN equals NaN), or -1. */
function firstDifference(a: Float32Array, b: ArrayLike<number>): number {
  const want = Float32Array.from(b);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(want.buffer);
  if (a.length !== want.length) return Math.min(a.length, want.length);
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i] && !(Number.isNaN(a[i]!) && Number.isNaN(want[i]!))) return i;
  return -1;
}

function expectBits(got: Float32Array, want: ArrayLike<number>, what: string): void {
  const at = firstDifference(got, want);
  expect(at === -1 ? "identical" : `${what}: weight ${at} is ${got[at]}, expected ${want[at]}`).toBe("identical");
}

/** f16 bit patterns of the scales tried: ordinary, f16 max, smallest subnormal, −0, negative, large negative. */
const SCALES = [0x2e66, 0x7bff, 0x0001, 0x8000, 0xb800, 0xfbff, 0x3c00];
/** Second f16 (min / dmin): positive, negative, zero, extreme. */
const MINS = [0x3555, 0xb555, 0x0000, 0x7bff, 0x8001];

/** Random fields of a block of `type` in their valid ranges. */
function randomFields(type: string, next: (n: number) => number, d: number, dmin: number): BlockFields {
  const n = SPEC[type]!.weights;
  const ints = (count: number, lo: number, hi: number) => Array.from({ length: count }, () => lo + next(hi - lo + 1));
  switch (type) {
    case "Q4_0": case "Q4_1": case "IQ4_NL": return { d, dmin, q: ints(32, 0, 15) };
    case "Q5_0": case "Q5_1": return { d, dmin, q: ints(32, 0, 31) };
    case "Q8_0": return { d, q: ints(32, -128, 127) };
    case "Q2_K": return { d, dmin, sc: ints(16, 0, 15), m: ints(16, 0, 15), q: ints(n, 0, 3) };
    case "Q3_K": return { d, sc: ints(16, 0, 63), q: ints(n, 0, 7) };
    case "Q4_K": return { d, dmin, sc: ints(8, 0, 63), m: ints(8, 0, 63), q: ints(n, 0, 15) };
    case "Q5_K": return { d, dmin, sc: ints(8, 0, 63), m: ints(8, 0, 63), q: ints(n, 0, 31) };
    case "Q6_K": return { d, sc: ints(16, -128, 127), q: ints(n, 0, 63) };
    case "Q8_K": return { d, d32: [0.0123, -3.4e38, 1e-45, 7][next(4)]!, q: ints(n, -128, 127) };
    case "IQ4_XS": return { d, sc: ints(8, 0, 63), q: ints(n, 0, 15) };
    case "TQ1_0": case "TQ2_0": return { d, q: ints(n, 0, 2) };
    case "IQ2_XXS": return { d, sc: ints(8, 0, 15), grid: ints(32, 0, 255), signs: ints(32, 0, 127) };
    case "IQ2_XS": return { d, sc: ints(16, 0, 15), grid: ints(32, 0, 511), signs: ints(32, 0, 127) };
    case "IQ2_S": return { d, sc: ints(16, 0, 15), grid: ints(32, 0, 1023), signs: ints(32, 0, 255) };
    case "IQ3_XXS": return { d, sc: ints(8, 0, 15), grid: ints(64, 0, 255), signs: ints(32, 0, 127) };
    case "IQ3_S": return { d, sc: ints(8, 0, 15), grid: ints(64, 0, 511), signs: ints(32, 0, 255) };
    case "IQ1_S": return { d, sc: ints(8, 0, 7), grid: ints(32, 0, 2047), negDelta: ints(8, 0, 1).map((b) => b === 1) };
    case "IQ1_M": return { d, sc: ints(16, 0, 7), grid: ints(32, 0, 2047), negDelta: ints(32, 0, 1).map((b) => b === 1) };
    default: throw new Error(`no fields for ${type}`);
  }
}

const BLOCK_TYPES = Object.keys(SPEC);

test("every quantised type crumb lists has a decoder, a spec decoder and a packer with ggml's block sizes", () => {
  const quantised = DEQUANTIZABLE.filter((t) => !["F32", "F16", "BF16", "F64"].includes(t));
  expect(quantised.sort()).toEqual([...BLOCK_TYPES].sort());
  expect(Object.keys(PACKERS).sort()).toEqual([...BLOCK_TYPES].sort());
  for (const type of BLOCK_TYPES) {
    const info = ggmlTypeByName(type)!;
    expect([blockFormat(type)!.blockSize, blockFormat(type)!.typeSize]).toEqual([info.blockSize, info.typeSize]);
    expect([SPEC[type]!.weights, SPEC[type]!.bytes, PACKERS[type]!.bytes]).toEqual([info.blockSize, info.typeSize, info.typeSize]);
  }
});

describe("blocks with known fields decode to the values they stand for", () => {
  for (const type of BLOCK_TYPES) {
    test(type, () => {
      const next = rng(0x5eed + type.length * 977 + type.charCodeAt(1));
      let blocks = 0;
      for (const d of SCALES) {
        for (const dmin of MINS) {
          const fields = randomFields(type, next, d, dmin);
          const bytes = packBlock(type, fields);
          const want = PACKERS[type]!.expected(fields);
          const what = `${type} d=0x${d.toString(16)} dmin=0x${dmin.toString(16)}`;
          expectBits(specDecode(type, bytes), want, `${what} (spec decoder)`);
          expectBits(dequantizeGgml(type, bytes, SPEC[type]!.weights), want, what);
          blocks++;
        }
      }
      expect(blocks).toBe(SCALES.length * MINS.length);
    });
  }
});

describe("random bytes decode as the independent decoder does", () => {
  for (const type of BLOCK_TYPES) {
    test(type, () => {
      const next = rng(0xb10c + type.charCodeAt(0) * 31 + type.length);
      const { bytes: size, weights } = SPEC[type]!;
      const bytes = Uint8Array.from({ length: 64 * size }, () => next(256));
      const got = dequantizeGgml(type, bytes, 64 * weights);
      expectBits(got, specDecode(type, bytes), type);
      // The data are not degenerate: many distinct finite values came out.
      expect(new Set(Array.from(got).filter(Number.isFinite)).size).toBeGreaterThan(weights / 4);
    });
  }
});

describe("hand-computed values", () => {
  test("Q4_K: sub-block scale and min, including a negative dmin", () => {
    const sc = [1, 2, 3, 4, 63, 40, 17, 0];
    const m = [0, 1, 2, 3, 63, 33, 5, 9];
    const q = Array.from({ length: 256 }, (_, i) => i & 15);
    const dec = (dmin: number) => dequantizeGgml("Q4_K", packBlock("Q4_K", { d: 0x3c00, dmin, sc, m, q }), 256);
    const pos = dec(0x3800); // d 1, dmin 0.5
    expect([pos[0], pos[33], pos[128 + 7], pos[160 + 15], pos[224 + 3]]).toEqual([0, 2 * 1 - 0.5, 63 * 7 - 31.5, 40 * 15 - 16.5, 0 * 3 - 4.5]);
    const neg = dec(0xb800); // dmin −0.5: the mins are added
    expect([neg[33], neg[224 + 3]]).toEqual([2 + 0.5, 4.5]);
  });

  test("Q6_K: signed scale, codes centred on 32; Q3_K: cleared high bit subtracts 4", () => {
    const q6 = dequantizeGgml("Q6_K", packBlock("Q6_K", { d: 0x3800, sc: Array.from({ length: 16 }, (_, s) => (s === 3 ? -128 : s)), q: Array.from({ length: 256 }, (_, i) => (i === 50 ? 0 : i === 51 ? 63 : 32)) }), 256);
    // (0.5 · −128) · 0 is −0 in binary32, as in ggml.
    expect([q6[50], q6[51], q6[52]]).toEqual([0.5 * -128 * -32, 0.5 * -128 * 31, -0]);
    const q3 = dequantizeGgml("Q3_K", packBlock("Q3_K", { d: 0x3c00, sc: Array.from({ length: 16 }, () => 33), q: Array.from({ length: 256 }, (_, i) => i & 7) }), 256);
    expect(Array.from(q3.slice(0, 8))).toEqual([-4, -3, -2, -1, 0, 1, 2, 3]);
  });

  test("IQ4_NL levels and TQ1_0 / TQ2_0 trits", () => {
    const iq4 = dequantizeGgml("IQ4_NL", packBlock("IQ4_NL", { d: 0x3c00, q: Array.from({ length: 32 }, (_, i) => i & 15) }), 32);
    expect(Array.from(iq4.slice(0, 16))).toEqual([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]);
    const t = Array.from({ length: 256 }, (_, i) => (i * 7) % 3);
    for (const type of ["TQ1_0", "TQ2_0"]) {
      expect(Array.from(dequantizeGgml(type, packBlock(type, { d: 0x4000, q: t }), 256))).toEqual(t.map((v) => 2 * (v - 1)));
    }
  });

  test("IQ2_XXS: the 8th sign makes an even count of minus signs; IQ1_S deltas", () => {
    for (let k = 0; k < 128; k++) {
      let ones = 0;
      for (let j = 0; j < 8; j++) ones += (KSIGNS_IQ2XS[k]! >> j) & 1;
      expect([KSIGNS_IQ2XS[k]! & 127, ones % 2]).toEqual([k, 0]);
    }
    const w = dequantizeGgml("IQ2_XXS", packBlock("IQ2_XXS", { d: 0x3c00, sc: new Array(8).fill(1), grid: new Array(32).fill(0), signs: new Array(32).fill(1) }), 256);
    // Grid entry 0 is eight 0x08s; scale (1 + 0.5)/4; sign pattern 1 = weights 0 and 7 negative.
    expect(Array.from(w.slice(0, 8))).toEqual([-3, 3, 3, 3, 3, 3, 3, -3]);
    const s = dequantizeGgml("IQ1_S", packBlock("IQ1_S", { d: 0x3c00, sc: new Array(8).fill(0), grid: new Array(32).fill(0), negDelta: [true, false, true, false, true, false, true, false] }), 256);
    // Grid entry 0 is eight −1s; dl 1; delta −0.125 in even sub-blocks, +0.125 in odd ones.
    expect([s[0], s[32]]).toEqual([-1.125, -0.875]);
  });
});
