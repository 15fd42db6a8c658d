/**
 * Plain TypeScript twins of the matmul kernels (kernels-wasm/src/{lut,gemm,dense}.rs).
 * The LUT twins repeat the kernels' f32 arithmetic step by step (Math.fround after every
 * operation, same order), so table bytes and integer lookup sums match exactly and the
 * scaled outputs match to the last bit; they read the weights through `unpackLut`, not
 * through the packed byte order, so a packing bug cannot hide in both. Dense twins sum in f64.
 * Method: T-MAC (arXiv 2407.00088), see encoding.ts for the formulas.
 */
import { type Encoding, matrixLayout } from "../../format/encoding.ts";
import { dequantize } from "../../format/pack-dequantize.ts";
import { f16ToF32 } from "../../format/pack-f16.ts";
import { isLutEncoding, type LutEncoding, unpackLut } from "../../format/pack-lut.ts";
import { KernelError } from "../../errors.ts";

const f = Math.fround;
const ROUND_MAGIC = 12582912; // 1.5 * 2^23

function roundEven(x: number): number {
  return f(f(x + ROUND_MAGIC) - ROUND_MAGIC);
}

/** Bytes of one input vector's tables: groups * (16 * G/4 int8 + two f32). */
export function lutByteLength(cols: number, group: number): number {
  return Math.ceil(cols / group) * (4 * group + 8);
}

/** Largest table entry magnitude (lut.rs TABLE_LIMIT). */
const TABLE_LIMIT = 127;

/**
 * Twin of the kernels' table builder: signed int8 tables (entry idx of a quad approximates
 * sum_i (bit i of idx ? +a_i : -a_i) / ts, mirror-consolidated: entry 15-idx = -entry idx) and
 * (ts, sum x) per group, in lut.rs's f32 operation order.
 */
export function buildLut(x: Float32Array, cols: number, group: number): Uint8Array {
  const groups = Math.ceil(cols / group);
  const out = new Uint8Array(lutByteLength(cols, group));
  const tables = new Int8Array(out.buffer);
  const meta = new DataView(out.buffer, groups * 4 * group);
  const act = (i: number) => (i < cols ? x[i] : 0);
  for (let g = 0; g < groups; g++) {
    const base = g * group;
    const lane = [0, 0, 0, 0];
    let maxsum = 0;
    for (let c = 0; c < group / 4; c++) {
      const a = [0, 1, 2, 3].map((i) => act(base + 4 * c + i));
      for (let i = 0; i < 4; i++) lane[i] = f(lane[i] + a[i]);
      const s = f(f(Math.abs(a[0]) + Math.abs(a[1])) + f(Math.abs(a[2]) + Math.abs(a[3])));
      if (s > maxsum) maxsum = s;
    }
    const ts = f(maxsum / TABLE_LIMIT);
    const inv = maxsum > 0 ? f(TABLE_LIMIT / maxsum) : 0;
    for (let c = 0; c < group / 4; c++) {
      const a = [0, 1, 2, 3].map((i) => act(base + 4 * c + i));
      const t = g * 4 * group + 16 * c;
      for (let idx = 8; idx < 16; idx++) {
        const s0 = idx & 1 ? a[0] : -a[0];
        const s1 = idx & 2 ? a[1] : -a[1];
        const s2 = idx & 4 ? a[2] : -a[2];
        const e = f(f(f(a[3] + s0) + s1) + s2);
        const q = Math.max(-TABLE_LIMIT, Math.min(TABLE_LIMIT, roundEven(f(e * inv))));
        tables[t + idx] = q;
        tables[t + 15 - idx] = -q;
      }
    }
    meta.setFloat32(8 * g, ts, true);
    meta.setFloat32(8 * g + 4, f(f(lane[0] + lane[1]) + f(lane[2] + lane[3])), true);
  }
  return out;
}

/** Twin of quantize_i8_f32: per-token absmax int8. */
export function quantizeI8(x: Float32Array): { q: Int8Array; scale: number } {
  let amax = 0;
  for (const v of x) amax = Math.max(amax, Math.abs(v));
  const inv = amax > 0 ? f(127 / amax) : 0;
  const q = new Int8Array(x.length);
  for (let i = 0; i < x.length; i++) q[i] = Math.max(-127, Math.min(127, roundEven(f(x[i] * inv))));
  return { q, scale: f(amax / 127) };
}

/**
 * Accumulator sets of the kernel: zero-point 1 (planes combined with weights 2^p), per-plane
 * one per plane, ternary one per trit-plane (its two planes combined with weights 1, 2).
 */
export function lutSets(e: LutEncoding): number {
  if (e.kind === "ternary") return e.planes;
  return e.scales === "zero-point" ? 1 : e.bits;
}

/** Set and weight of plane p's lookups. */
function planeSet(e: LutEncoding, p: number): [number, number] {
  if (e.kind === "ternary") return [p >> 1, 1 << (p & 1)];
  return e.scales === "zero-point" ? [0, 1 << p] : [p, 1];
}

/**
 * Twin of lut_group_sums: the exact integer sums S per (padded row, group, set): sum over the
 * group's quads and the set's planes of weight(p) * table[quad][index of the row's plane-p bits].
 */
export function lutGroupSums(e: LutEncoding, bytes: Uint8Array, rows: number, cols: number, lut: Uint8Array): Int32Array {
  const { layout: l, codes } = unpackLut(e, bytes, rows, cols);
  const B = l.planes;
  const G = e.group;
  const sets = lutSets(e);
  const tables = new Int8Array(lut.buffer, lut.byteOffset, lut.byteLength);
  const out = new Int32Array(l.rowsPadded * l.groups * sets);
  for (let r = 0; r < l.rowsPadded; r++) {
    for (let g = 0; g < l.groups; g++) {
      for (let p = 0; p < B; p++) {
        const [set, weight] = planeSet(e, p);
        let s = 0;
        for (let c = 0; c < G / 4; c++) {
          let idx = 0;
          for (let b = 0; b < 4; b++) idx |= ((codes[r * l.colsPadded + g * G + 4 * c + b] >> p) & 1) << b;
          s += tables[g * 4 * G + 16 * c + idx];
        }
        out[(r * l.groups + g) * sets + set] += weight * s;
      }
    }
  }
  return out;
}

/**
 * One (row, group) term of the kernel's finalisation in its f32 order: S8 = 8192*S and
 * ts8 = ts/2/8192 (exact), then zero-point ((S8*ts8)*d + (d*(2^b-1)/2 + m)*sx), per-plane
 * (sum_p (S8_p*ts8)*s_p + ((sum_p s_p)/2 + m)*sx), ternary sum_k ((S8_k*ts8) + sx/2)*alpha_k.
 */
function groupTerm(e: LutEncoding, sv: Float32Array, at: number, sums: Int32Array, s: number, ts8: number, sx: number): number {
  const sets = lutSets(e);
  const halfSx = f(sx * 0.5);
  let y = 0;
  let sum = 0;
  for (let k = 0; k < sets; k++) {
    const x = f(f(sums[s + k] * 8192) * ts8);
    const term = e.kind === "ternary" ? f(f(x + halfSx) * sv[at + k]) : f(x * sv[at + k]);
    y = k === 0 ? term : f(y + term);
    sum = k === 0 ? sv[at + k] : f(sum + sv[at + k]);
  }
  if (e.kind === "bitplane") {
    const factor = e.scales === "zero-point" ? ((1 << e.bits) - 1) * 0.5 : 0.5;
    const c = f(f(sum * factor) + sv[at + sets]);
    y = f(y + f(c * sx));
  }
  return y;
}

/**
 * Twin of gemm_lut: `m` tokens' tables (consecutive blocks of lutByteLength bytes in `luts`)
 * times the packed matrix; returns (m, rows). Groups are accumulated in order.
 */
export function gemmLut(e: LutEncoding, bytes: Uint8Array, rows: number, cols: number, luts: Uint8Array, m: number): Float32Array {
  const l = matrixLayout(e, rows, cols);
  const sets = lutSets(e);
  const { scales: sv, vectors } = unpackLut(e, bytes, rows, cols);
  const stride = lutByteLength(cols, e.group);
  const out = new Float32Array(m * rows);
  for (let t = 0; t < m; t++) {
    const lut = luts.subarray(t * stride, (t + 1) * stride);
    const sums = lutGroupSums(e, bytes, rows, cols, lut);
    const meta = new DataView(lut.buffer, lut.byteOffset + l.groups * 4 * e.group);
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      for (let g = 0; g < l.groups; g++) {
        const ts8 = f(meta.getFloat32(8 * g, true) * (0.5 / 8192));
        const sx = meta.getFloat32(8 * g + 4, true);
        acc = f(acc + groupTerm(e, sv, (r * l.groups + g) * vectors, sums, (r * l.groups + g) * sets, ts8, sx));
      }
      out[t * rows + r] = acc;
    }
  }
  return out;
}

/** f64 matmul of (m, cols) activations with dequantised (rows, cols) weights: (m, rows). */
export function matmulF64(w: Float32Array, x: Float32Array, m: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m * rows);
  for (let t = 0; t < m; t++) {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += w[r * cols + c] * x[t * cols + c];
      out[t * rows + r] = s;
    }
  }
  return out;
}

/** Twin of gemm_f32 / gemm_f16 / gemm_q8 (f32 activations): f64 dot products on the dequantised weights. */
export function gemmDense(e: Encoding, bytes: Uint8Array, rows: number, cols: number, x: Float32Array, m: number): Float32Array {
  if (isLutEncoding(e)) throw new KernelError(`gemmDense: ${e.kind} is a LUT encoding; use buildLut + gemmLut`);
  return matmulF64(dequantize(e, bytes, rows, cols), x, m, rows, cols);
}

/** Bytes of one token's quantised q8 activations: int16 codes (groups*group) + f32 scales. */
export function q8ActByteLength(cols: number, group: number): number {
  const groups = Math.ceil(cols / group);
  return groups * group * 2 + groups * 4;
}

/** Twin of quantize_q8_act for one token: absmax int8 per block of `group` (zero padded). */
export function quantizeQ8Act(x: Float32Array, cols: number, group: number): { q: Int16Array; scales: Float32Array } {
  const groups = Math.ceil(cols / group);
  const q = new Int16Array(groups * group);
  const scales = new Float32Array(groups);
  for (let g = 0; g < groups; g++) {
    const end = Math.min(cols, (g + 1) * group);
    let amax = 0;
    for (let i = g * group; i < end; i++) amax = Math.max(amax, Math.abs(x[i]));
    const inv = amax > 0 ? f(127 / amax) : 0;
    for (let i = g * group; i < end; i++) q[i] = Math.max(-127, Math.min(127, roundEven(f(x[i] * inv))));
    scales[g] = f(amax / 127);
  }
  return { q, scales };
}

/**
 * Twin of gemm_q8_i8: an exact int dot per (row, group), rounded to f32 and scaled by
 * f32(weight scale * activation scale); f32 lane j sums groups j, j+4, j+8, ... in order and
 * the lanes are added pairwise at the end.
 */
export function gemmQ8I8(
  e: Extract<Encoding, { kind: "q8" }>,
  bytes: Uint8Array,
  rows: number,
  cols: number,
  x: Float32Array,
  m: number,
): Float32Array {
  const l = matrixLayout(e, rows, cols);
  const G = e.group;
  const w = new Int8Array(bytes.buffer, bytes.byteOffset, l.byteLength);
  const view = new DataView(bytes.buffer, bytes.byteOffset, l.byteLength);
  const out = new Float32Array(m * rows);
  for (let t = 0; t < m; t++) {
    const { q, scales } = quantizeQ8Act(x.subarray(t * cols, (t + 1) * cols), cols, G);
    for (let r = 0; r < rows; r++) {
      const row = [0, 0, 0, 0];
      for (let g = 0; g < l.groups; g++) {
        let dot = 0;
        for (let c = g * G; c < (g + 1) * G; c++) dot += w[r * l.colsPadded + c] * q[c];
        const s = f(f16ToF32(view.getUint16(l.scaleOffset + 2 * (r * l.groups + g), true)) * scales[g]);
        row[g % 4] = f(row[g % 4] + f(f(dot) * s));
      }
      out[t * rows + r] = f(f(row[0] + row[1]) + f(row[2] + row[3]));
    }
  }
  return out;
}
