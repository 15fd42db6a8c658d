/**
 * Small dense float64 linear algebra for the quantizer (row-major n×n arrays): Cholesky
 * factorisation, the upper Cholesky factor of an inverse (GPTQ, Frantar et al. 2022, §4
 * "Cholesky reformulation") and the cyclic Jacobi eigen-decomposition of a symmetric matrix
 * (Golub & Van Loan §8.5) used for the XQuant SVD. O(n³); meant for n up to a few thousand.
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

/** A⁻¹ from its Cholesky factor L (A = L·Lᵀ): solve with L then Lᵀ. */
export function inverseFromCholesky(l: Float64Array, n: number): Float64Array {
  // inv(L) by forward substitution, then A⁻¹ = inv(L)ᵀ · inv(L).
  const li = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    li[c * n + c] = 1 / l[c * n + c];
    for (let i = c + 1; i < n; i++) {
      let s = 0;
      for (let k = c; k < i; k++) s -= l[i * n + k] * li[k * n + c];
      li[i * n + c] = s / l[i * n + i];
    }
  }
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += li[k * n + i] * li[k * n + j];
      inv[i * n + j] = s;
      inv[j * n + i] = s;
    }
  }
  return inv;
}

/**
 * GPTQ's preconditioner: the upper factor U of H⁻¹ = Uᵀ·U after adding `damp`·mean(diag H)
 * to the diagonal; the damping grows ×10 (up to 1) until H is positive definite.
 */
export function inverseCholeskyUpper(h: Float64Array, n: number, damp = 0.01): Float64Array {
  if (h.length !== n * n) throw new ShapeError("inverseCholeskyUpper", `${n}x${n} values`, `${h.length}`);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += h[i * n + i];
  mean = mean / n || 1;
  for (let lambda = damp; lambda <= 1; lambda *= 10) {
    const a = Float64Array.from(h);
    for (let i = 0; i < n; i++) a[i * n + i] += lambda * mean;
    const l = cholesky(a, n);
    if (l === undefined) continue;
    const lInv = cholesky(inverseFromCholesky(l, n), n);
    if (lInv === undefined) continue;
    const u = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) u[i * n + j] = lInv[j * n + i];
    return u;
  }
  throw new ShapeError("gptq", "a positive definite Hessian after damping", "a singular one; use more calibration text");
}

/**
 * Eigen-decomposition of a symmetric n×n matrix by cyclic Jacobi rotations: eigenvalues in
 * descending order and the matching eigenvectors as the columns of `vectors` (row-major n×n).
 */
export function symmetricEigen(a: Float64Array, n: number, maxSweeps = 60): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0, total = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        total += m[i * n + j] ** 2;
        if (i !== j) off += m[i * n + j] ** 2;
      }
    }
    if (off <= 1e-30 * total || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (m[q * n + q] - m[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const mkp = m[k * n + p], mkq = m[k * n + q];
          m[k * n + p] = c * mkp - s * mkq;
          m[k * n + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = m[p * n + k], mqk = m[q * n + k];
          m[p * n + k] = c * mpk - s * mqk;
          m[q * n + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p], vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => m[y * n + y] - m[x * n + x] || x - y);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = m[src * n + src];
    for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src];
  });
  return { values, vectors };
}
