/**
 * Dequantises a row store's packed rows with the WASM kernels (kv_dequant_token/_channel)
 * instead of the plain loops of kv-quant.ts, which stay the twins (bit-identical output). The
 * compact rows live in the JS heap; a chunk of their codes and f16 parameters is copied into
 * scratch in WASM memory (a quarter of the f32 bytes it becomes, or less) and dequantised
 * straight into the caller's buffer when that is a view of the same memory (the staging
 * buffers of staged-attention.ts), else into scratch and copied out. With a worker pool, up
 * to DEQUANT_SLOTS chunks are copied first and dequantised as one pool batch (the copies stay
 * on the calling thread: the compact rows are not in shared memory).
 */
import { kvDequantChannelCallArgs, kvDequantTokenCallArgs } from "../../kernels/kv-dequant.ts";
import type { Pool } from "../../threads/pool.ts";
import { call } from "../../kernels/regions.ts";
import type { Kernels } from "../../kernels/wasm.ts";
import { ShapeError } from "../../errors.ts";

/** Rows per kernel call on a pool; also the unit of the scratch buffers. */
export const DEQUANT_CHUNK_ROWS = 256;
/**
 * Chunks staged at once (one pool batch); each has its own codes, parameters and output
 * scratch. Fewer, larger calls keep the per-call garbage down: with 4 slots of 64 rows the
 * 1.1B ctx 4096 q4 decode peaked at 643 MB RSS against 566 MB with one 256-row slot.
 */
export const DEQUANT_SLOTS = 2;

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

/** WASM bytes of a dequantiser's scratch for rows up to `maxWidth` wide (codes, parameters, output per slot). */
export function rowDequantizerBytes(maxWidth: number): number {
  return DEQUANT_SLOTS * DEQUANT_CHUNK_ROWS * maxWidth * 9 + 3 * 64;
}

interface Slot {
  readonly codes: number;
  readonly params: number;
  readonly out: number;
}

/**
 * A dequantiser for rows up to `maxWidth` values wide, with its scratch from the kernels'
 * arena; `pool` (optional) runs the chunks of a read in parallel.
 */
export function createWasmRowDequantizer(kernels: Kernels, maxWidth: number, pool?: Pool): RowDequantizer {
  // One block per kind, cut into DEQUANT_SLOTS slots for a pool; without one, a single slot
  // spans the block, so each call takes DEQUANT_SLOTS times the rows (fewer calls).
  const parallel = pool !== undefined && pool.threads > 1;
  const blockValues = DEQUANT_SLOTS * DEQUANT_CHUNK_ROWS * maxWidth;
  const slotCount = parallel ? DEQUANT_SLOTS : 1;
  const chunkRows = (DEQUANT_SLOTS / slotCount) * DEQUANT_CHUNK_ROWS;
  const chunkValues = chunkRows * maxWidth;
  const codesBlock = kernels.arena.alloc(blockValues, 64);
  const paramsBlock = kernels.arena.alloc(blockValues * 4, 64); // worst case: group 1
  const outBlock = kernels.arena.alloc(blockValues * 4, 64);
  const slots: Slot[] = Array.from({ length: slotCount }, (_, s) => ({
    codes: codesBlock + s * chunkValues,
    params: paramsBlock + s * chunkValues * 4,
    out: outBlock + s * chunkValues * 4,
  }));

  // Views of the scratch, made again only when the memory's buffer changes (it grew): a read
  // runs for every layer on every step, and fresh views per chunk are avoidable garbage.
  let views: { buffer: ArrayBufferLike; codes: Uint8Array[]; params: Uint16Array[]; out: Float32Array[] } | undefined;
  const scratch = () => {
    const buffer = kernels.memory.buffer;
    if (views?.buffer !== buffer) {
      views = {
        buffer,
        codes: slots.map((s) => new Uint8Array(buffer, s.codes, chunkValues)),
        params: slots.map((s) => new Uint16Array(buffer, s.params, chunkValues * 2)),
        out: slots.map((s) => new Float32Array(buffer, s.out, chunkValues)),
      };
    }
    return views;
  };

  /**
   * Runs the kernel over chunks of rows: copies each chunk's codes and the parameters it needs
   * (`paramsFor(first row, rows)` gives their offset and count) into a slot, runs up to
   * DEQUANT_SLOTS chunks at once (`callArgs(slot, out, rows)` gives a call's arguments) and
   * places the output.
   */
  const run = (
    exportName: string, codes: Uint8Array, codesAt: number, rowBytes: number, params: Uint16Array, paramsAt: number,
    rows: number, width: number, rowsAt: (r: number) => number, paramsFor: (r: number, n: number) => [number, number],
    out: Float32Array, outAt: number, callArgs: (slot: Slot, out: number, rows: number) => number[],
  ) => {
    if (width > maxWidth) throw new ShapeError("row dequantiser", `rows at most ${maxWidth} wide`, String(width));
    const view = scratch();
    const direct = out.buffer === view.buffer;
    const pending: { args: number[]; r0: number; n: number }[] = [];
    const flush = () => {
      if (parallel && pending.length > 1) {
        pool!.runTasks(pending.map(({ args }) => ({ exportName, args })));
      } else {
        for (const { args } of pending) call(kernels, exportName, args);
      }
      if (!direct) pending.forEach(({ r0, n }, s) => out.set(view.out[s].subarray(0, n * width), outAt + r0 * width));
      pending.length = 0;
    };
    for (let r0 = 0; r0 < rows;) {
      const n = Math.min(rowsAt(r0), rows - r0);
      const s = pending.length;
      view.codes[s].set(codes.subarray(codesAt + r0 * rowBytes, codesAt + (r0 + n) * rowBytes));
      const [from, count] = paramsFor(r0, n);
      view.params[s].set(params.subarray(paramsAt + from, paramsAt + from + count));
      pending.push({ args: callArgs(slots[s], direct ? out.byteOffset + (outAt + r0 * width) * 4 : slots[s].out, n), r0, n });
      if (pending.length === slotCount) flush();
      r0 += n;
    }
    if (pending.length > 0) flush();
  };

  return {
    token(codes, codesAt, params, paramsAt, rows, width, group, bits, out, outAt) {
      const rowBytes = Math.ceil((width * bits) / 8);
      const perRow = 2 * Math.ceil(width / group);
      run("kv_dequant_token", codes, codesAt, rowBytes, params, paramsAt, rows, width, () => chunkRows, (r, n) => [r * perRow, n * perRow], out, outAt,
        (slot, o, n) => kvDequantTokenCallArgs(kernels, { codes: slot.codes, params: slot.params, out: o, rows: n, width, group, bits }));
    },
    channel(codes, codesAt, params, paramsAt, rows, width, bits, block, out, outAt) {
      const rowBytes = Math.ceil((width * bits) / 8);
      // Whole blocks per chunk; a block longer than a chunk goes in pieces that share its parameters.
      const whole = Math.floor(chunkRows / block) * block;
      const rowsAt = (r: number) => whole > 0 ? whole : Math.min(chunkRows, block - (r % block));
      const paramsFor = (r: number, n: number): [number, number] => {
        const first = Math.floor(r / block);
        return [first * 2 * width, (Math.floor((r + n - 1) / block) - first + 1) * 2 * width];
      };
      run("kv_dequant_channel", codes, codesAt, rowBytes, params, paramsAt, rows, width, rowsAt, paramsFor, out, outAt,
        (slot, o, n) => kvDequantChannelCallArgs(kernels, { codes: slot.codes, params: slot.params, out: o, rows: n, width, bits, block: whole > 0 ? block : n }));
    },
  };
}
