/**
 * Dequantises a row store's packed rows with the WASM kernels (kv_dequant_token/_channel)
 * instead of the plain loops of kv-quant.ts, which stay the twins (bit-identical output). The
 * compact rows live in the JS heap; a chunk of their codes and f16 parameters is copied into
 * scratch in WASM memory (a quarter of the f32 bytes it becomes, or less) and dequantised
 * straight into the caller's buffer when that is a view of the same memory (the staging
 * buffers of staged-attention.ts), else into scratch and copied out.
 */
import { kvDequantChannel, kvDequantToken } from "../../kernels/kv-dequant.ts";
import type { Kernels } from "../../kernels/wasm.ts";
import { ShapeError } from "../../errors.ts";

/** Rows per kernel call; also the unit of the scratch buffers. */
export const DEQUANT_CHUNK_ROWS = 64;

export interface RowDequantizer {
  /** Per-token groups: `rows` packed rows from codes[codesAt..] and params[paramsAt..] into out[outAt..]. */
  token(
    codes: Uint8Array, codesAt: number, params: Uint16Array, paramsAt: number,
    rows: number, width: number, group: number, bits: number, out: Float32Array, outAt: number,
  ): void;
  /** Per-channel parameters params[paramsAt..] (width pairs) shared by the rows. */
  channel(
    codes: Uint8Array, codesAt: number, params: Uint16Array, paramsAt: number,
    rows: number, width: number, bits: number, out: Float32Array, outAt: number,
  ): void;
}

/** WASM bytes of a dequantiser's scratch for rows up to `maxWidth` wide (codes, parameters, output). */
export function rowDequantizerBytes(maxWidth: number): number {
  return DEQUANT_CHUNK_ROWS * maxWidth * 9 + 3 * 64;
}

/** A dequantiser for rows up to `maxWidth` values wide, with its scratch from the kernels' arena. */
export function createWasmRowDequantizer(kernels: Kernels, maxWidth: number): RowDequantizer {
  const codesPtr = kernels.arena.alloc(DEQUANT_CHUNK_ROWS * maxWidth, 64);
  const paramsPtr = kernels.arena.alloc(DEQUANT_CHUNK_ROWS * maxWidth * 4, 64); // worst case: group 1
  const outPtr = kernels.arena.alloc(DEQUANT_CHUNK_ROWS * maxWidth * 4, 64);

  // Runs `kernel` over chunks of rows, staging codes and parameters and placing the output.
  const run = (
    codes: Uint8Array, codesAt: number, rowBytes: number, params: Uint16Array, paramsAt: number, paramsPerRow: number,
    sharedParams: number, rows: number, width: number, out: Float32Array, outAt: number,
    kernel: (codes: number, params: number, out: number, rows: number) => void,
  ) => {
    if (width > maxWidth) throw new ShapeError("row dequantiser", `rows at most ${maxWidth} wide`, String(width));
    const buffer = kernels.memory.buffer;
    const direct = out.buffer === buffer;
    if (sharedParams > 0) new Uint16Array(buffer, paramsPtr, sharedParams).set(params.subarray(paramsAt, paramsAt + sharedParams));
    for (let r0 = 0; r0 < rows; r0 += DEQUANT_CHUNK_ROWS) {
      const n = Math.min(DEQUANT_CHUNK_ROWS, rows - r0);
      new Uint8Array(buffer, codesPtr, n * rowBytes).set(codes.subarray(codesAt + r0 * rowBytes, codesAt + (r0 + n) * rowBytes));
      if (paramsPerRow > 0) {
        const from = paramsAt + r0 * paramsPerRow;
        new Uint16Array(buffer, paramsPtr, n * paramsPerRow).set(params.subarray(from, from + n * paramsPerRow));
      }
      const target = direct ? out.byteOffset + (outAt + r0 * width) * 4 : outPtr;
      kernel(codesPtr, paramsPtr, target, n);
      if (!direct) out.set(new Float32Array(buffer, outPtr, n * width), outAt + r0 * width);
    }
  };

  return {
    token(codes, codesAt, params, paramsAt, rows, width, group, bits, out, outAt) {
      const rowBytes = Math.ceil((width * bits) / 8);
      const perRow = 2 * Math.ceil(width / group);
      run(codes, codesAt, rowBytes, params, paramsAt, perRow, 0, rows, width, out, outAt, (c, p, o, n) =>
        kvDequantToken(kernels, { codes: c, params: p, out: o, rows: n, width, group, bits }));
    },
    channel(codes, codesAt, params, paramsAt, rows, width, bits, out, outAt) {
      const rowBytes = Math.ceil((width * bits) / 8);
      run(codes, codesAt, rowBytes, params, paramsAt, 0, 2 * width, rows, width, out, outAt, (c, p, o, n) =>
        kvDequantChannel(kernels, { codes: c, params: p, out: o, rows: n, width, bits }));
    },
  };
}
