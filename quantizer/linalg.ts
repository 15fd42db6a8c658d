/**
 * Small dense float64 linear algebra for the quantizer (row-major n×n arrays): Cholesky
 * factorisation, the upper Cholesky factor of an inverse (GPTQ, Frantar et al. 2022, §4
 * "Cholesky reformulation") and its inverse, the "reverse" factor R with H = R·Rᵀ (the float64
 * twin of gptq-factor.ts). O(n³); meant for n up to a few thousand. The Jacobi
 * eigen-decomposition the XQuant SVD uses lives with it, in the runtime
 * (runtime/engine/kv-cache/xquant-factors.ts), which the quantizer imports.
 */
import { ShapeError } from "../runtime/errors.ts";

/** Lower-triangular L with A = L·Lᵀ, or undefined when A is not positive definite. */
export function cholesky(a: Float64Array, n: number): Float64Array | undefined {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let diag = a[j * n + j];
    for (let k = 0; k < j; k++) diag -= l[j * n + k] * l[j * n + k];
    if (!(diag > 0)) return undefined;
    const ljj = Math.sqrt(diag);
    l[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = s / ljj;
    }
  }
  return l;
}

/** Factorise H[order[i]][order[j]] with the diagonal H[k][k] replaced by diag[k], without copying H. */
export interface HessianView {
  readonly order: readonly number[];
  readonly diag: Float64Array;
}

/**
 * GPTQ's preconditioner: the upper factor U of H⁻¹ = Uᵀ·U after adding `damp`·mean(diag H)
 * to the diagonal; the damping grows ×10 (up to 1) until H is positive definite.
 *
 * With J the order-reversing permutation and J·H·J = L·Lᵀ, U = J·L⁻¹·J is upper triangular and
 * UᵀU = J·(J·H·J)⁻¹·J = H⁻¹: one Cholesky factorisation and one triangular inverse (n³/2
 * multiply-adds) instead of factorising, inverting and factorising again (n³); the inverse is
 * built row by row so every inner loop runs over contiguous memory. With `view`, the matrix
 * factorised is H permuted and with a replaced diagonal (GPTQ's act-order, dead columns).
 */
export function inverseCholeskyUpper(h: Float64Array, n: number, damp = 0.01, view?: HessianView): Float64Array {
  const a = reversedCholesky(h, n, damp, view).factor;
  lowerInverseInPlace(a, n);
  reverseInPlace(a);
  return a;
}

/**
 * The "reverse" Cholesky factor of the damped (and viewed) H: upper triangular R with
 * H + λI = R·Rᵀ, i.e. R = U⁻¹ for inverseCholeskyUpper's U (R = J·L·J with J·H·J = L·Lᵀ).
 * `lambda` is the damping added to the diagonal (same schedule as inverseCholeskyUpper).
 */
export function reverseCholeskyUpper(h: Float64Array, n: number, damp = 0.01, view?: HessianView): { factor: Float64Array; lambda: number } {
  const result = reversedCholesky(h, n, damp, view);
  reverseInPlace(result.factor);
  return result;
}

/** GPTQ's damping: λ·mean(diag) for λ = damp, ×10 per failed attempt, up to 1 (just `damp` when ≤ 0). */
export function dampingSchedule(damp: number): number[] {
  if (!(damp > 0)) return [damp];
  const out: number[] = [];
  for (let lambda = damp; lambda <= 1; lambda *= 10) out.push(lambda);
  return out;
}

/** Mean of the (viewed) diagonal, 1 when it is zero: the unit GPTQ's damping is measured in. */
export function meanDiagonal(h: Float64Array, n: number, view?: HessianView): number {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += view === undefined ? h[i * n + i] : view.diag[view.order[i]];
  return mean / n || 1;
}

/** L (lower, n×n) with J·(H' + λ·mean·I)·J = L·Lᵀ, H' the viewed H, and the λ·mean added. */
function reversedCholesky(h: Float64Array, n: number, damp: number, view?: HessianView): { factor: Float64Array; lambda: number } {
  if (h.length !== n * n) throw new ShapeError("inverseCholeskyUpper", `${n}x${n} values`, `${h.length}`);
  const order = view?.order;
  const at = (i: number, j: number) => {
    if (view === undefined) return h[i * n + j];
    return i === j ? view.diag[order![i]] : h[order![i] * n + order![j]];
  };
  const mean = meanDiagonal(h, n, view);
  // One n×n working buffer: J·H·J, then L in place.
  const a = new Float64Array(n * n);
  for (const lambda of dampingSchedule(damp)) {
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = at(n - 1 - i, n - 1 - j);
    for (let i = 0; i < n; i++) a[i * n + i] += lambda * mean;
    if (choleskyInPlace(a, n)) return { factor: a, lambda: lambda * mean };
  }
  throw new ShapeError("gptq", "a positive definite Hessian after damping", "a singular one; use more calibration text");
}

/** Entry (i, j) ↔ (n-1-i, n-1-j) of a square row-major matrix: A ↦ J·A·J. */
function reverseInPlace(a: Float64Array): void {
  for (let p = 0, q = a.length - 1; p < q; p++, q--) {
    const t = a[p];
    a[p] = a[q];
    a[q] = t;
  }
}

/** A = L·Lᵀ with L written over A's lower triangle and zeros above; false when A is not positive definite. */
function choleskyInPlace(a: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let diag = a[rj + j];
    for (let k = 0; k < j; k++) diag -= a[rj + k] * a[rj + k];
    if (!(diag > 0)) return false;
    const ljj = Math.sqrt(diag);
    a[rj + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let s = a[ri + j];
      for (let k = 0; k < j; k++) s -= a[ri + k] * a[rj + k];
      a[ri + j] = s / ljj;
    }
    a.fill(0, rj + j + 1, rj + n);
  }
  return true;
}

/**
 * L⁻¹ over a lower-triangular L, by rows: X[i] = (e_i − Σ_{k<i} L[i][k]·X[k]) / L[i][i]. Row i
 * of L is read left to right while X[i] is written left to right, each entry after its last read.
 */
function lowerInverseInPlace(a: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const row = i * n;
    for (let k = 0; k < i; k++) {
      const lik = a[row + k];
      a[row + k] = 0;
      if (lik === 0) continue;
      const rk = k * n;
      for (let c = 0; c <= k; c++) a[row + c] -= lik * a[rk + c];
    }
    const inv = 1 / a[row + i];
    for (let c = 0; c < i; c++) a[row + c] *= inv;
    a[row + i] = inv;
  }
}
