/**
 * GPTQ's factor on the WASM GEMM: the "reverse" Cholesky factor R (upper triangular) of the
 * damped, act-order-permuted Hessian B = P·H·Pᵀ + λI = R·Rᵀ, so that R = U⁻¹ for the upper
 * Cholesky factor U of B⁻¹ that GPTQ (Frantar et al. 2022, §4 "Cholesky reformulation") uses;
 * gptq-sweep.ts works with R directly and never forms an inverse.
 *
 * Blocked, right-looking from the bottom-right corner (Golub & Van Loan §4.2.9, mirrored):
 * per 128-wide block column J, last first, factor the diagonal block R_JJ, solve the panel
 * R_KJ = B_KJ·R_JJ⁻ᵀ for the blocks K above it, then update the trailing blocks
 * B_KL −= R_KJ·R_LJᵀ (K ≤ L < J). The diagonal blocks, the panel solves and the working matrix
 * stay float64; only the trailing update (n³/6 of the n³/6 + O(n²·128) multiply-adds) runs as
 * float32 products on gemm_f32, each output one dot product, so the result does not depend on
 * the thread count. Reference GPTQ runs the whole factorisation in float32; the parity tests
 * bound the difference to linalg.ts reverseCholeskyUpper (plain float64).
 */
import { ShapeError } from "../runtime/errors.ts";
import type { DenseEngine } from "./dense-engine.ts";
import { dampingSchedule, type HessianView, meanDiagonal } from "./linalg.ts";

/** Block width: GPTQ's lazy-batch block and the factorisation's block column. */
export const FACTOR_BLOCK = 128;

/** One 128-wide block column J of R, columns [start, start + size). */
export interface FactorBlock {
  readonly start: number;
  readonly size: number;
  /** (size, size) R_JJᵀ, float64: row i holds column i of R_JJ (entries 0..i). */
  readonly diagT: Float64Array;
  /** (size, start) R[0:start, J]ᵀ in float32: row i holds column start + i of R above the block. */
  readonly aboveT: Float32Array;
}

export interface GptqFactor {
  readonly n: number;
  readonly blocks: readonly FactorBlock[];
  /** Damping added to the diagonal (λ·mean diag). */
  readonly lambda: number;
}

/** Block boundaries of [0, n): [start, size] per 128 columns, the last one ragged. */
export function factorBlocks(n: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let s = 0; s < n; s += FACTOR_BLOCK) out.push([s, Math.min(FACTOR_BLOCK, n - s)]);
  return out;
}

/**
 * R with P·H·Pᵀ + λ·mean·I = R·Rᵀ (P from `view.order`, the diagonal from `view.diag`), λ
 * from damp ×10 until positive definite. Throws ShapeError when even λ = 1 fails.
 */
export function reverseCholeskyBlocked(h: Float64Array, n: number, damp: number, view: HessianView, engine: DenseEngine): GptqFactor {
  if (h.length !== n * n) throw new ShapeError("gptq factor", `${n}x${n} values`, `${h.length}`);
  const mean = meanDiagonal(h, n, view);
  for (const lambda of dampingSchedule(damp)) {
    const blocks = tryFactor(h, n, lambda * mean, view, engine);
    if (blocks !== undefined) return { n, blocks, lambda: lambda * mean };
  }
  throw new ShapeError("gptq", "a positive definite Hessian after damping", "a singular one; use more calibration text");
}

/** One attempt at a given diagonal shift; undefined when a pivot is not positive. */
function tryFactor(h: Float64Array, n: number, shift: number, view: HessianView, engine: DenseEngine): FactorBlock[] | undefined {
  const bounds = factorBlocks(n);
  const m = bounds.length;
  const { order, diag } = view;
  // Working upper tiles B_KL (K ≤ L), float64 (sizeK, sizeL), filled from the permuted H.
  const tiles: Float64Array[][] = [];
  for (let k = 0; k < m; k++) {
    const [sk, nk] = bounds[k];
    tiles.push([]);
    for (let l = k; l < m; l++) {
      const [sl, nl] = bounds[l];
      const t = new Float64Array(nk * nl);
      for (let i = 0; i < nk; i++) {
        const hi = order[sk + i] * n;
        for (let j = 0; j < nl; j++) t[i * nl + j] = h[hi + order[sl + j]];
      }
      if (k === l) for (let i = 0; i < nk; i++) t[i * nl + i] = diag[order[sk + i]] + shift;
      tiles[k][l - k] = t;
    }
  }
  const blocks: FactorBlock[] = new Array(m);
  for (let J = m - 1; J >= 0; J--) {
    const [sJ, nJ] = bounds[J];
    const r = reverseCholeskySmall(tiles[J][0], nJ);
    if (r === undefined) return undefined;
    const diagT = new Float64Array(nJ * nJ);
    for (let i = 0; i < nJ; i++) for (let j = i; j < nJ; j++) diagT[j * nJ + i] = r[i * nJ + j];
    tiles[J] = [];
    // Panel R[0:sJ, J] = B[0:sJ, J]·R_JJ⁻ᵀ, row by row in float64, solved in place in B's tiles.
    const aboveT = new Float32Array(nJ * sJ);
    const mark = engine.mark();
    try {
      const panelPtr = engine.alloc(sJ * nJ); // (sJ, nJ) float32 copy of the panel for the GEMM
      const panel = engine.floats(panelPtr, sJ * nJ);
      for (let K = 0; K < J; K++) {
        const [sK, nK] = bounds[K];
        const t = tiles[K][J - K]; // (nK, nJ)
        for (let i = 0; i < nK; i++) {
          solveRowUpper(t, i * nJ, r, nJ);
          for (let c = 0; c < nJ; c++) {
            const v = t[i * nJ + c];
            panel[(sK + i) * nJ + c] = v;
            aboveT[c * sJ + sK + i] = v;
          }
        }
        tiles[K].length = J - K; // the panel tile is done with
      }
      if (J > 0) trailingUpdate(tiles, bounds, J, panelPtr, engine);
    } finally {
      engine.release(mark);
    }
    blocks[J] = { start: sJ, size: nJ, diagT, aboveT };
  }
  return blocks;
}

/** B_KL −= R_KJ·R_LJᵀ for K ≤ L < J, products from gemm_f32 on the float32 panel. */
function trailingUpdate(tiles: Float64Array[][], bounds: Array<[number, number]>, J: number, panelPtr: number, engine: DenseEngine): void {
  const nJ = bounds[J][1];
  const sJ = bounds[J][0];
  const outPtr = engine.alloc(FACTOR_BLOCK * sJ); // (nK, sJ − sK): row block K against blocks K..J−1
  for (let K = 0; K < J; K++) {
    const [sK, nK] = bounds[K];
    const width = sJ - sK;
    const calls: number[][] = [];
    for (let L = K; L < J; L++) {
      const [sL, nL] = bounds[L];
      calls.push([panelPtr + 4 * sL * nJ, panelPtr + 4 * sK * nJ, nJ, nK, nL, nJ, outPtr + 4 * (sL - sK), width]);
    }
    engine.gemm(calls);
    const out = engine.floats(outPtr, nK * width);
    for (let L = K; L < J; L++) {
      const [sL, nL] = bounds[L];
      const t = tiles[K][L - K];
      for (let i = 0; i < nK; i++) {
        const row = i * width + sL - sK;
        for (let j = 0; j < nL; j++) t[i * nL + j] -= out[row + j];
      }
    }
  }
}

/**
 * Upper R (row-major) with B = R·Rᵀ for a small float64 (n, n) block, columns from the last
 * one back; undefined when a pivot is not positive.
 */
export function reverseCholeskySmall(b: Float64Array, n: number): Float64Array | undefined {
  const r = new Float64Array(n * n); // R row-major: row i, entries j ≥ i
  for (let j = n - 1; j >= 0; j--) {
    const rj = j * n;
    let d = b[rj + j];
    for (let k = j + 1; k < n; k++) d -= r[rj + k] * r[rj + k];
    if (!(d > 0)) return undefined;
    const rjj = Math.sqrt(d);
    r[rj + j] = rjj;
    for (let i = 0; i < j; i++) {
      const ri = i * n;
      let s = b[ri + j];
      for (let k = j + 1; k < n; k++) s -= r[ri + k] * r[rj + k];
      r[ri + j] = s / rjj;
    }
  }
  return r;
}

/**
 * x·Rᵀ = b for one row (x over b in place at `at`, n entries) with R upper (row-major):
 * x_c = (b_c − Σ_{c'>c} R_{c,c'}·x_{c'}) / R_cc, from the last entry back.
 */
function solveRowUpper(row: Float64Array, at: number, r: Float64Array, n: number): void {
  for (let c = n - 1; c >= 0; c--) {
    const rc = c * n;
    // Four partial sums: independent add chains (the solve is a third of the float64 work).
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    let k = c + 1;
    for (; k + 4 <= n; k += 4) {
      s0 += r[rc + k] * row[at + k];
      s1 += r[rc + k + 1] * row[at + k + 1];
      s2 += r[rc + k + 2] * row[at + k + 2];
      s3 += r[rc + k + 3] * row[at + k + 3];
    }
    for (; k < n; k++) s0 += r[rc + k] * row[at + k];
    row[at + c] = (row[at + c] - ((s0 + s1) + (s2 + s3))) / r[rc + c];
  }
}
