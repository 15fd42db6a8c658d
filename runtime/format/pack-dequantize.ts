/**
 * Dequantisation of any packed encoding back to f32 (the reference engine and the tests use
 * it; layouts in encoding.ts). 1-D tensors pass rows = 1.
 */
import type { Encoding } from "./encoding.ts";
import { unpackF16, unpackF32 } from "./pack-f16.ts";
import { dequantizeLut } from "./pack-lut.ts";
import { dequantizeQ8 } from "./pack-q8.ts";

/** (rows, cols) f32 weights of a tensor packed in encoding `e`. */
export function dequantize(e: Encoding, bytes: Uint8Array, rows: number, cols: number): Float32Array {
  switch (e.kind) {
    case "f32":
      return unpackF32(bytes, rows * cols);
    case "f16":
      return unpackF16(bytes, rows * cols);
    case "q8":
      return dequantizeQ8(e, bytes, rows, cols);
    case "bitplane":
    case "ternary":
      return dequantizeLut(e, bytes, rows, cols);
  }
}
