/**
 * Keeps a GGUF tensor's blocks in a crumb encoding instead of re-quantising its dequantised
 * weights, wherever a crumb encoding can hold them (block layouts: ggml-common.h; crumb
 * encodings: runtime/format/encoding.ts):
 *
 * - Q4_0, Q4_1 and Q4_K's 32-weight sub-blocks are w = a·q + b with a 4-bit code q. As a
 *   4-bit group of 32 with a zero point, crumb stores d = a and the offset m = b as f16 and
 *   computes d·q + m; with per-plane scales it stores s_p = a·2^p and the offset b
 *   (w = Σ s_p·bit_p(q) + b). Q4_0 (a = d, b = −8d) and Q4_1 (b = m) fit the zero-point form
 *   exactly (while |8d| fits f16). Q4_K's a = d·sc and b = −dmin·m are products of an f16 and
 *   a 6-bit integer: exact in crumb only where they are f16 values themselves; elsewhere the
 *   codes are kept and a, b are rounded to f16 (relative error ≤ 2^-11 of the group's scale).
 * - Q8_0 (q·d), Q5_0 ((q − 16)·d), IQ4_NL (d·level) and Q4_0 ((q − 8)·d) are int8 codes times
 *   an f16 scale per 32: crumb's q8 with group 32 holds them exactly.
 * - TQ1_0 and TQ2_0 are trits times one f16 per 256: ternary, one trit-plane, group 256.
 *
 * "Exact" is checked, not assumed: every group's weights as crumb's own dequantiser reads
 * them back from the packed bytes (runtime/format pack-dequantize.ts) are compared bit for bit
 * with ggml's dequantised weights (ggml-dequantize.ts), except that −0 and +0 count as equal
 * (a zero point stored as the offset m gives d·8 + m = +0 where ggml's (8 − 8)·d is −0 for a
 * negative d; both add identically to any sum), and the
 * result says how many groups matched. A form whose scales do not fit f16, or whose codes fall
 * outside crumb's range (a Q8_0 −128, a TQ2_0 code 3), is not used.
 */
import type { Encoding } from "../runtime/format/encoding.ts";
import { dequantize } from "../runtime/format/pack-dequantize.ts";
import { f32ToF16 } from "../runtime/format/pack-f16.ts";
import { blockFormat, dequantizeGgml } from "../runtime/import/ggml-dequantize.ts";
import { f16Lut, f32, halfAt, i8At } from "../runtime/import/ggml-block.ts";
import { KVALUES_IQ4NL } from "../runtime/import/ggml-grids.ts";
import { scaleMinK4 } from "../runtime/import/ggml-kquants.ts";
import { tritOf } from "../runtime/import/ggml-ternary.ts";
import type { GgmlBlocks } from "../runtime/import/gguf-model.ts";
import { packQuantized, type QuantizedMatrix } from "./methods/types.ts";
import { reorderRows } from "../runtime/import/rope-permute.ts";

/** The crumb width a kept block lands in: 4-bit groups, q8, or ternary. */
export type TranscodeTarget = 4 | 8 | "ternary";

const TARGETS: Readonly<Record<string, readonly TranscodeTarget[]>> = {
  Q4_0: [4, 8],
  Q4_1: [4],
  Q4_K: [4],
  Q8_0: [8],
  Q5_0: [8],
  IQ4_NL: [8],
  TQ1_0: ["ternary"],
  TQ2_0: ["ternary"],
};

/** The crumb widths a GGUF type's blocks can be kept in, smallest first ([] when none). */
export function transcodeTargets(type: string): readonly TranscodeTarget[] {
  return TARGETS[type] ?? [];
}

export interface Transcoded {
  readonly encoding: Encoding;
  /** Packed bytes, rows in HF order. */
  readonly bytes: Uint8Array;
  readonly groups: number;
  /** Groups whose crumb weights equal ggml's bit for bit. */
  readonly exactGroups: number;
  readonly maxAbsError: number;
}

const G = 32;

/** Group-of-32 affine view w = a·q + b of a 4-bit type: codes (rows·cols), a and b per group. */
function affine4(type: string, src: Uint8Array, rows: number, cols: number): { codes: Uint8Array; a: Float64Array; b: Float64Array } {
  const n = rows * cols;
  const codes = new Uint8Array(n);
  const a = new Float64Array(n / G);
  const b = new Float64Array(n / G);
  const nib = (qs: number, k: number) => (k < 16 ? src[qs + k]! & 15 : src[qs + k - 16]! >> 4);
  if (type === "Q4_K") {
    for (let blk = 0; blk < n / 256; blk++) {
      const at = blk * 144;
      const d = halfAt(src, at);
      const dmin = halfAt(src, at + 2);
      for (let s = 0; s < 8; s++) {
        const [sc, m] = scaleMinK4(src, at + 4, s);
        const g = blk * 8 + s;
        a[g] = f32(d * sc);
        b[g] = -f32(dmin * m);
        for (let l = 0; l < G; l++) codes[g * G + l] = (src[at + 16 + 32 * (s >> 1) + l]! >> (4 * (s & 1))) & 15;
      }
    }
    return { codes, a, b };
  }
  const size = type === "Q4_0" ? 18 : 20;
  for (let g = 0; g < n / G; g++) {
    const at = g * size;
    const d = halfAt(src, at);
    a[g] = d;
    b[g] = type === "Q4_0" ? f32(-8 * d) : halfAt(src, at + 2);
    for (let k = 0; k < G; k++) codes[g * G + k] = nib(at + size - 16, k);
  }
  return { codes, a, b };
}

/** A candidate form; `lossless` when storing its scales and zero points as f16 rounded none of them. */
interface Candidate {
  readonly q: QuantizedMatrix;
  readonly lossless: boolean;
}

/** The 4-bit forms of an affine view: zero-point (d = a, offset m = b) and per-plane (s_p = a·2^p, offset b). */
function fourBitForms(view: ReturnType<typeof affine4>): Candidate[] {
  const groups = view.a.length;
  const zpScales = new Float32Array(groups);
  const zpOffsets = new Float32Array(groups);
  const ppScales = new Float32Array(groups * 4);
  const ppZeros = new Float32Array(groups);
  let zpLossless = true;
  let ppLossless = true;
  const lut = f16Lut();
  const keep = (x: number) => {
    const h = lut[f32ToF16(x)]!; // = roundToF16(x), through the decoders' table
    return { h, same: Object.is(h, x) || h === x };
  };
  for (let g = 0; g < groups; g++) {
    const a = view.a[g]!;
    const b = view.b[g]!;
    const d = keep(a);
    const m = keep(b);
    zpScales[g] = d.h;
    zpOffsets[g] = m.h;
    zpLossless &&= d.same && m.same;
    for (let p = 0; p < 4; p++) {
      const sp = keep(a * 2 ** p);
      ppScales[4 * g + p] = sp.h;
      ppLossless &&= sp.same;
    }
    ppZeros[g] = m.h;
    ppLossless &&= m.same;
  }
  return [
    {
      q: { encoding: { kind: "bitplane", bits: 4, group: 32, scales: "zero-point" }, codes: view.codes, scales: zpScales, zeros: new Float32Array(groups), offsets: zpOffsets },
      lossless: zpLossless,
    },
    { q: { encoding: { kind: "bitplane", bits: 4, group: 32, scales: "per-plane" }, codes: view.codes, scales: ppScales, zeros: ppZeros }, lossless: ppLossless },
  ];
}

/** q8 group-32 form of a type that is int8 codes times an f16 per 32; undefined when a code is −128. */
function q8Form(type: string, src: Uint8Array, rows: number, cols: number): QuantizedMatrix | undefined {
  const n = rows * cols;
  const q8 = new Int8Array(n);
  const scales = new Float32Array(n / G);
  const size = blockFormat(type)!.typeSize;
  for (let g = 0; g < n / G; g++) {
    const at = g * size;
    scales[g] = halfAt(src, at);
    for (let k = 0; k < G; k++) {
      const nib = k < 16 ? src[at + size - 16 + k]! & 15 : src[at + size - 32 + k]! >> 4;
      let q: number;
      if (type === "Q8_0") q = i8At(src, at + 2 + k);
      else if (type === "Q4_0") q = nib - 8;
      else if (type === "IQ4_NL") q = KVALUES_IQ4NL[nib]!;
      else q = (nib | (((src[at + 2 + (k >> 3)]! >> (k & 7)) & 1) << 4)) - 16; // Q5_0: qh bit k
      if (q < -127) return undefined;
      q8[g * G + k] = q;
    }
  }
  return { encoding: { kind: "q8", group: 32 }, q8, scales };
}

/** Ternary form (one trit-plane, group 256: one scale per ggml block) of TQ1_0/TQ2_0; undefined when a TQ2_0 code is 3. */
function ternaryForm(type: string, src: Uint8Array, rows: number, cols: number): QuantizedMatrix | undefined {
  const n = rows * cols;
  const trits = new Int8Array(n);
  const alphas = new Float32Array(n / 256);
  const size = blockFormat(type)!.typeSize;
  for (let blk = 0; blk < n / 256; blk++) {
    const at = blk * size;
    alphas[blk] = halfAt(src, at + size - 2);
    for (let i = 0; i < 256; i++) {
      let t: number;
      if (type === "TQ2_0") t = (src[at + 32 * (i >> 7) + (i & 31)]! >> (2 * ((i >> 5) & 3))) & 3;
      else if (i < 160) t = tritOf(src[at + (i & 31)]!, i >> 5);
      else if (i < 240) t = tritOf(src[at + 32 + (i & 15)]!, (i - 160) >> 4);
      else t = tritOf(src[at + 48 + (i & 3)]!, (i - 240) >> 2);
      if (t > 2) return undefined;
      trits[blk * 256 + i] = t - 1;
    }
  }
  return { encoding: { kind: "ternary", group: 256, planes: 1 }, trits, alphas };
}

/** Scales and zero points (already f16 values) that f16 can store: finite, |x| ≤ 65504. */
function fitsF16(q: QuantizedMatrix): boolean {
  const values = "alphas" in q ? [q.alphas] : "zeros" in q ? [q.scales, q.offsets ?? q.zeros] : [q.scales];
  return values.every((v) => v.every((x) => Math.abs(x) <= 65504));
}

/** Matching groups of `got` against ggml's weights (bit for bit, ±0 equal), and the largest difference. */
function compareGroups(got: Float32Array, want: Float32Array, group: number): { exactGroups: number; maxAbsError: number } {
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const b = new Uint32Array(want.buffer, want.byteOffset, want.length);
  let exactGroups = 0;
  let maxAbsError = 0;
  for (let g = 0; g < got.length / group; g++) {
    let same = true;
    for (let i = g * group; i < (g + 1) * group; i++) {
      if (a[i] !== b[i] && !(got[i] === 0 && want[i] === 0)) {
        same = false;
        maxAbsError = Math.max(maxAbsError, Math.abs(got[i]! - want[i]!));
      }
    }
    if (same) exactGroups++;
  }
  return { exactGroups, maxAbsError };
}

/** Rows of a quantised matrix in HF order: out row r = stored row order[r]. */
function reorder(q: QuantizedMatrix, rows: number, cols: number, order: Int32Array): QuantizedMatrix {
  const e = q.encoding;
  const groups = cols / e.group;
  const perRow = <T extends Uint8Array | Int8Array | Float32Array>(src: T, width: number): T => {
    const out = new (src.constructor as new (n: number) => T)(src.length);
    for (let r = 0; r < rows; r++) out.set(src.subarray(order[r]! * width, (order[r]! + 1) * width), r * width);
    return out;
  };
  if ("codes" in q) {
    const planes = q.encoding.scales === "zero-point" ? 1 : q.encoding.bits;
    const offsets = q.offsets === undefined ? {} : { offsets: perRow(q.offsets, groups) };
    return { ...q, codes: perRow(q.codes, cols), scales: perRow(q.scales, groups * planes), zeros: perRow(q.zeros, groups), ...offsets };
  }
  if ("trits" in q) return { ...q, trits: perRow(q.trits, cols), alphas: perRow(q.alphas, groups) };
  return { ...q, q8: perRow(q.q8, cols), scales: perRow(q.scales, groups) };
}

/**
 * Keeps the blocks of `blocks` in the crumb encoding of width `target`, or returns a reason
 * when they do not fit (the caller then re-quantises). 4-bit forms: the zero-point one when
 * every group is exact in it, else the per-plane one when every group is exact there, else
 * the zero-point one with rounded scales.
 */
export function transcodeTensor(blocks: GgmlBlocks, target: TranscodeTarget): Transcoded | string {
  const { type, rows, cols } = blocks;
  if (!transcodeTargets(type).includes(target)) return `${type} has no ${target === "ternary" ? "ternary" : `${target}-bit`} crumb form`;
  const src = blocks.bytes();
  const order = blocks.rowOrder;
  const decoded = dequantizeGgml(type, src, rows * cols, type);
  const reference = order === undefined ? decoded : reorderRows(decoded, order, cols);
  const candidates: Candidate[] = target === 4
    ? fourBitForms(affine4(type, src, rows, cols))
    : [target === 8 ? q8Form(type, src, rows, cols) : ternaryForm(type, src, rows, cols)].filter((q) => q !== undefined).map((q) => ({ q, lossless: true }));
  // Exactness is judged on what crumb's own dequantiser reads back from the packed bytes.
  const evaluate = (candidate: QuantizedMatrix): Transcoded => {
    const q = order === undefined ? candidate : reorder(candidate, rows, cols, order);
    const bytes = packQuantized(q, rows, cols);
    const score = compareGroups(dequantize(q.encoding, bytes, rows, cols), reference, q.encoding.group);
    return { encoding: q.encoding, bytes, groups: (rows * cols) / q.encoding.group, ...score };
  };
  // In order of preference, the first form exact in every group wins; a form whose scales had
  // to be rounded cannot be, so it is only evaluated as the fallback (the first usable form).
  const usable = candidates.filter((c) => fitsF16(c.q));
  let chosen: Transcoded | undefined;
  for (const c of usable.filter((c) => c.lossless)) {
    const result = evaluate(c.q);
    if (result.exactGroups === result.groups) {
      chosen = result;
      break;
    }
    if (c === usable[0]) chosen = result;
  }
  if (chosen === undefined && usable.length > 0) chosen = evaluate(usable[0]!.q);
  if (chosen === undefined) return candidates.length === 0 ? `${type} codes outside crumb's range` : `${type} scales do not fit f16`;
  return chosen;
}
