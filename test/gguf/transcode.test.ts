/**
 * GGUF blocks kept in crumb encodings (quantizer/gguf-transcode.ts): the weights crumb
 * dequantises from the packed bytes (runtime/format's public `dequantize`) must equal, bit for
 * bit, the GGUF's weights as the tests' independent decoder reads them (and as the importer
 * reads them, llama q/k rows un-permuted) wherever the transcoder claims "exact"; where it
 * does not (Q4_K scales that are no f16 values) the difference is bounded by f16 rounding of
 * the group's scale and offset, and the claim says so.
 */
import { describe, expect, test } from "bun:test";
import * as path from "node:path";
import { transcodeTensor } from "../../quantizer/gguf-transcode.ts";
import { ggmlBlocksOf, importGguf } from "../../runtime/import/gguf-model.ts";
import { writeGguf } from "../../quantizer/export/gguf-write.ts";
import { tempDir } from "../import/import-util.ts";
import { encodingName } from "../../runtime/format/encoding.ts";
import { dequantize } from "../../runtime/format/pack-dequantize.ts";
import type { ModelSource } from "../../runtime/models/types.ts";
import { encodeBlocks } from "./block-writer.ts";
import { type BlockFields, packBlock } from "./spec-blocks.ts";
import { specDecode } from "./spec-decoders.ts";

const ROWS = 32;
const COLS = 512;
const dir = tempDir();

function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.floor((s / 2 ** 32) * n);
  };
}

/** ROWS x COLS of `type` blocks, each from `fields(next)`. */
function blocksOf(type: string, fields: (next: (n: number) => number, block: number) => BlockFields, seed: number): Uint8Array {
  const next = rng(seed);
  const count = (ROWS * COLS) / (type.endsWith("_K") || type.startsWith("TQ") ? 256 : 32);
  const parts = Array.from({ length: count }, (_, b) => packBlock(type, fields(next, b)));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.forEach((p, i) => out.set(p, i * p.length));
  return out;
}

/** A one-layer llama GGUF whose attn_q (stored in Meta row order) and ffn_up hold `bytes`. */
function model(type: string, bytes: Uint8Array, name: string): ModelSource {
  const file = path.join(dir, `${name}.gguf`);
  writeGguf(file, {
    metadata: {
      "general.architecture": "llama",
      "llama.embedding_length": COLS,
      "llama.feed_forward_length": ROWS,
      "llama.block_count": 1,
      "llama.attention.head_count": 4,
      "llama.attention.head_count_kv": 4,
    },
    tensors: [
      { name: "blk.0.ffn_up.weight", shape: [ROWS, COLS], raw: { type, bytes } },
      { name: "blk.0.attn_q.weight", shape: [ROWS, COLS], raw: { type, bytes } },
    ],
  });
  return importGguf(file);
}

interface Outcome {
  encoding: string;
  exact: boolean;
  /** crumb's weights (HF row order) for ffn_up and attn_q, and the importer's. */
  up: Float32Array;
  q: Float32Array;
  upImported: Float32Array;
  qImported: Float32Array;
  maxAbsError: number;
}

function transcode(type: string, bytes: Uint8Array, target: 4 | 8 | "ternary", name: string): Outcome | string {
  const source = model(type, bytes, name);
  const results = ["model.layers.0.mlp.up_proj.weight", "model.layers.0.self_attn.q_proj.weight"].map((n) => {
    const entry = source.tensors.get(n)!;
    const kept = transcodeTensor(ggmlBlocksOf(entry)!, target);
    if (typeof kept === "string") return kept;
    return { kept, crumb: dequantize(kept.encoding, kept.bytes, ROWS, COLS), imported: entry.read() };
  });
  const [up, q] = results;
  if (typeof up === "string" || typeof q === "string") return typeof up === "string" ? up : (q as string);
  return {
    encoding: encodingName(up.kept.encoding),
    exact: up.kept.exactGroups === up.kept.groups && q.kept.exactGroups === q.kept.groups,
    up: up.crumb,
    q: q.crumb,
    upImported: up.imported,
    qImported: q.imported,
    maxAbsError: Math.max(up.kept.maxAbsError, q.kept.maxAbsError),
  };
}

/** Bit for bit, except that −0 and +0 count as equal (see quantizer/gguf-transcode.ts). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return a.length === b.length && ua.every((v, i) => v === ub[i] || (a[i] === 0 && b[i] === 0));
}

/** Exact: crumb's weights equal the spec decoder's (un-permuted rows: ffn_up) and the importer's (both). */
function expectExact(o: Outcome | string, type: string, bytes: Uint8Array, encoding: string): void {
  if (typeof o === "string") throw new Error(`not kept: ${o}`);
  expect(o.encoding).toBe(encoding);
  expect(o.exact).toBe(true);
  expect(o.maxAbsError).toBe(0);
  expect(sameBits(o.up, specDecode(type, bytes))).toBe(true);
  expect(sameBits(o.up, o.upImported)).toBe(true);
  expect(sameBits(o.q, o.qImported)).toBe(true);
  // attn_q really was reordered (llama's Meta → HF rows), so the check above is not vacuous.
  expect(sameBits(o.q, o.up)).toBe(false);
}

const ints = (next: (n: number) => number, count: number, lo: number, hi: number) => Array.from({ length: count }, () => lo + next(hi - lo + 1));
/** Ordinary f16 scales of both signs, and the extremes: f16 max, smallest subnormal, −0. */
const scale = (next: (n: number) => number, b: number) => [0x7bff, 0x0001, 0x8000, 0xfbff][b] ?? (next(2) === 1 ? 0x8000 : 0) | (0x1800 + next(0x1400));
/**
 * The same without the one a 4-bit group cannot hold: crumb stores Q4_0's offset m = −8d as an
 * f16, so |d| ≤ 8188 (8d ≤ 65504, an f16 weight's own bound). The largest such scale of each
 * sign, the subnormal and −0 stay.
 */
const scale4 = (next: (n: number) => number, b: number) => [0x6fff, 0x0001, 0x8000, 0xefff][b] ?? scale(next, 9);

describe("kept bit-exact", () => {
  test("Q4_0 → q4g32zp (offset −8d), negative and extreme scales included", () => {
    const bytes = blocksOf("Q4_0", (next, b) => ({ d: scale4(next, b), q: ints(next, 32, 0, 15) }), 1);
    expectExact(transcode("Q4_0", bytes, 4, "q40"), "Q4_0", bytes, "q4g32zp");
  });

  test("Q4_0 scales whose offset −8d overflows f16 are not kept at 4 bits (q8 still holds them exactly)", () => {
    const bytes = blocksOf("Q4_0", (next, b) => ({ d: scale(next, b), q: ints(next, 32, 0, 15) }), 1);
    expect(transcode("Q4_0", bytes, 4, "q40-huge")).toBe("Q4_0 scales do not fit f16");
    expectExact(transcode("Q4_0", bytes, 8, "q40-huge-q8"), "Q4_0", bytes, "q8g32");
  });

  test("Q4_0 → q8g32 (codes q − 8), as embeddings take it", () => {
    const bytes = blocksOf("Q4_0", (next, b) => ({ d: scale(next, b), q: ints(next, 32, 0, 15) }), 2);
    expectExact(transcode("Q4_0", bytes, 8, "q40q8"), "Q4_0", bytes, "q8g32");
  });

  test("Q4_1 → q4g32zp (d and the offset m, both f16 already), mins of both signs", () => {
    const bytes = blocksOf("Q4_1", (next) => ({ d: scale(next, 9), dmin: (next(2) === 1 ? 0x8000 : 0) | (0x2000 + next(0x1000)), q: ints(next, 32, 0, 15) }), 3);
    expectExact(transcode("Q4_1", bytes, 4, "q41"), "Q4_1", bytes, "q4g32zp");
  });

  test("Q4_K sub-blocks whose d·sc and dmin·m are f16 values → zero-point with those offsets, exact", () => {
    // d = 2^-10, dmin = ±2^-11: every d·sc and dmin·m (6-bit integers) is an f16 value.
    const bytes = blocksOf("Q4_K", (next) => ({ d: 0x1400, dmin: next(2) === 1 ? 0x9000 : 0x1000, sc: ints(next, 8, 0, 63), m: ints(next, 8, 0, 63), q: ints(next, 256, 0, 15) }), 4);
    expectExact(transcode("Q4_K", bytes, 4, "q4k-pp"), "Q4_K", bytes, "q4g32zp");
  });

  test("Q4_K sub-blocks with power-of-two scales → zero-point, exact", () => {
    const bytes = blocksOf("Q4_K", (next) => ({ d: 0x1400, dmin: 0x1000, sc: ints(next, 8, 0, 5).map((e) => 2 ** e), m: ints(next, 8, 0, 63), q: ints(next, 256, 0, 15) }), 5);
    expectExact(transcode("Q4_K", bytes, 4, "q4k-zp"), "Q4_K", bytes, "q4g32zp");
  });

  test("TQ2_0 and TQ1_0 → ternary t1g256", () => {
    for (const type of ["TQ2_0", "TQ1_0"]) {
      const bytes = blocksOf(type, (next, b) => ({ d: scale(next, b), q: ints(next, 256, 0, 2) }), 6);
      expectExact(transcode(type, bytes, "ternary", type), type, bytes, "t1g256");
    }
  });

  test("Q8_0, Q5_0 and IQ4_NL → q8g32", () => {
    const cases: [string, (next: (n: number) => number, b: number) => BlockFields][] = [
      ["Q8_0", (next, b) => ({ d: scale(next, b), q: ints(next, 32, -127, 127) })],
      ["Q5_0", (next, b) => ({ d: scale(next, b), q: ints(next, 32, 0, 31) })],
      ["IQ4_NL", (next, b) => ({ d: scale(next, b), q: ints(next, 32, 0, 15) })],
    ];
    for (const [type, fields] of cases) {
      const bytes = blocksOf(type, fields, 7);
      expectExact(transcode(type, bytes, 8, type), type, bytes, "q8g32");
    }
  });
});

describe("not exact, and said so", () => {
  test("Q4_K from a quantiser (arbitrary f16 d, dmin): codes kept, scales rounded, error within f16 rounding", () => {
    const next = rng(8);
    const x = Float32Array.from({ length: ROWS * COLS }, () => (next(2001) - 1000) / 20000);
    const bytes = encodeBlocks("Q4_K", x);
    const o = transcode("Q4_K", bytes, 4, "q4k-real");
    if (typeof o === "string") throw new Error(o);
    expect(o.encoding).toBe("q4g32zp");
    expect(o.exact).toBe(false);
    const want = specDecode("Q4_K", bytes);
    // Per 32-weight group w = a·q + b; d and z each carry at most half an f16 ulp (2^-11 relative).
    let worst = 0;
    for (let g = 0; g < want.length / 32; g++) {
      const part = want.subarray(32 * g, 32 * g + 32);
      const bound = 2 ** -10 * (Math.max(...part) - Math.min(...part) + Math.max(...Array.from(part, Math.abs)));
      for (let i = 32 * g; i < 32 * g + 32; i++) worst = Math.max(worst, Math.abs(o.up[i]! - want[i]!) / bound);
    }
    expect(worst).toBeLessThanOrEqual(1);
    expect(o.maxAbsError).toBeGreaterThan(0);
    expect(sameBits(o.q, o.qImported)).toBe(false);
  });

  test("codes crumb cannot hold are refused with the reason: Q8_0 −128, TQ2_0 code 3", () => {
    const q8 = blocksOf("Q8_0", (next) => ({ d: 0x3c00, q: [-128, ...ints(next, 31, -127, 127)] }), 9);
    expect(transcode("Q8_0", q8, 8, "q8-128")).toBe("Q8_0 codes outside crumb's range");
    const tq = blocksOf("TQ2_0", (next) => ({ d: 0x3c00, q: [3, ...ints(next, 255, 0, 2)] }), 10);
    expect(transcode("TQ2_0", tq, "ternary", "tq3")).toBe("TQ2_0 codes outside crumb's range");
    expect(transcode("Q6_K", encodeBlocks("Q6_K", new Float32Array(ROWS * COLS)), 4, "q6k")).toBe("Q6_K has no 4-bit crumb form");
  });
});
