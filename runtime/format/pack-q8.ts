/**
 * q8 packing: int8 codes row-major with rows padded to whole groups, then (from the next
 * 64-byte boundary) one f16 scale per (row, group); w = scale * q (layout: encoding.ts).
 */
import { FormatError } from "../errors.ts";
import { type Encoding, matrixLayout } from "./encoding.ts";
import { checkLength, f16ToF32, scaleToF16 } from "./pack-f16.ts";

export type Q8Encoding = Extract<Encoding, { kind: "q8" }>;

/** codes: (rows, cols) int8 in [-127, 127]; scales: (rows, groups) values stored as f16. */
export function packQ8(e: Q8Encoding, codes: Int8Array, scales: Float32Array, rows: number, cols: number): Uint8Array {
  const l = matrixLayout(e, rows, cols);
  if (codes.length !== rows * cols) throw new FormatError(`packQ8: ${codes.length} codes for a ${rows}x${cols} matrix`);
  if (scales.length !== rows * l.groups) {
    throw new FormatError(`packQ8: ${scales.length} scales, expected rows*groups = ${rows * l.groups}`);
  }
  const out = new Uint8Array(l.byteLength);
  const q = new Int8Array(out.buffer);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) q[r * l.colsPadded + c] = codes[r * cols + c];
  }
  const view = new DataView(out.buffer);
  for (let i = 0; i < scales.length; i++) view.setUint16(l.scaleOffset + 2 * i, scaleToF16(scales[i], "q8 scale"), true);
  return out;
}

export function unpackQ8(e: Q8Encoding, bytes: Uint8Array, rows: number, cols: number): { codes: Int8Array; scales: Float32Array } {
  const l = matrixLayout(e, rows, cols);
  checkLength(bytes, l.byteLength, "q8");
  const q = new Int8Array(bytes.buffer, bytes.byteOffset, l.byteLength);
  const view = new DataView(bytes.buffer, bytes.byteOffset, l.byteLength);
  const codes = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) codes[r * cols + c] = q[r * l.colsPadded + c];
  }
  const scales = new Float32Array(rows * l.groups);
  for (let i = 0; i < scales.length; i++) scales[i] = f16ToF32(view.getUint16(l.scaleOffset + 2 * i, true));
  return { codes, scales };
}

export function dequantizeQ8(e: Q8Encoding, bytes: Uint8Array, rows: number, cols: number): Float32Array {
  const { codes, scales } = unpackQ8(e, bytes, rows, cols);
  const groups = Math.ceil(cols / e.group);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[r * cols + c] = scales[r * groups + Math.floor(c / e.group)] * codes[r * cols + c];
  }
  return out;
}
