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
export const DEQUANT_CHUNK_ROWS = 256;

export interface RowDequantizer {
  /** Per-token groups: `rows` packed rows from codes[codesAt..] and params[paramsAt..] into out[outAt..]. */
  token(
    codes: Uint8Array, codesAt: number, params: Uint16Array, paramsAt: number,
    rows: number, width: number, group: number, bits: number, out: Float32Array, outAt: number,
  ): void;
  /**
   * Per-channel parameters, one set of `width` pairs per block of `block` rows from
   * params[paramsAt..]; row 0 (codes[codesAt..]) starts a block.
   */
  channel(
    codes: Uint8Array, codesAt: number, params: Uint16Array, paramsAt: number,
    rows: number, width: number, bits: number, block: number, out: Float32Array, outAt: number,
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

  // Views of the scratch, made again only when the memory's buffer changes (it grew): a read
  // runs for every layer on every step, and fresh views per chunk are avoidable garbage.
  let views: { buffer: ArrayBufferLike; codes: Uint8Array; params: Uint16Array; out: Float32Array } | undefined;
  const scratch = () => {
    const buffer = kernels.memory.buffer;
    if (views?.buffer !== buffer) {
      views = {
        buffer,
        codes: new Uint8Array(buffer, codesPtr, DEQUANT_CHUNK_ROWS * maxWidth),
        params: new Uint16Array(buffer, paramsPtr, DEQUANT_CHUNK_ROWS * maxWidth * 2),
        out: new Float32Array(buffer, outPtr, DEQUANT_CHUNK_ROWS * maxWidth),
      };
    }
    return views;
  };

  /**
   * Runs `kernel` over chunks of rows: copies each chunk's codes and the parameters it needs
   * (`paramsFor(first row, rows)` gives their offset and count) and places the output.
   */
  const run = (
    codes: Uint8Array, codesAt: number, rowBytes: number, params: Uint16Array, paramsAt: number,
    rows: number, width: number, chunkRows: (r: number) => number, paramsFor: (r: number, n: number) => [number, number],
    out: Float32Array, outAt: number, kernel: (out: number, rows: number) => void,
  ) => {
    if (width > maxWidth) throw new ShapeError("row dequantiser", `rows at most ${maxWidth} wide`, String(width));
    const view = scratch();
    const direct = out.buffer === view.buffer;
    for (let r0 = 0; r0 < rows;) {
      const n = Math.min(chunkRows(r0), rows - r0);
      view.codes.set(codes.subarray(codesAt + r0 * rowBytes, codesAt + (r0 + n) * rowBytes));
      const [from, count] = paramsFor(r0, n);
      view.params.set(params.subarray(paramsAt + from, paramsAt + from + count));
      kernel(direct ? out.byteOffset + (outAt + r0 * width) * 4 : outPtr, n);
      if (!direct) out.set(view.out.subarray(0, n * width), outAt + r0 * width);
      r0 += n;
    }
  };

  return {
    token(codes, codesAt, params, paramsAt, rows, width, group, bits, out, outAt) {
      const rowBytes = Math.ceil((width * bits) / 8);
      const perRow = 2 * Math.ceil(width / group);
      run(codes, codesAt, rowBytes, params, paramsAt, rows, width, () => DEQUANT_CHUNK_ROWS, (r, n) => [r * perRow, n * perRow], out, outAt,
        (o, n) => kvDequantToken(kernels, { codes: codesPtr, params: paramsPtr, out: o, rows: n, width, group, bits }));
    },
    channel(codes, codesAt, params, paramsAt, rows, width, bits, block, out, outAt) {
      const rowBytes = Math.ceil((width * bits) / 8);
      // Whole blocks per chunk; a block longer than a chunk goes in pieces that share its parameters.
      const whole = Math.floor(DEQUANT_CHUNK_ROWS / block) * block;
      const chunkRows = (r: number) => whole > 0 ? whole : Math.min(DEQUANT_CHUNK_ROWS, block - (r % block));
      const paramsFor = (r: number, n: number): [number, number] => {
        const first = Math.floor(r / block);
        return [first * 2 * width, (Math.floor((r + n - 1) / block) - first + 1) * 2 * width];
      };
      run(codes, codesAt, rowBytes, params, paramsAt, rows, width, chunkRows, paramsFor, out, outAt,
        (o, n) => kvDequantChannel(kernels, { codes: codesPtr, params: paramsPtr, out: o, rows: n, width, bits, block: whole > 0 ? block : n }));
    },
  };
}
