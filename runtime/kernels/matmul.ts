/**
 * Typed wrappers over the matmul kernels (kernels-wasm/src/{lut,gemm,dense}.rs): packed
 * matrices copied once into WASM memory, LUT tables built once per input vector and reused
 * across matrices (fused Q/K/V, gate/up), GEMV (one token) and GEMM (m tokens).
 * Inputs and outputs are Float32Arrays (copied through arena scratch) or raw byte offsets
 * into the kernels' memory (the engine keeps activations there). Every argument is checked
 * here: a bad shape, a misaligned or out-of-range pointer throws ShapeError/KernelError
 * instead of letting the kernel read or write the wrong bytes.
 */
import { KernelError, ShapeError } from "../errors.ts";
import { type Encoding, encodingName, lutPlanes, matrixLayout, type MatrixLayout, TENSOR_ALIGN, validateEncoding } from "../format/encoding.ts";
import type { Kernels } from "./wasm.ts";

/** A matrix in the kernels' native layout, resident in WASM memory at `ptr` (64-byte aligned). */
export interface PackedMatrix {
  readonly encoding: Encoding;
  readonly rows: number;
  readonly cols: number;
  readonly ptr: number;
  readonly layout: MatrixLayout;
}

/** Tables of `m` input vectors for LUT matrices with this (cols, group), `stride` bytes apart. */
export interface LutBuffer {
  readonly cols: number;
  readonly group: number;
  readonly m: number;
  readonly ptr: number;
  readonly stride: number;
}

/** A Float32Array, or the byte offset of f32 data already in WASM memory. */
export type F32Source = Float32Array | number;

const LUT_MODE = { "zero-point": 0, "per-plane": 1 } as const;

/** Bytes of one input vector's tables (see lut.rs). */
export function lutStride(cols: number, group: number): number {
  return Math.ceil(cols / group) * (4 * group + 8);
}

function memoryBytes(k: Kernels): number {
  return k.memory.buffer.byteLength;
}

/** Checks that [ptr, ptr+bytes) lies in WASM memory and ptr is `align`-aligned. */
export function checkRegion(k: Kernels, what: string, ptr: number, bytes: number, align: number): void {
  if (!Number.isSafeInteger(ptr) || ptr <= 0) {
    throw new KernelError(`${what}: pointer ${ptr} is not a positive byte offset into WASM memory`);
  }
  if (ptr % align !== 0) throw new KernelError(`${what}: pointer ${ptr} is not ${align}-byte aligned`);
  const size = memoryBytes(k);
  if (ptr + bytes > size) {
    throw new KernelError(`${what}: region [${ptr}, ${ptr + bytes}) runs past the end of WASM memory (${size} bytes)`);
  }
}

function checkCount(op: string, name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) throw new ShapeError(op, `${name} a positive integer`, String(v));
}

/** Copies packed bytes into the arena once (64-byte aligned) and describes the matrix. */
export function createPackedMatrix(k: Kernels, encoding: Encoding, rows: number, cols: number, bytes: Uint8Array): PackedMatrix {
  const e = validateEncoding(encoding);
  const layout = matrixLayout(e, rows, cols);
  if (bytes.byteLength !== layout.byteLength) {
    throw new ShapeError("createPackedMatrix", `${layout.byteLength} bytes for a ${rows}x${cols} ${encodingName(e)} matrix`, `${bytes.byteLength} bytes`);
  }
  const ptr = k.arena.alloc(layout.byteLength, TENSOR_ALIGN);
  new Uint8Array(k.memory.buffer, ptr, layout.byteLength).set(bytes);
  return { encoding: e, rows, cols, ptr, layout };
}

/** Describes a matrix whose packed bytes already sit at `ptr` in WASM memory (validated). */
export function packedMatrixAt(k: Kernels, encoding: Encoding, rows: number, cols: number, ptr: number): PackedMatrix {
  const e = validateEncoding(encoding);
  const layout = matrixLayout(e, rows, cols);
  checkRegion(k, `packed ${encodingName(e)} matrix`, ptr, layout.byteLength, e.kind === "f32" || e.kind === "f16" ? 16 : TENSOR_ALIGN);
  return { encoding: e, rows, cols, ptr, layout };
}

/** Allocates table space for `m` input vectors of `cols` activations at weight group `group`. */
export function createLut(k: Kernels, cols: number, group: number, m = 1): LutBuffer {
  checkCount("createLut", "cols", cols);
  checkCount("createLut", "m", m);
  if (group !== 32 && group !== 64 && group !== 128) throw new ShapeError("createLut", "group 32, 64 or 128", String(group));
  const stride = lutStride(cols, group);
  return { cols, group, m, ptr: k.arena.alloc(stride * m, TENSOR_ALIGN), stride };
}

/** Runs `body` with f32 data at a validated pointer: copies a Float32Array into scratch. */
function withInput<T>(k: Kernels, op: string, x: F32Source, floats: number, body: (ptr: number) => T): T {
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
function withOutput(k: Kernels, op: string, out: F32Source | undefined, floats: number, body: (ptr: number) => void): Float32Array | undefined {
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

function status(op: string, code: number): void {
  if (code !== 0) throw new KernelError(`${op}: kernel rejected its arguments (status ${code}); this is a wrapper bug, please report it`);
}

/** Builds the tables of `m` input vectors (m, lut.cols) into `lut` (reuse it across matrices). */
export function buildLut(k: Kernels, lut: LutBuffer, x: F32Source, m = 1): void {
  checkCount("buildLut", "m", m);
  if (m > lut.m) throw new ShapeError("buildLut", `at most ${lut.m} input vectors (the buffer's capacity)`, String(m));
  checkRegion(k, "buildLut tables", lut.ptr, lut.stride * lut.m, TENSOR_ALIGN);
  withInput(k, "buildLut", x, m * lut.cols, (xp) =>
    status("buildLut", k.exports.build_lut_f32_batch(xp, lut.cols, m, lut.cols, lut.group, lut.ptr)));
}

/** Per-token int8 quantisation (absmax): returns the codes and the scale. */
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

function lutArgs(e: Encoding): [number, number, number] {
  if (e.kind === "bitplane") return [e.bits, e.group, LUT_MODE[e.scales]];
  if (e.kind === "ternary") return [lutPlanes(e), e.group, 2];
  throw new KernelError(`${encodingName(e)} is not a LUT encoding`);
}

function checkLutFits(k: Kernels, op: string, a: PackedMatrix, lut: LutBuffer, m: number): void {
  const e = a.encoding;
  if (e.kind !== "bitplane" && e.kind !== "ternary") {
    throw new ShapeError(op, "a LUT (bitplane/ternary) matrix for a table input", encodingName(e));
  }
  if (lut.cols !== a.cols || lut.group !== e.group) {
    throw new ShapeError(op, `tables for cols ${a.cols}, group ${e.group}`, `cols ${lut.cols}, group ${lut.group}`);
  }
  if (m > lut.m) throw new ShapeError(op, `at most ${lut.m} tokens (tables built)`, String(m));
  checkRegion(k, `${op} tables`, lut.ptr, lut.stride * m, TENSOR_ALIGN);
}

function isLut(x: unknown): x is LutBuffer {
  return typeof x === "object" && x !== null && !(x instanceof Float32Array) && "stride" in x;
}

/**
 * out (m, rows) = x (m, cols) · Wᵀ. `x` is a Float32Array or pointer of m*cols floats, or for
 * LUT matrices a LutBuffer built by `buildLut` (shared by several matrices). Returns the
 * result as a Float32Array unless `out` is a pointer.
 */
export function gemm(k: Kernels, a: PackedMatrix, x: F32Source | LutBuffer, m: number, out?: F32Source): Float32Array | undefined {
  checkCount("gemm", "m", m);
  checkRegion(k, `packed ${encodingName(a.encoding)} matrix`, a.ptr, a.layout.byteLength, a.encoding.kind === "f32" || a.encoding.kind === "f16" ? 4 : TENSOR_ALIGN);
  const e = a.encoding;
  const { rows, cols } = a;
  if (e.kind === "bitplane" || e.kind === "ternary") {
    const [planes, group, mode] = lutArgs(e);
    const run = (lut: LutBuffer) => {
      checkLutFits(k, "gemm", a, lut, m);
      return withOutput(k, "gemm", out, m * rows, (op) =>
        status("gemm", k.exports.gemm_lut(planes, group, mode, a.ptr, lut.ptr, lut.stride, m, rows, cols, op, rows)));
    };
    if (isLut(x)) return run(x);
    const mark = k.arena.mark();
    try {
      const lut = createLut(k, cols, group, m);
      buildLut(k, lut, x, m);
      return run(lut);
    } finally {
      k.arena.release(mark);
    }
  }
  if (isLut(x)) throw new ShapeError("gemm", "f32 activations for a dense matrix", `tables (LutBuffer) for ${encodingName(e)}`);
  return withInput(k, "gemm", x, m * cols, (xp) =>
    withOutput(k, "gemm", out, m * rows, (op) => {
      if (e.kind === "f32") k.exports.gemm_f32(a.ptr, xp, cols, m, rows, cols, op, rows);
      else if (e.kind === "f16") k.exports.gemm_f16(a.ptr, xp, cols, m, rows, cols, op, rows);
      else status("gemm", k.exports.gemm_q8(a.ptr, a.layout.scaleOffset, e.group, xp, cols, m, rows, cols, op, rows));
    }));
}

/** One token: out (rows) = W · x. See `gemm`. */
export function gemv(k: Kernels, a: PackedMatrix, x: F32Source | LutBuffer, out?: F32Source): Float32Array | undefined {
  return gemm(k, a, x, 1, out);
}

/** Parity/debug: the kernel's exact int lookup sums (padded rows, groups, planes) for one token. */
export function lutGroupSums(k: Kernels, a: PackedMatrix, lut: LutBuffer): Int32Array {
  const [planes, group, mode] = lutArgs(a.encoding);
  checkLutFits(k, "lutGroupSums", a, lut, 1);
  const n = a.layout.rowsPadded * a.layout.groups * planes;
  const mark = k.arena.mark();
  try {
    const op = k.arena.alloc(n * 4, 16);
    status("lutGroupSums", k.exports.lut_group_sums(planes, group, mode, a.ptr, lut.ptr, a.rows, a.cols, op));
    return new Int32Array(k.memory.buffer, op, n).slice();
  } finally {
    k.arena.release(mark);
  }
}
