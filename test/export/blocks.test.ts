/**
 * The GGUF exporter's block writers against decoders written separately from the ggml
 * struct layouts (ggml-decoders.ts): every weight position of Q4_1, Q6_K and TQ2_0 lands
 * where ggml reads it, the exporter's own decoders agree bit for bit with the independent
 * ones, rounding errors stay within each type's step, and sources already on a target's
 * grid are transcoded exactly: crumb q8 groups → Q8_0, ternary groups → Q4_0 / TQ2_0,
 * Q4_0 blocks → Q4_1 / Q8_0. crumb's zero-point q4 groups → Q4_1 keep step and codes; they
 * are bit-exact exactly where the offset -d·z is an f16 value (checked group by group).
 */
import { describe, expect, test } from "bun:test";
import { InvalidArgumentError } from "../../runtime/errors.ts";
import { dequantize } from "../../runtime/format/pack-dequantize.ts";
import { roundToF16 } from "../../runtime/format/pack-f16.ts";
import { randomFloats } from "../fixtures/matmul-fixtures.ts";
import { quantizeAffine } from "../../quantizer/methods/affine.ts";
import { packQuantized } from "../../quantizer/methods/types.ts";
import { quantizeQ8 } from "../../quantizer/methods/q8.ts";
import { CODECS, encodeTensor, type GgufExportType } from "../../quantizer/export/tensor-codec.ts";
import { TEST_DECODERS, testDecodeQ4_1, testDecodeTq2_0 } from "./ggml-decoders.ts";

const TYPES = ["F16", "Q8_0", "Q4_0", "Q4_1", "Q6_K", "TQ2_0"] as const;

/** Equal f32 values everywhere (+0 and -0 are the same weight; every other value bit for bit). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Gaussian-ish weights with a few exact zeros and one large outlier per 256. */
function weights(n: number, seed: number): Float32Array {
  const x = randomFloats(n, seed, 0.05);
  for (let i = 0; i < n; i += 97) x[i] = 0;
  for (let i = 5; i < n; i += 256) x[i] = 0.9;
  return x;
}

describe("layouts: one weight at a time lands where ggml reads it", () => {
  for (const type of ["Q4_1", "Q6_K", "TQ2_0"] as const) {
    test(`${type}: a single non-zero weight decodes at its own index, for every index of a block`, () => {
      const n = 256;
      for (let i = 0; i < n; i++) {
        const x = new Float32Array(n);
        x[i] = 1;
        const decoded = TEST_DECODERS[type]!(encodeTensor(x, "F32", type).bytes, n);
        const nonZero = [...decoded.keys()].filter((k) => decoded[k] !== 0);
        expect(nonZero).toEqual([i]);
        // Q4_1 stores d = 1/15 as an f16, so 15*d is 1 only to f16 precision.
        expect(Math.abs(decoded[i]! - 1)).toBeLessThanOrEqual(type === "Q4_1" ? 2 ** -11 : 0);
      }
    });
  }
});

describe("round to nearest: the exporter's decoders agree with the independent ones, errors within a step", () => {
  const x = weights(256 * 12, 3);
  for (const type of TYPES) {
    test(type, () => {
      const r = encodeTensor(x, "F32", type);
      expect(r.bytes.length).toBe((x.length / CODECS[type].block) * CODECS[type].bytes);
      const ours = TEST_DECODERS[type]!(r.bytes, x.length);
      expect(sameBits(ours, CODECS[type].decode(r.bytes, x.length))).toBe(true);
      // The report describes the file: its error is the independent decoder's error.
      const maxError = ours.reduce((m, v, i) => Math.max(m, Math.abs(v - x[i]!)), 0);
      expect(r.maxError).toBe(maxError);
      for (let b = 0; b < x.length / 32; b++) {
        const block = x.subarray(32 * b, 32 * b + 32);
        const amax = block.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        const range = Math.max(...block) - Math.min(...block);
        const err = block.reduce((m, v, j) => Math.max(m, Math.abs(ours[32 * b + j]! - v)), 0);
        const bound = type === "F16" ? amax * 2 ** -11
          : type === "Q8_0" ? (amax / 127) * 0.5 + amax * 2 ** -10
          : type === "Q4_0" ? amax / 8 + amax * 2 ** -9
          : type === "Q4_1" ? (range / 15) * 0.5 + 2 ** -10 * (Math.abs(Math.min(...block)) + range)
          : Infinity;
        expect(err).toBeLessThanOrEqual(bound);
      }
      // 6-bit codes: rms error about a 50th of the weights' rms (Q8_0 reaches about a 200th).
      if (type === "Q6_K") expect(r.relRmsError).toBeLessThan(0.03);
      if (type === "TQ2_0") expect(new Set(ours.subarray(0, 256)).size).toBeLessThanOrEqual(3);
    });
  }

  test("TQ2_0 rounds as llama-quantize does: d = max|w| per 256, so weights already ternary come back exactly", () => {
    const t = Float32Array.from({ length: 512 }, (_, i) => (((i * 7) % 3) - 1) * (i < 256 ? 0.25 : 0.0625));
    const r = encodeTensor(t, "F32", "TQ2_0");
    expect(sameBits(testDecodeTq2_0(r.bytes, 512), t)).toBe(true);
    expect(r.exactValues).toBe(512);
  });

  test("rows that do not fill a block are refused, naming the types that fit", () => {
    expect(() => encodeTensor(new Float32Array(100), "F32", "Q6_K")).toThrow(InvalidArgumentError);
    expect(() => encodeTensor(new Float32Array(288), "F32", "TQ2_0")).toThrow(/Q4_0, Q8_0 or F16/);
    expect(() => encodeTensor(Float32Array.of(70000, ...new Array(31).fill(0)), "F32", "F16")).toThrow(/--type BF16 or F32/);
  });
});

describe("transcoding: sources already on the target's grid", () => {
  const rows = 64;
  const cols = 256;
  const w = randomFloats(rows * cols, 17, 0.05);

  test("crumb q8 g32 and g64 → Q8_0: bit-exact", () => {
    for (const group of [32, 64]) {
      const q = quantizeQ8(w, rows, cols, group);
      const values = dequantize(q.encoding, packQuantized(q, rows, cols), rows, cols);
      const r = encodeTensor(values, `q8g${group}`, "Q8_0");
      expect(r.gridBlocks).toBe(r.blocks);
      expect(sameBits(TEST_DECODERS.Q8_0!(r.bytes, values.length), values)).toBe(true);
    }
  });

  test("crumb q4 zero-point groups → Q4_1: the step and codes are kept; exact where -d·z is an f16, else one f16 rounding of the offset", () => {
    for (const group of [32, 128] as const) {
      const q = quantizeAffine("rtn", { weights: w, rows, cols, group, bits: 4 }, undefined, true);
      if (!("zeros" in q)) throw new Error("expected a zero-point matrix");
      const values = dequantize(q.encoding, packQuantized(q, rows, cols), rows, cols);
      const r = encodeTensor(values, `q4g${group}zp`, "Q4_1");
      expect(r.gridBlocks).toBe(r.blocks);
      const got = testDecodeQ4_1(r.bytes, values.length);
      let representable = 0;
      let exact = 0;
      for (let b = 0; b < values.length / 32; b++) {
        const g = Math.floor((b * 32) / group); // (row, group) index: rows are whole groups
        const d = q.scales[g]!;
        const offset = -d * q.zeros[g]!;
        const diffs = Array.from({ length: 32 }, (_, j) => got[32 * b + j]! - values[32 * b + j]!);
        const isExact = diffs.every((e) => e === 0);
        if (roundToF16(offset) === offset) {
          representable++;
          expect(isExact).toBe(true);
        }
        if (isExact) exact++;
        // One shift for the whole block (up to f32 rounding of the weights), no larger than
        // the f16 rounding of the stored offset: the grid itself is untouched.
        const ulp32 = 2 ** -23 * Math.max(...values.subarray(32 * b, 32 * b + 32).map(Math.abs));
        for (const e of diffs) expect(Math.abs(e - diffs[0]!)).toBeLessThanOrEqual(2 * ulp32);
        expect(Math.abs(diffs[0]!)).toBeLessThanOrEqual(2 ** -11 * Math.abs(offset) + 2 * ulp32);
        expect(Math.abs(diffs[0]!)).toBeLessThan(0.005 * d);
      }
      expect(exact).toBeGreaterThanOrEqual(representable);
      expect(r.exactValues).toBe(exact * 32);
    }
  });

  test("zero-point groups whose offsets are f16 values (integer z, power-of-two d) → Q4_1 bit-exact", () => {
    const codes = Uint8Array.from({ length: rows * cols }, (_, i) => (i * 11 + (i >> 5)) % 16);
    const scales = Float32Array.from({ length: rows * (cols / 32) }, (_, g) => 2 ** (-8 - (g % 5)));
    const zeros = Float32Array.from({ length: rows * (cols / 32) }, (_, g) => g % 16);
    const e = { kind: "bitplane", bits: 4, group: 32, scales: "zero-point" } as const;
    const values = dequantize(e, packQuantized({ encoding: e, codes, scales, zeros }, rows, cols), rows, cols);
    const r = encodeTensor(values, "q4g32zp", "Q4_1");
    expect(sameBits(testDecodeQ4_1(r.bytes, values.length), values)).toBe(true);
  });

  test("an exact offset below the grid's lowest level, or above its highest, is found by the offset search", () => {
    // w = d*q with d = 1 + 2^-10 (11 significant bits) and codes 3..12: the lowest level 3d
    // needs 12 bits, so only the offset 0 (codes shifted up by 3) is exact; mirrored, -12..-3.
    const d = 1 + 2 ** -10;
    for (const sign of [1, -1]) {
      const v = Float32Array.from({ length: 32 }, (_, j) => sign * d * (3 + (j % 10)));
      expect(roundToF16(3 * d)).not.toBe(3 * d);
      const r = encodeTensor(v, "q4g32zp", "Q4_1");
      expect(sameBits(testDecodeQ4_1(r.bytes, 32), v)).toBe(true);
    }
  });

  test("ternary groups → Q4_0 bit-exact; → TQ2_0 exact when a 256-block shares one scale, else trits kept with the mean |w|", () => {
    const trits = Int8Array.from({ length: rows * cols }, (_, i) => ((i * 5 + (i >> 3)) % 3) - 1);
    const shared = Float32Array.from({ length: rows * (cols / 64) }, (_, g) => roundToF16(0.01 * (1 + (g >> 2))));
    const varied = Float32Array.from({ length: rows * (cols / 64) }, (_, g) => roundToF16(0.01 * (1 + (g % 3))));
    const e = { kind: "ternary", group: 64, planes: 1 } as const;
    for (const alphas of [shared, varied]) {
      const values = dequantize(e, packQuantized({ encoding: e, trits, alphas }, rows, cols), rows, cols);
      const q40 = encodeTensor(values, "t1g64", "Q4_0");
      expect(sameBits(TEST_DECODERS.Q4_0!(q40.bytes, values.length), values)).toBe(true);
      const tq = encodeTensor(values, "t1g64", "TQ2_0");
      const got = testDecodeTq2_0(tq.bytes, values.length);
      if (alphas === shared) expect(sameBits(got, values)).toBe(true);
      for (let i = 0; i < values.length; i++) expect(Math.sign(got[i]!)).toBe(Math.sign(values[i]!));
      const block = values.subarray(256, 512).filter((v) => v !== 0).map(Math.abs);
      const mean = block.reduce((a, v) => a + v, 0) / block.length;
      expect(Math.abs(got.subarray(256, 512).find((v) => v !== 0)!)).toBe(roundToF16(mean));
    }
  });

  test("Q4_0 blocks read back from a GGUF → Q4_0, Q4_1 and Q8_0 bit-exact", () => {
    const q40 = CODECS.Q4_0.decode(CODECS.Q4_0.quantize(w), w.length);
    for (const type of ["Q4_0", "Q4_1", "Q8_0"] as GgufExportType[]) {
      const r = encodeTensor(q40, "Q4_0", type);
      expect(r.exactValues).toBe(q40.length);
      expect(sameBits(TEST_DECODERS[type]!(r.bytes, q40.length), q40)).toBe(true);
    }
  });
});
