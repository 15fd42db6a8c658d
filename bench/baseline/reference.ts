/**
 * Plain TypeScript twins of the benchmark's measuring sticks (kernels-wasm/src/baseline.rs):
 * the dequantise-then-dot GEMV (weights through the format's own dequantiser, dot products in
 * f64, so the kernel's only differences are f32 rounding) and the wrapping u32 sum that the
 * streaming-read kernel computes.
 */
import type { Encoding } from "../../runtime/format/encoding.ts";
import { dequantize } from "../../runtime/format/pack-dequantize.ts";

/** Twin of gemv_dequant_*: out (rows) = dequantize(W) · x, summed in f64. */
export function gemvDequant(e: Encoding, bytes: Uint8Array, rows: number, cols: number, x: Float32Array): Float32Array {
  const w = dequantize(e, bytes, rows, cols);
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c] * x[c];
    out[r] = s;
  }
  return out;
}

/** Twin of stream_sum_u32: the sum of the little-endian u32 words of `bytes`, mod 2^32. */
export function streamSumU32(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let s = 0;
  for (let i = 0; i + 4 <= bytes.byteLength; i += 4) s = (s + view.getUint32(i, true)) >>> 0;
  return s;
}
