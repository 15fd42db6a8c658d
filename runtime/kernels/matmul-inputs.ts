/**
 * Activation side of the matmul wrappers: prepared inputs built once per token and reused by
 * every matrix that reads the same activations (fused Q/K/V, gate/up): LUT tables for
 * bitplane/ternary matrices (kernels-wasm/src/lut.rs) and int8 activations per block for q8
 * matrices (q8dot.rs). Also the pointer validation and arena scratch helpers the wrappers share.
 */
import { KernelError, ShapeError } from "../errors.ts";
import { TENSOR_ALIGN } from "../format/encoding.ts";
import type { Kernels } from "./wasm.ts";

/**
 * Prepared activations of `m` tokens with `cols` columns for matrices of weight group
 * `group`, `stride` bytes apart from `ptr`. kind "lut": T-MAC tables; kind "q8": int8 codes
 * (in int16 lanes) and one f32 scale per block of `group`.
 */
export interface PreparedInput {
  readonly kind: "lut" | "q8";
  readonly cols: number;
  readonly group: number;
  readonly m: number;
  readonly ptr: number;
  readonly stride: number;
}
export type LutBuffer = PreparedInput & { readonly kind: "lut" };
export type Q8Input = PreparedInput & { readonly kind: "q8" };

/** A Float32Array, or the byte offset of f32 data already in WASM memory. */
export type F32Source = Float32Array | number;

/** Bytes of one input vector's tables (see lut.rs). */
export function lutStride(cols: number, group: number): number {
  return Math.ceil(cols / group) * (4 * group + 8);
}

/** Bytes of one token's q8 activations (see q8dot.rs). */
export function q8InputStride(cols: number, group: number): number {
  const groups = Math.ceil(cols / group);
  return groups * group * 2 + groups * 4;
}

/** Checks that [ptr, ptr+bytes) lies in WASM memory and ptr is `align`-aligned. */
export function checkRegion(k: Kernels, what: string, ptr: number, bytes: number, align: number): void {
  if (!Number.isSafeInteger(ptr) || ptr <= 0) {
    throw new KernelError(`${what}: pointer ${ptr} is not a positive byte offset into WASM memory`);
  }
  if (ptr % align !== 0) throw new KernelError(`${what}: pointer ${ptr} is not ${align}-byte aligned`);
  const size = k.memory.buffer.byteLength;
  if (ptr + bytes > size) {
    throw new KernelError(`${what}: region [${ptr}, ${ptr + bytes}) runs past the end of WASM memory (${size} bytes)`);
  }
}

export function checkCount(op: string, name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) throw new ShapeError(op, `${name} a positive integer`, String(v));
}

export function status(op: string, code: number): void {
  if (code !== 0) throw new KernelError(`${op}: kernel rejected its arguments (status ${code}); this is a wrapper bug, please report it`);
}

export function isPrepared(x: unknown): x is PreparedInput {
  return typeof x === "object" && x !== null && !(x instanceof Float32Array) && "stride" in x && "kind" in x;
}

/** Runs `body` with f32 data at a validated pointer: copies a Float32Array into scratch. */
export function withInput<T>(k: Kernels, op: string, x: F32Source, floats: number, body: (ptr: number) => T): T {
  if (typeof x === "number") {
    checkRegion(k, `${op} input`, x, floats * 4, 4);
    return body(x);
  }
  if (x.length !== floats) throw new ShapeError(op, `input of ${floats} floats`, `${x.length}`);
  const mark = k.arena.mark();
  try {
    const ptr = k.arena.alloc(floats * 4, 16);
    new Float32Array(k.memory.buffer, ptr, floats).set(x);
    return body(ptr);
  } finally {
    k.arena.release(mark);
  }
}

/** Writes `floats` results through `body` to `out` (pointer or array) or to a new array. */
export function withOutput(
  k: Kernels,
  op: string,
  out: F32Source | undefined,
  floats: number,
  body: (ptr: number) => void,
): Float32Array | undefined {
  if (typeof out === "number") {
    checkRegion(k, `${op} output`, out, floats * 4, 4);
    body(out);
    return undefined;
  }
  if (out !== undefined && out.length !== floats) throw new ShapeError(op, `output of ${floats} floats`, `${out.length}`);
  const mark = k.arena.mark();
  try {
    const ptr = k.arena.alloc(floats * 4, 16);
    body(ptr);
    const result = out ?? new Float32Array(floats);
    result.set(new Float32Array(k.memory.buffer, ptr, floats));
    return result;
  } finally {
    k.arena.release(mark);
  }
}

/** Allocates table space for `m` input vectors of `cols` activations at weight group `group`. */
export function createLut(k: Kernels, cols: number, group: number, m = 1): LutBuffer {
  checkCount("createLut", "cols", cols);
  checkCount("createLut", "m", m);
  if (group !== 32 && group !== 64 && group !== 128 && group !== 256) throw new ShapeError("createLut", "group 32, 64, 128 or 256", String(group));
  const stride = lutStride(cols, group);
  return { kind: "lut", cols, group, m, ptr: k.arena.alloc(stride * m, TENSOR_ALIGN), stride };
}

/** Allocates space for `m` tokens of q8 activations for q8 matrices of group `group`. */
export function createQ8Input(k: Kernels, cols: number, group: number, m = 1): Q8Input {
  checkCount("createQ8Input", "cols", cols);
  checkCount("createQ8Input", "m", m);
  if (!Number.isSafeInteger(group) || group < 16 || group % 16 !== 0) {
    throw new ShapeError("createQ8Input", "group a positive multiple of 16", String(group));
  }
  const stride = q8InputStride(cols, group);
  return { kind: "q8", cols, group, m, ptr: k.arena.alloc(stride * m, TENSOR_ALIGN), stride };
}

/** One call preparing rows of a prepared input. */
export interface PrepareCall {
  readonly exportName: string;
  /** Arguments preparing tokens [begin, end) (the input of token t at buf.ptr + t·stride). */
  argsFor(begin: number, end: number): number[];
}

/**
 * The checked call preparing `m` tokens of f32 activations at byte offset x (m, buf.cols)
 * into buf: LUT tables or int8 blocks. Checked once; the engine's plans queue its token
 * ranges every step without checks.
 */
export function checkedPrepareCall(k: Kernels, buf: PreparedInput, x: number, m: number): PrepareCall {
  const op = buf.kind === "lut" ? "buildLut" : "quantizeQ8Input";
  checkCount(op, "m", m);
  if (m > buf.m) throw new ShapeError(op, `at most ${buf.m} input vectors (the buffer's capacity)`, String(m));
  checkRegion(k, `${op} buffer`, buf.ptr, buf.stride * buf.m, TENSOR_ALIGN);
  checkRegion(k, `${op} input`, x, 4 * m * buf.cols, 4);
  if (x < buf.ptr + buf.stride * buf.m && buf.ptr < x + 4 * m * buf.cols) throw new KernelError(`${op}: the input overlaps the prepared buffer`);
  const { cols, group, stride } = buf;
  return {
    exportName: buf.kind === "lut" ? "build_lut_f32_batch" : "quantize_q8_act",
    argsFor: (begin, end) => [x + 4 * begin * cols, cols, end - begin, cols, group, buf.ptr + begin * stride],
  };
}

function prepare(k: Kernels, buf: PreparedInput, x: F32Source, m: number): void {
  const op = buf.kind === "lut" ? "buildLut" : "quantizeQ8Input";
  checkCount(op, "m", m);
  withInput(k, op, x, m * buf.cols, (xp) => {
    const call = checkedPrepareCall(k, buf, xp, m);
    status(op, k.exports[call.exportName](...call.argsFor(0, m)) as number);
  });
}

/** Builds the tables of `m` input vectors (m, lut.cols) into `lut` (reuse it across matrices). */
export function buildLut(k: Kernels, lut: LutBuffer, x: F32Source, m = 1): void {
  prepare(k, lut, x, m);
}

/** Quantises `m` tokens (m, buf.cols) to int8 per block of buf.group into `buf`. */
export function quantizeQ8Input(k: Kernels, buf: Q8Input, x: F32Source, m = 1): void {
  prepare(k, buf, x, m);
}

/** Per-token int8 quantisation (absmax, BitNet activations): returns the codes and the scale. */
export function quantizeI8(k: Kernels, x: Float32Array): { q: Int8Array; scale: number } {
  checkCount("quantizeI8", "length", x.length);
  return withInput(k, "quantizeI8", x, x.length, (xp) => {
    const mark = k.arena.mark();
    try {
      const qp = k.arena.alloc(x.length + 16, 16);
      const sp = qp + Math.ceil(x.length / 16) * 16;
      k.exports.quantize_i8_f32(xp, x.length, qp, sp);
      return { q: new Int8Array(k.memory.buffer, qp, x.length).slice(), scale: new Float32Array(k.memory.buffer, sp, 1)[0] };
    } finally {
      k.arena.release(mark);
    }
  });
}
