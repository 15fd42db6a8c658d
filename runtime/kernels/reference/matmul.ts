/**
 * Plain TypeScript twins of the matmul kernels (kernels-wasm/src/{lut,gemm,dense}.rs).
 * The LUT twins repeat the kernels' f32 arithmetic step by step (Math.fround after every
 * operation, same order), so table bytes and integer lookup sums match exactly and the
 * scaled outputs match to the last bit; they read the weights through `unpackLut`, not
 * through the packed byte order, so a packing bug cannot hide in both. Dense twins sum in f64.
 * Method: T-MAC (arXiv 2407.00088), see encoding.ts for the formulas.
 */
import { type Encoding, lutPlanes, matrixLayout } from "../../format/encoding.ts";
import { dequantize } from "../../format/pack-dequantize.ts";
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

/** Twin of build_lut_f32: int8 tables (mirror-consolidated) + (scale, sum x) per group. */
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
    const ts = f(maxsum / 127);
    const inv = maxsum > 0 ? f(127 / maxsum) : 0;
    for (let c = 0; c < group / 4; c++) {
      const a = [0, 1, 2, 3].map((i) => act(base + 4 * c + i));
      const t = g * 4 * group + 16 * c;
      for (let idx = 8; idx < 16; idx++) {
        const s0 = idx & 1 ? a[0] : -a[0];
        const s1 = idx & 2 ? a[1] : -a[1];
        const s2 = idx & 4 ? a[2] : -a[2];
        const e = f(f(f(a[3] + s0) + s1) + s2);
        const q = Math.max(-127, Math.min(127, roundEven(f(e * inv))));
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

/** Twin of lut_group_sums: S_p per (padded row, group, plane), int32. */
export function lutGroupSums(e: LutEncoding, bytes: Uint8Array, rows: number, cols: number, lut: Uint8Array): Int32Array {
  const { layout: l, codes } = unpackLut(e, bytes, rows, cols);
  const B = l.planes;
  const G = e.group;
  const tables = new Int8Array(lut.buffer, lut.byteOffset, lut.byteLength);
  const out = new Int32Array(l.rowsPadded * l.groups * B);
  for (let r = 0; r < l.rowsPadded; r++) {
    for (let g = 0; g < l.groups; g++) {
      for (let p = 0; p < B; p++) {
        let s = 0;
        for (let c = 0; c < G / 4; c++) {
          let idx = 0;
          for (let b = 0; b < 4; b++) idx |= ((codes[r * l.colsPadded + g * G + 4 * c + b] >> p) & 1) << b;
          s += tables[g * 4 * G + 16 * c + idx];
        }
        out[(r * l.groups + g) * B + p] = s;
      }
    }
  }
  return out;
}

/** Per-row plane coefficients c_p and offset coefficient o of one block (kernel order). */
function coefficients(e: LutEncoding, sv: Float32Array, at: number, B: number): { c: number[]; o: number } {
  if (e.kind === "ternary") {
    const c: number[] = [];
    let sum = 0;
    for (let k = 0; k < e.planes; k++) {
      const a = sv[at + k];
      c.push(a, f(a + a));
      sum = k === 0 ? a : f(sum + a);
    }
    return { c, o: f(0.5 * sum) };
  }
  if (e.scales === "zero-point") {
    const d = sv[at];
    const c = Array.from({ length: B }, (_, p) => f(d * 2 ** p));
    return { c, o: f(d * f(((2 ** B - 1) * 0.5) - sv[at + 1])) };
  }
  const c = Array.from({ length: B }, (_, p) => sv[at + p]);
  let sum = c[0];
  for (let p = 1; p < B; p++) sum = f(sum + c[p]);
  return { c, o: f(f(0.5 * sum) + sv[at + B]) };
}

/**
 * Twin of gemm_lut: `m` tokens' tables (consecutive blocks of lutByteLength bytes in `luts`)
 * times the packed matrix; returns (m, rows).
 */
export function gemmLut(e: LutEncoding, bytes: Uint8Array, rows: number, cols: number, luts: Uint8Array, m: number): Float32Array {
  const l = matrixLayout(e, rows, cols);
  const B = lutPlanes(e);
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
        const { c, o } = coefficients(e, sv, (r * l.groups + g) * vectors, B);
        const hts = f(meta.getFloat32(8 * g, true) * 0.5);
        const sx = meta.getFloat32(8 * g + 4, true);
        const s = (r * l.groups + g) * B;
        let a = f(c[0] * sums[s]);
        for (let p = 1; p < B; p++) a = f(a + f(c[p] * sums[s + p]));
        acc = f(acc + f(f(hts * a) + f(sx * o)));
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

/** Twin of gemm_f32 / gemm_f16 / gemm_q8: f64 dot products on the dequantised weights. */
export function gemmDense(e: Encoding, bytes: Uint8Array, rows: number, cols: number, x: Float32Array, m: number): Float32Array {
  if (isLutEncoding(e)) throw new KernelError(`gemmDense: ${e.kind} is a LUT encoding; use buildLut + gemmLut`);
  return matmulF64(dequantize(e, bytes, rows, cols), x, m, rows, cols);
}
