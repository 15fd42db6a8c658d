/**
 * Small ggml block quantisers for test models: fp32 weights → block fields → bytes through the
 * tests' own packers (spec-blocks.ts). Plain min/max rounding in the spirit of ggml's
 * *_ref quantisers without their search (the tests need valid blocks of realistic values,
 * not llama-quantize's accuracy): K-quants take per-sub-block scales and mins quantised to
 * 6 (Q4_K/Q5_K) or 8 (Q6_K) bits against an f16 super-block scale.
 */
import { f16ToF32, f32ToF16 } from "../../runtime/format/pack-f16.ts";
import { type BlockFields, packBlock, PACKERS } from "./spec-blocks.ts";

const half = (x: number) => f32ToF16(x);
const value = (bits: number) => f16ToF32(bits);
const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));

/** Q4_K / Q5_K fields of one 256-weight block: w ≈ (d·sc)·q − dmin·m. */
function kAffine(x: Float32Array, levels: number): BlockFields {
  const scales: number[] = [];
  const mins: number[] = [];
  for (let s = 0; s < 8; s++) {
    const part = x.subarray(32 * s, 32 * s + 32);
    const lo = Math.min(0, ...part);
    const hi = Math.max(...part);
    scales.push((hi - lo) / (levels - 1));
    mins.push(-lo);
  }
  const d = half(Math.max(...scales) / 63);
  const dmin = half(Math.max(...mins) / 63);
  const sc = scales.map((v) => (value(d) === 0 ? 0 : clamp(Math.round(v / value(d)), 0, 63)));
  const m = mins.map((v) => (value(dmin) === 0 ? 0 : clamp(Math.round(v / value(dmin)), 0, 63)));
  const q = Array.from(x, (w, i) => {
    const step = value(d) * sc[i >> 5]!;
    return step === 0 ? 0 : clamp(Math.round((w + value(dmin) * m[i >> 5]!) / step), 0, levels - 1);
  });
  return { d, dmin, sc, m, q };
}

/** Q6_K fields: w ≈ (d·sc)·(q − 32) with signed 8-bit sc per 16 weights. */
function q6k(x: Float32Array): BlockFields {
  const scales: number[] = [];
  for (let s = 0; s < 16; s++) scales.push(Math.max(...Array.from(x.subarray(16 * s, 16 * s + 16), Math.abs)) / 31);
  const d = half(Math.max(...scales) / 127);
  const sc = scales.map((v) => (value(d) === 0 ? 0 : clamp(Math.round(v / value(d)), -128, 127)));
  const q = Array.from(x, (w, i) => {
    const step = value(d) * sc[i >> 4]!;
    return step === 0 ? 32 : clamp(Math.round(w / step) + 32, 0, 63);
  });
  return { d, sc, q };
}

/** Legacy 32-weight blocks. */
function legacy(type: string, x: Float32Array): BlockFields {
  const lo = Math.min(...x);
  const hi = Math.max(...x);
  const amax = Math.max(-lo, hi);
  if (type === "Q8_0") {
    const d = half(amax / 127);
    return { d, q: Array.from(x, (w) => (value(d) === 0 ? 0 : clamp(Math.round(w / value(d)), -127, 127))) };
  }
  if (type === "Q4_0") {
    const d = half(amax / 7.5);
    return { d, q: Array.from(x, (w) => (value(d) === 0 ? 8 : clamp(Math.round(w / value(d)) + 8, 0, 15))) };
  }
  // Q4_1: w ≈ q·d + m, m the block minimum.
  const d = half((hi - lo) / 15);
  const m = half(lo);
  return { d, dmin: m, q: Array.from(x, (w) => (value(d) === 0 ? 0 : clamp(Math.round((w - value(m)) / value(d)), 0, 15))) };
}

/** TQ2_0 fields: absmean ternarisation per 256 weights. */
function ternary(x: Float32Array): BlockFields {
  const d = half(x.reduce((a, w) => a + Math.abs(w), 0) / x.length);
  return { d, q: Array.from(x, (w) => (value(d) === 0 ? 1 : clamp(Math.round(w / value(d)), -1, 1) + 1)) };
}

const FIELDS: Readonly<Record<string, (x: Float32Array) => BlockFields>> = {
  Q4_K: (x) => kAffine(x, 16),
  Q5_K: (x) => kAffine(x, 32),
  Q6_K: q6k,
  Q8_0: (x) => legacy("Q8_0", x),
  Q4_0: (x) => legacy("Q4_0", x),
  Q4_1: (x) => legacy("Q4_1", x),
  TQ2_0: ternary,
  TQ1_0: ternary,
};

/** Encodes `x` (a multiple of the block size) as blocks of `type`. */
export function encodeBlocks(type: string, x: Float32Array): Uint8Array {
  const fields = FIELDS[type];
  if (fields === undefined) throw new Error(`block-writer: no quantiser for ${type}`);
  const weights = type.endsWith("_K") || type.startsWith("TQ") ? 256 : 32;
  const size = PACKERS[type]!.bytes;
  const out = new Uint8Array((x.length / weights) * size);
  for (let b = 0; b < x.length / weights; b++) out.set(packBlock(type, fields(x.subarray(b * weights, (b + 1) * weights))), b * size);
  return out;
}
