/**
 * Checked calls of a linear layer for call plans (runtime/ops/wasm-ops.ts): the export and
 * arguments of one matmul over a prepared input, and of preparing that input (LUT tables or
 * int8 activations) from f32 rows already in WASM memory, validated once when the plan is
 * built so the calls can be queued on a worker pool every token without checks. The checks
 * are those `gemm`/`gemmRows` and `buildLut`/`quantizeQ8Input` make before calling
 * (./matmul.ts, ./matmul-inputs.ts); row shards of a checked matmul are in bounds when they
 * respect `align` (splitRows does).
 */
import { KernelError, ShapeError } from "../errors.ts";
import { encodingName, TENSOR_ALIGN } from "../format/encoding.ts";
import { checkRegion, gemmShardCall, type PackedMatrix, type PreparedInput, type ShardCall } from "./matmul.ts";
import { checkCount } from "./matmul-inputs.ts";
import type { Kernels } from "./wasm.ts";

/** The prepared input kind a matrix reads: LUT tables, q8 codes, or plain f32. */
export function inputKind(a: PackedMatrix): "lut" | "q8" | "f32" {
  const kind = a.encoding.kind;
  return kind === "bitplane" || kind === "ternary" ? "lut" : kind === "q8" ? "q8" : "f32";
}

/** The weight group a matrix's prepared input is built for (0 for f32/f16 matrices). */
export function inputGroup(a: PackedMatrix): number {
  const e = a.encoding;
  return e.kind === "f32" || e.kind === "f16" ? 0 : e.group;
}

/**
 * The checked call computing out (m, outStride) = x · Wᵀ: x is the prepared input (LUT and q8
 * matrices) or the byte offset of m·cols f32 activations (f32/f16 matrices).
 */
export function checkedGemmCall(k: Kernels, a: PackedMatrix, x: number | PreparedInput, m: number, out: number, outStride: number): ShardCall {
  const op = `linear ${encodingName(a.encoding)}`;
  checkCount(op, "m", m);
  if (!Number.isSafeInteger(outStride) || outStride < a.rows) throw new ShapeError(op, `an output row stride ≥ ${a.rows}`, String(outStride));
  const dense = inputKind(a) === "f32";
  checkRegion(k, `${op} matrix`, a.ptr, a.layout.byteLength, dense ? 4 : TENSOR_ALIGN);
  checkRegion(k, `${op} output`, out, 4 * ((m - 1) * outStride + a.rows), 4);
  if (typeof x === "number") {
    if (!dense) throw new ShapeError(op, `a ${inputKind(a)} prepared input`, "f32 activations");
    checkRegion(k, `${op} input`, x, 4 * m * a.cols, 4);
  } else {
    if (x.kind !== inputKind(a)) throw new ShapeError(op, `a ${inputKind(a)} input`, `a ${x.kind} prepared input`);
    if (x.cols !== a.cols || x.group !== inputGroup(a)) {
      throw new ShapeError(op, `an input for cols ${a.cols}, group ${inputGroup(a)}`, `cols ${x.cols}, group ${x.group}`);
    }
    if (m > x.m) throw new ShapeError(op, `at most ${x.m} tokens (prepared)`, String(m));
    checkRegion(k, `${op} prepared input`, x.ptr, x.stride * m, TENSOR_ALIGN);
  }
  return gemmShardCall(a, x, m, out, outStride);
}

/** One call preparing rows of a prepared input. */
export interface PrepareCall {
  readonly exportName: string;
  /** Arguments preparing tokens [begin, end) (the tables of token t at buf.ptr + t·stride). */
  argsFor(begin: number, end: number): number[];
}

/** The checked call preparing `m` tokens of f32 activations at byte offset x (m, buf.cols) into buf. */
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
