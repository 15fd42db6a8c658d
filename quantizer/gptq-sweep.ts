/**
 * GPTQ's column sweep (Frantar et al. 2022, Algorithm 1) in the "left-looking" form, on the
 * reverse Cholesky factor R of the Hessian (gptq-factor.ts, R = U⁻¹ for the paper's U).
 *
 * The paper quantises column i of the running weights W⁽ⁱ⁾, then subtracts e_i·U[i, j>i] with
 * e_i = (w_i − q_i)/U_ii. Unrolled, W0 − Q = E·U, so E = (W0 − Q)·R, and the value column i
 * is quantised from is w_i = W0_i + (Σ_{k<i} D_k·R_ki)/R_ii with D = W0 − Q the rounding
 * differences of the columns already done. So no inverse is formed: per 128-column block,
 * one GEMM D[:, 0:b1]·R[0:b1, block] (gemm_f32, float32 as in the reference implementation)
 * gives the contribution of every earlier block, and the few terms inside the block run in
 * float64 as the columns are quantised. D overwrites W0 column by column in the engine's
 * memory, so the sweep holds one float32 copy of the weights.
 *
 * On request the sweep also stores the scaled error Y = (W0 − Q)·R (GPTQ's `Err1`, the error
 * of column i times R_ii): it comes for free as (w_i − q̂_i)·R_ii, and Y·Yᵀ's diagonal is each
 * row's output error eᵀ(H + λI)e, which the refit (gptq-refit.ts) starts from.
 */
import { type DenseEngine, tiledGemmCalls } from "./dense-engine.ts";
import type { GptqFactor } from "./gptq-factor.ts";
import { type AffineParams, affineCode } from "./methods/grid.ts";

/** Rows of D and columns of R per gemm_f32 call: a few hundred KiB of R per call stay in L2. */
const BAND_ROWS = 64;
const SUB_COLS = 16;

export interface SweepInput {
  /** (rows, cols) original weights; `dead` columns read as 0. */
  readonly weights: Float32Array;
  readonly rows: number;
  readonly cols: number;
  readonly bits: number;
  readonly group: number;
  /** Visiting order (the factor's permutation): position p holds column order[p]. */
  readonly order: readonly number[];
  readonly dead: Uint8Array;
  /** (rows, cols / group) group parameters, fitted before the sweep (static groups). */
  readonly params: readonly AffineParams[];
  /** Engine byte offset of a (rows, cols) f32 buffer to receive Y = (W0 − Q)·R in visiting order. */
  readonly scaledErrorPtr?: number;
}

/** Codes (rows, cols) in the original column order. */
export function gptqSweep(input: SweepInput, factor: GptqFactor, engine: DenseEngine): Uint8Array {
  const { weights, rows, cols, bits, group, order, dead, params, scaledErrorPtr } = input;
  const levels = 1 << bits;
  const groups = cols / group;
  const codes = new Uint8Array(rows * cols);
  const mark = engine.mark();
  try {
    // (rows, cols) in visiting order: W0, then D = W0 − Q for the columns already quantised.
    const wPtr = engine.alloc(rows * cols);
    {
      const w = engine.floats(wPtr, rows * cols);
      for (let r = 0; r < rows; r++) {
        const src = r * cols;
        for (let p = 0; p < cols; p++) w[src + p] = dead[order[p]] ? 0 : weights[src + order[p]];
      }
    }
    const widest = factor.blocks.reduce((m, b) => Math.max(m, b.size), 0);
    const d = new Float64Array(widest); // D of the current row's block, float64
    const d32 = new Float32Array(widest);
    const w0 = new Float32Array(widest); // W0 of the current row's block
    const y32 = new Float32Array(widest); // Y of the current row's block
    for (const block of factor.blocks) {
      const { start, size, diagT, aboveT } = block;
      const blockMark = engine.mark();
      try {
        // c (rows, size): D[:, 0:start]·R[0:start, block], float32 dot products.
        const cPtr = engine.alloc(rows * size);
        if (start > 0) {
          const tPtr = engine.alloc(size * start);
          engine.floats(tPtr, size * start).set(aboveT);
          const product = { w: tPtr, x: wPtr, xStride: cols, m: rows, rows: size, cols: start, out: cPtr, outStride: size };
          engine.gemm(tiledGemmCalls(product, BAND_ROWS, SUB_COLS));
        } else {
          engine.floats(cPtr, rows * size).fill(0);
        }
        const c = engine.floats(cPtr, rows * size);
        const w = engine.floats(wPtr, rows * cols);
        const y = scaledErrorPtr === undefined ? undefined : engine.floats(scaledErrorPtr, rows * cols);
        for (let r = 0; r < rows; r++) {
          const wRow = r * cols + start;
          const cRow = r * size;
          const pRow = r * groups;
          w0.set(w.subarray(wRow, wRow + size));
          for (let i = 0; i < size; i++) {
            const ti = i * size;
            // Σ_{k<i} D_k·R_ki in four partial sums (independent add chains).
            let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            let k = 0;
            for (; k + 4 <= i; k += 4) {
              a0 += d[k] * diagT[ti + k];
              a1 += d[k + 1] * diagT[ti + k + 1];
              a2 += d[k + 2] * diagT[ti + k + 2];
              a3 += d[k + 3] * diagT[ti + k + 3];
            }
            for (; k < i; k++) a0 += d[k] * diagT[ti + k];
            const value = w0[i] + (c[cRow + i] + ((a0 + a1) + (a2 + a3))) / diagT[ti + i];
            const col = order[start + i];
            const p = params[pRow + ((col / group) | 0)];
            const q = affineCode(value, p, levels);
            codes[r * cols + col] = q;
            const quantized = p.d * (q - p.z);
            d[i] = w0[i] - quantized;
            y32[i] = (value - quantized) * diagT[ti + i];
          }
          d32.set(d.subarray(0, size));
          w.set(d32.subarray(0, size), wRow);
          if (y !== undefined) y.set(y32.subarray(0, size), wRow);
        }
      } finally {
        engine.release(blockMark);
      }
    }
  } finally {
    engine.release(mark);
  }
  return codes;
}
