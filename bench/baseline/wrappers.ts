/**
 * Typed wrappers over the benchmark's measuring sticks (kernels-wasm/src/baseline.rs): the
 * "dequantise a row to f32, then dot" GEMV on the same PackedMatrix the real kernels read,
 * as one call or as row shards for a worker pool (each shard with its own scratch row), and
 * the streaming-read kernel that measures memory bandwidth. Not used by the runtime; every
 * argument is still checked here (ShapeError/KernelError) so no kernel reads the wrong bytes.
 */
import { KernelError, ShapeError } from "../../runtime/errors.ts";
import { encodingName, lutPlanes, TENSOR_ALIGN, scaleType } from "../../runtime/format/encoding.ts";
import type { PackedMatrix } from "../../runtime/kernels/matmul.ts";
import { checkRegion, type F32Source, status, withInput, withOutput } from "../../runtime/kernels/matmul-inputs.ts";
import { splitRows } from "../../runtime/threads/pool.ts";
import type { Kernels } from "../../runtime/kernels/wasm.ts";

/** Scratch rows for the dequantise baseline: `slots` rows of `slotBytes`, one per concurrent shard. */
export interface DequantScratch {
  readonly ptr: number;
  readonly slotBytes: number;
  readonly slots: number;
}

/** The export and per-shard arguments of one baseline GEMV: what a pool worker runs. */
export interface DequantCall {
  readonly exportName: string;
  /** Arguments computing out[begin, end) with scratch row `slot`. */
  argsFor(begin: number, end: number, slot: number): number[];
}

const LUT_MODE = { "zero-point": 0, "per-plane": 1 } as const;

/** Bytes of one scratch row for `a`: cols rounded up to the group, in f32 (0 for f32 matrices). */
export function dequantScratchBytes(a: PackedMatrix): number {
  return a.encoding.kind === "f32" ? 0 : 4 * a.layout.colsPadded;
}

/** Allocates `slots` scratch rows for matrices shaped like `a` (one per thread that will run a shard). */
export function createDequantScratch(k: Kernels, a: PackedMatrix, slots = 1): DequantScratch {
  if (!Number.isSafeInteger(slots) || slots < 1) throw new ShapeError("createDequantScratch", "slots a positive integer", String(slots));
  const slotBytes = Math.ceil(dequantScratchBytes(a) / TENSOR_ALIGN) * TENSOR_ALIGN;
  return { ptr: k.arena.alloc(Math.max(slotBytes * slots, TENSOR_ALIGN), TENSOR_ALIGN), slotBytes, slots };
}

function checkMatrix(k: Kernels, a: PackedMatrix): void {
  const dense = a.encoding.kind === "f32" || a.encoding.kind === "f16";
  checkRegion(k, `packed ${encodingName(a.encoding)} matrix`, a.ptr, a.layout.byteLength, dense ? 4 : TENSOR_ALIGN);
}

/**
 * Validates every pointer once and returns the call: `x` holds a.cols f32, `out` a.rows f32
 * (shards write out[begin, end)), `scratch` must fit a's rows. argsFor checks each range and slot.
 */
export function gemvDequantCall(k: Kernels, a: PackedMatrix, x: number, out: number, scratch: DequantScratch): DequantCall {
  checkMatrix(k, a);
  checkRegion(k, "gemvDequant input", x, 4 * a.cols, 4);
  checkRegion(k, "gemvDequant output", out, 4 * a.rows, 4);
  const need = dequantScratchBytes(a);
  if (scratch.slotBytes < need) {
    throw new ShapeError("gemvDequant", `scratch rows of at least ${need} bytes for ${a.cols} cols`, `${scratch.slotBytes} bytes`);
  }
  if (need > 0) checkRegion(k, "gemvDequant scratch", scratch.ptr, scratch.slotBytes * scratch.slots, 16);
  const { rows, cols } = a;
  const e = a.encoding;
  const slotPtr = (slot: number) => {
    if (!Number.isSafeInteger(slot) || slot < 0 || slot >= scratch.slots) {
      throw new ShapeError("gemvDequant", `a scratch slot in [0, ${scratch.slots})`, String(slot));
    }
    return scratch.ptr + slot * scratch.slotBytes;
  };
  const range = (begin: number, end: number) => {
    if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || begin > end || end > rows) {
      throw new ShapeError("gemvDequant", `a row range inside [0, ${rows}]`, `[${begin}, ${end})`);
    }
  };
  const call = (exportName: string, args: (begin: number, end: number, slot: number) => number[]): DequantCall => ({
    exportName,
    argsFor: (begin, end, slot) => {
      range(begin, end);
      return args(begin, end, slot);
    },
  });
  switch (e.kind) {
    case "bitplane":
    case "ternary": {
      const mode = e.kind === "ternary" ? 2 : LUT_MODE[e.scales];
      const st = scaleType(e) === "bf16" ? 1 : 0;
      return call("gemv_dequant_lut", (b, en, s) => [lutPlanes(e), e.group, mode, st, a.ptr, x, rows, cols, b, en, out, slotPtr(s)]);
    }
    case "q8":
      return call("gemv_dequant_q8", (b, en, s) => [a.ptr, a.layout.scaleOffset, e.group, x, rows, cols, b, en, out, slotPtr(s)]);
    case "f16":
      return call("gemv_dequant_f16", (b, en, s) => [a.ptr, x, rows, cols, b, en, out, slotPtr(s)]);
    case "f32":
      return call("gemv_dequant_f32", (b, en) => [a.ptr, x, rows, cols, b, en, out]);
  }
}

/** Argument lists splitting `call` over `threads` shards (row ranges, slot i for shard i), for pool.run. */
export function dequantShards(call: DequantCall, rows: number, threads: number): number[][] {
  return splitRows(rows, threads).map(([begin, end], slot) => call.argsFor(begin, end, slot));
}

/** Runs one shard of `call` on this thread (rows [begin, end), scratch row `slot`). */
export function runDequantShard(k: Kernels, call: DequantCall, begin: number, end: number, slot = 0): void {
  status("gemvDequant", k.exports[call.exportName](...call.argsFor(begin, end, slot)));
}

/** out (rows) = W x through the dequantise-then-dot baseline, on this thread. */
export function gemvDequant(k: Kernels, a: PackedMatrix, x: F32Source, out?: F32Source): Float32Array | undefined {
  return withInput(k, "gemvDequant", x, a.cols, (xp) =>
    withOutput(k, "gemvDequant", out, a.rows, (op) => {
      const mark = k.arena.mark();
      try {
        const call = gemvDequantCall(k, a, xp, op, createDequantScratch(k, a));
        runDequantShard(k, call, 0, a.rows);
      } finally {
        k.arena.release(mark);
      }
    }));
}

/** Checks a streaming-read region: 16-byte aligned, a whole number of u32 words, inside memory. */
export function checkStreamRegion(k: Kernels, ptr: number, bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 4 || bytes % 4 !== 0) {
    throw new ShapeError("streamSumU32", "a positive byte count that is a multiple of 4", String(bytes));
  }
  checkRegion(k, "streamSumU32 region", ptr, bytes, 16);
}

/** Wrapping u32 sum of the words in [ptr, ptr+bytes): one streaming read of the region. */
export function streamSumU32(k: Kernels, ptr: number, bytes: number): number {
  checkStreamRegion(k, ptr, bytes);
  return k.exports.stream_sum_u32(ptr, bytes / 4) >>> 0;
}

/**
 * Argument lists of `stream_sum_u32` reading [ptr, ptr+bytes) in `parts` contiguous pieces
 * (16-byte aligned boundaries), for pool.run.
 */
export function streamShards(k: Kernels, ptr: number, bytes: number, parts: number): number[][] {
  checkStreamRegion(k, ptr, bytes);
  if (bytes % 16 !== 0) throw new ShapeError("streamShards", "a byte count that is a multiple of 16", String(bytes));
  if (!Number.isSafeInteger(parts) || parts < 1) throw new KernelError(`streamShards: parts must be a positive integer, got ${parts}`);
  return splitRows(bytes / 16, parts).map(([begin, end]) => [ptr + 16 * begin, 4 * (end - begin)]);
}
