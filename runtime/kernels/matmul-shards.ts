/**
 * Splits one matmul into row-range calls for the worker pool: each shard gets the raw export
 * arguments for rows [begin, end), with the weight, scale and output pointers advanced to
 * that range. LUT matrices split on whole row tiles (ROW_TILE rows). The pointers come from
 * matrices and buffers the wrappers in ./matmul.ts already validated.
 */
import { ROW_TILE, lutPlanes } from "../format/encoding.ts";
import { KernelError } from "../errors.ts";
import type { LutBuffer, PackedMatrix } from "./matmul.ts";

const LUT_MODE = { "zero-point": 0, "per-plane": 1 } as const;

export interface ShardCall {
  readonly exportName: string;
  /** Row granularity a shard boundary must respect. */
  readonly align: number;
  argsFor(begin: number, end: number): number[];
}

/**
 * out (m, rows) = x (m, cols) · Wᵀ, where x is LUT tables (LUT matrices) or f32 rows at
 * `xPtr` `xStride` floats apart (dense matrices), and out has `outStride` floats per token.
 */
export function matmulShards(
  a: PackedMatrix,
  input: { lut?: LutBuffer; xPtr?: number; xStride?: number },
  m: number,
  outPtr: number,
  outStride: number,
): ShardCall {
  const e = a.encoding;
  const { cols, layout } = a;
  if (e.kind === "bitplane" || e.kind === "ternary") {
    const lut = input.lut;
    if (lut === undefined) throw new KernelError(`matmulShards: ${a.rows}x${cols} LUT matrix needs tables`);
    const planes = lutPlanes(e);
    const mode = e.kind === "ternary" ? 2 : LUT_MODE[e.scales];
    const tileBytes = layout.groups * layout.blockBytes;
    return {
      exportName: "gemm_lut",
      align: ROW_TILE,
      argsFor: (begin, end) => [
        planes, e.group, mode, a.ptr + (begin / ROW_TILE) * tileBytes, lut.ptr, lut.stride, m, end - begin, cols, outPtr + begin * 4, outStride,
      ],
    };
  }
  const xPtr = input.xPtr;
  if (xPtr === undefined) throw new KernelError(`matmulShards: ${a.rows}x${cols} dense matrix needs f32 input`);
  const xStride = input.xStride ?? cols;
  switch (e.kind) {
    case "f32":
      return {
        exportName: "gemm_f32",
        align: 1,
        argsFor: (begin, end) => [a.ptr + begin * cols * 4, xPtr, xStride, m, end - begin, cols, outPtr + begin * 4, outStride],
      };
    case "f16":
      return {
        exportName: "gemm_f16",
        align: 1,
        argsFor: (begin, end) => [a.ptr + begin * cols * 2, xPtr, xStride, m, end - begin, cols, outPtr + begin * 4, outStride],
      };
    case "q8": {
      // Scales live at ptr + scaleOffset, (rows, groups) f16: keep that address fixed per row.
      const rowBytes = layout.colsPadded;
      return {
        exportName: "gemm_q8",
        align: 1,
        argsFor: (begin, end) => [
          a.ptr + begin * rowBytes, layout.scaleOffset - begin * rowBytes + begin * layout.groups * 2, e.group,
          xPtr, xStride, m, end - begin, cols, outPtr + begin * 4, outStride,
        ],
      };
    }
  }
}
