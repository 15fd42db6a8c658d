/**
 * Plain TypeScript twins of the row kernels (kernels-wasm/src/rows.rs): bias broadcast over rows
 * and one q8 row to f32. Both kernels are exact in f32, so the twins must match bit for bit.
 */
import { f16ToF32 } from "../../format/pack-f16.ts";

/** x (rows, n) + bias (n) on every row, rounded to f32. */
export function addRowsRef(x: Float32Array, bias: Float32Array, rows: number, n: number): Float32Array {
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) out[r * n + i] = x[r * n + i] + bias[i];
  return out;
}

/** codes (n int8) times the f16 scale (bits) of each group of `group` codes. */
export function q8RowRef(codes: Int8Array, scales: Uint16Array, group: number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let c = 0; c < n; c++) out[c] = codes[c] * f16ToF32(scales[Math.floor(c / group)]);
  return out;
}
