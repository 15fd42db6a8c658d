/**
 * Typed wrappers over the matmul kernels (kernels-wasm/src/{gemm,dense,q8dot}.rs): packed
 * matrices copied once into WASM memory, GEMV (one token), GEMM (m tokens) and row shards for
 * worker pools. Activations are Float32Arrays (copied through arena scratch), raw byte offsets
 * into the kernels' memory (the engine keeps activations there), or prepared inputs built
 * once per token and shared by several matrices (matmul-inputs.ts: LUT tables, q8 codes).
 * Every argument is checked here: a bad shape, a misaligned or out-of-range pointer or a
 * mismatched prepared input throws ShapeError/KernelError instead of letting the kernel read
 * or write the wrong bytes.
 */
import { KernelError, ShapeError } from "../errors.ts";
import {
  type Encoding,
  encodingName,
  lutPlanes,
  type MatrixLayout,
  matrixLayout,
  ROW_TILE,
  scaleType,
  TENSOR_ALIGN,
  validateEncoding,
} from "../format/encoding.ts";
import {
  buildLut,
  checkCount,
  checkRegion,
  createLut,
  createQ8Input,
  type F32Source,
  isPrepared,
  type LutBuffer,
  type PreparedInput,
  type Q8Input,
  quantizeQ8Input,
  status,
  withInput,
  withOutput,
} from "./matmul-inputs.ts";
import type { Kernels } from "./wasm.ts";

export {
  buildLut,
  checkedPrepareCall,
  checkRegion,
  createLut,
  createQ8Input,
  type F32Source,
  type LutBuffer,
  lutStride,
  type PrepareCall,
  type PreparedInput,
  type Q8Input,
  q8InputStride,
  quantizeI8,
  quantizeQ8Input,
} from "./matmul-inputs.ts";

/** A matrix in the kernels' native layout, resident in WASM memory at `ptr` (64-byte aligned). */
export interface PackedMatrix {
  readonly encoding: Encoding;
  readonly rows: number;
  readonly cols: number;
  readonly ptr: number;
  readonly layout: MatrixLayout;
}

const LUT_MODE = { "zero-point": 0, "per-plane": 1 } as const;

/** Copies packed bytes into the arena once (64-byte aligned) and describes the matrix. */
export function createPackedMatrix(k: Kernels, encoding: Encoding, rows: number, cols: number, bytes: Uint8Array): PackedMatrix {
  const e = validateEncoding(encoding);
  const layout = matrixLayout(e, rows, cols);
  if (bytes.byteLength !== layout.byteLength) {
    throw new ShapeError(
      "createPackedMatrix",
      `${layout.byteLength} bytes for a ${rows}x${cols} ${encodingName(e)} matrix`,
      `${bytes.byteLength} bytes`,
    );
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

/** The prepared input kind a matrix reads: LUT tables, q8 codes, or plain f32. */
export function inputKind(e: Encoding): "lut" | "q8" | "f32" {
  return e.kind === "bitplane" || e.kind === "ternary" ? "lut" : e.kind === "q8" ? "q8" : "f32";
}

/** The weight group a matrix's prepared input is built for (0 for f32/f16 matrices). */
export function inputGroup(e: Encoding): number {
  return e.kind === "f32" || e.kind === "f16" ? 0 : e.group;
}

function checkInputFits(k: Kernels, op: string, a: PackedMatrix, x: PreparedInput, m: number): void {
  const e = a.encoding;
  const want = inputKind(e);
  if (x.kind !== want) {
    throw new ShapeError(
      op,
      `${want === "f32" ? "f32 activations" : `a ${want} prepared input`} for a ${encodingName(e)} matrix`,
      `a ${x.kind} prepared input`,
    );
  }
  const group = inputGroup(e);
  if (x.cols !== a.cols || x.group !== group) {
    throw new ShapeError(op, `an input for cols ${a.cols}, group ${group}`, `cols ${x.cols}, group ${x.group}`);
  }
  if (m > x.m) throw new ShapeError(op, `at most ${x.m} tokens (prepared)`, String(m));
  checkRegion(k, `${op} prepared input`, x.ptr, x.stride * m, TENSOR_ALIGN);
}

/** planes, group, mode (0 zero-point/offset, 1 per-plane, 2 ternary) and scale type (0 f16, 1 bf16) of gemm_lut. */
function lutArgs(e: Encoding): [number, number, number, number] {
  const st = scaleType(e) === "bf16" ? 1 : 0;
  if (e.kind === "bitplane") return [e.bits, e.group, LUT_MODE[e.scales], st];
  if (e.kind === "ternary") return [lutPlanes(e), e.group, 2, st];
  throw new KernelError(`${encodingName(e)} is not a LUT encoding`);
}

/** Calls the kernel for rows [rowStart, rowStart+rowCount) with validated pointers. */
/** The raw export call computing rows [begin, end) of a matmul: what a pool worker runs. */
export interface ShardCall {
  readonly exportName: string;
  /** Row granularity a shard boundary must respect (the LUT row tile). */
  readonly align: number;
  argsFor(begin: number, end: number): number[];
}

/**
 * Export name and per-shard arguments of out (m, outStride) = x · Wᵀ with the weight, scale
 * and output pointers advanced to each row range. `x` must already be validated (callers go
 * through `gemm`/`gemmRows`, or validate with them first).
 */
export function gemmShardCall(a: PackedMatrix, x: number | PreparedInput, m: number, out: number, outStride: number): ShardCall {
  const e = a.encoding;
  const l = a.layout;
  const cols = a.cols;
  if (e.kind === "bitplane" || e.kind === "ternary") {
    const [planes, group, mode, st] = lutArgs(e);
    const lut = x as LutBuffer;
    // Column blocks span every row: the kernel takes the whole matrix and the row range.
    return {
      exportName: "gemm_lut",
      align: ROW_TILE,
      argsFor: (begin, end) => [planes, group, mode, st, a.ptr, lut.ptr, lut.stride, m, a.rows, begin, end, cols, out, outStride],
    };
  }
  if (e.kind === "q8") {
    return {
      exportName: "gemm_q8_i8",
      align: 1,
      argsFor: (begin, end) => {
        const w = a.ptr + begin * l.colsPadded;
        const scales = a.ptr + l.scaleOffset + 2 * begin * l.groups;
        return [w, scales - w, e.group, (x as Q8Input).ptr, m, end - begin, cols, out + 4 * begin, outStride];
      },
    };
  }
  const size = e.kind === "f32" ? 4 : 2;
  return {
    exportName: `gemm_${e.kind}`,
    align: 1,
    argsFor: (begin, end) => [a.ptr + size * begin * cols, x as number, cols, m, end - begin, cols, out + 4 * begin, outStride],
  };
}

/**
 * The checked call computing rows [begin, end) (default: all) of out (m, outStride) = x · Wᵀ:
 * x is the prepared input (LUT and q8 matrices) or the byte offset of m·cols f32 activations
 * (f32/f16 matrices). Every pointer and shape is checked here once; row shards of the call are
 * then in bounds when they stay inside [begin, end) and respect `align` (splitRows does), so
 * the engine's plans (runtime/ops/wasm-ops.ts) queue them every token without checks.
 */
export function checkedGemmCall(
  k: Kernels,
  a: PackedMatrix,
  x: number | PreparedInput,
  m: number,
  out: number,
  outStride: number,
  begin = 0,
  end = a.rows,
): ShardCall {
  const op = `gemm ${encodingName(a.encoding)}`;
  checkCount(op, "m", m);
  if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end <= begin || end > a.rows) {
    throw new ShapeError(op, `a row range inside [0, ${a.rows})`, `[${begin}, ${end})`);
  }
  const kind = inputKind(a.encoding);
  if (kind === "lut" && begin % ROW_TILE !== 0) throw new ShapeError(op, `a first row that is a multiple of ${ROW_TILE} for LUT matrices`, String(begin));
  if (!Number.isSafeInteger(outStride) || outStride < end) throw new ShapeError(op, `an output row stride >= ${end}`, String(outStride));
  checkMatrix(k, a);
  checkRegion(k, `${op} output`, out, 4 * ((m - 1) * outStride + end), 4);
  if (isPrepared(x)) checkInputFits(k, op, a, x, m);
  else if (kind !== "f32") throw new ShapeError(op, `a ${kind} prepared input for a ${encodingName(a.encoding)} matrix`, "a pointer");
  else checkRegion(k, `${op} input`, x, 4 * m * a.cols, 4);
  return gemmShardCall(a, x, m, out, outStride);
}

function runRows(k: Kernels, a: PackedMatrix, x: number | PreparedInput, m: number, begin: number, end: number, out: number, outStride: number): void {
  const call = checkedGemmCall(k, a, x, m, out, outStride, begin, end);
  const code = k.exports[call.exportName](...call.argsFor(begin, end));
  if (typeof code === "number") status("gemm", code);
}

function checkMatrix(k: Kernels, a: PackedMatrix): void {
  const dense = a.encoding.kind === "f32" || a.encoding.kind === "f16";
  checkRegion(k, `packed ${encodingName(a.encoding)} matrix`, a.ptr, a.layout.byteLength, dense ? 4 : TENSOR_ALIGN);
}

/**
 * out (m, rows) = x (m, cols) · Wᵀ. `x` is a Float32Array or pointer of m*cols floats, or the
 * prepared input the matrix reads (LutBuffer for bitplane/ternary, Q8Input for q8), built
 * once and shared by several matrices. q8 matrices quantise activations to int8 per group
 * (q8_0 x q8_0). Returns the result as a Float32Array unless `out` is a pointer.
 */
export function gemm(k: Kernels, a: PackedMatrix, x: F32Source | PreparedInput, m: number, out?: F32Source): Float32Array | undefined {
  checkCount("gemm", "m", m);
  checkMatrix(k, a);
  const e = a.encoding;
  const { rows, cols } = a;
  const run = (input: number | PreparedInput) => withOutput(k, "gemm", out, m * rows, (op) => runRows(k, a, input, m, 0, rows, op, rows));
  if (isPrepared(x)) return run(x);
  if (e.kind === "f32" || e.kind === "f16") return withInput(k, "gemm", x, m * cols, run);
  const mark = k.arena.mark();
  try {
    if (e.kind === "q8") {
      const q = createQ8Input(k, cols, e.group, m);
      quantizeQ8Input(k, q, x, m);
      return run(q);
    }
    const lut = createLut(k, cols, e.group, m);
    buildLut(k, lut, x, m);
    return run(lut);
  } finally {
    k.arena.release(mark);
  }
}

/**
 * A row shard of `gemm` for worker pools, on pointers only: writes rows
 * [rowStart, rowStart+rowCount) of out (m, outStride) at byte offset `out`. `x` is the prepared
 * input (LUT and q8 matrices) or the pointer of m*cols f32 activations (f32/f16). For LUT
 * matrices rowStart must be a multiple of the 16-row tile.
 */
export function gemmRows(
  k: Kernels,
  a: PackedMatrix,
  x: number | PreparedInput,
  m: number,
  rowStart: number,
  rowCount: number,
  out: number,
  outStride = a.rows,
): void {
  checkCount("gemmRows", "rowCount", rowCount);
  runRows(k, a, x, m, rowStart, rowStart + rowCount, out, outStride);
}

/** One token: out (rows) = W · x. See `gemm`. */
export function gemv(k: Kernels, a: PackedMatrix, x: F32Source | PreparedInput, out?: F32Source): Float32Array | undefined {
  return gemm(k, a, x, 1, out);
}

/** Accumulator sets of the LUT kernel: zero-point 1, per-plane one per plane, ternary one per trit-plane. */
export function lutSetCount(e: Encoding): number {
  if (e.kind === "ternary") return e.planes;
  if (e.kind === "bitplane") return e.scales === "zero-point" ? 1 : e.bits;
  throw new KernelError(`${encodingName(e)} is not a LUT encoding`);
}

/** Parity/debug: the kernel's exact integer sums (padded rows, groups, sets) for one token. */
export function lutGroupSums(k: Kernels, a: PackedMatrix, lut: LutBuffer): Int32Array {
  const [planes, group, mode] = lutArgs(a.encoding);
  checkInputFits(k, "lutGroupSums", a, lut, 1);
  const n = a.layout.rowsPadded * a.layout.groups * lutSetCount(a.encoding);
  const mark = k.arena.mark();
  try {
    const op = k.arena.alloc(n * 4, 16);
    status("lutGroupSums", k.exports.lut_group_sums(planes, group, mode, a.ptr, lut.ptr, a.rows, a.cols, op));
    return new Int32Array(k.memory.buffer, op, n).slice();
  } finally {
    k.arena.release(mark);
  }
}
