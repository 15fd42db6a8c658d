/**
 * XQuant factors for grouped-query models (XQuant, arXiv 2508.10395, §GQA; DESIGN.md
 * "Attention state"): per layer, the thin SVD Wᵀ = U·Σ·Bᵀ of k_proj and v_proj (W is
 * (kvDim, hidden), so U is (hidden, kvDim)). The runtime caches the latents X·U and rebuilds
 * K = (X·U)·(Σ·Bᵀ) (plus the projection's bias, if any). Computed from the Gram matrix
 * W·Wᵀ (kvDim × kvDim) by cyclic Jacobi rotations (Golub & Van Loan §8.5, `symmetricEigen`
 * below): B are its eigenvectors, σ² its eigenvalues,
 * U = Wᵀ·B·Σ⁻¹ (columns with σ below 1e-7·σ_max are zero: they carry nothing). Latent
 * channel 0 has the largest singular value. The factors are taken from the *quantised*
 * weights, so the XQuant path reproduces the packed model's K/V up to f16 rounding.
 * Both sides use this: the quantizer stores the factors in the file, and the cache
 * (./xquant-svd.ts) computes them at load time for a file without them.
 */

export interface XquantFactors {
  /** (hidden, rank) row-major: X·U are the cached latents. */
  readonly u: Float32Array;
  /** (rank, kvDim) row-major: Σ·Bᵀ, so K = (X·U)·sb. */
  readonly sb: Float32Array;
  /** Singular values, descending. */
  readonly sigma: Float64Array;
}

/** Factors of a projection weight w: (kvDim, hidden) row-major. rank = kvDim. */
export function xquantFactors(w: Float32Array, kvDim: number, hidden: number): XquantFactors {
  const gram = new Float64Array(kvDim * kvDim);
  for (let i = 0; i < kvDim; i++) {
    for (let j = i; j < kvDim; j++) {
      let s = 0;
      for (let c = 0; c < hidden; c++) s += w[i * hidden + c] * w[j * hidden + c];
      gram[i * kvDim + j] = s;
      gram[j * kvDim + i] = s;
    }
  }
  const { values, vectors } = symmetricEigen(gram, kvDim);
  const rank = kvDim;
  const sigma = values.map((v) => Math.sqrt(Math.max(0, v)));
  const u = new Float32Array(hidden * rank);
  const sb = new Float32Array(rank * kvDim);
  const floor = 1e-7 * sigma[0];
  for (let j = 0; j < rank; j++) {
    for (let c = 0; c < kvDim; c++) sb[j * kvDim + c] = sigma[j] * vectors[c * kvDim + j];
    if (!(sigma[j] > floor)) continue;
    // U[:, j] = Wᵀ b_j / σ_j
    for (let h = 0; h < hidden; h++) {
      let s = 0;
      for (let i = 0; i < kvDim; i++) s += w[i * hidden + h] * vectors[i * kvDim + j];
      u[h * rank + j] = s / sigma[j];
    }
  }
  return { u, sb, sigma };
}

/** Tensor names of the factors of one projection (e.g. model.layers.0.self_attn.k_proj). */
export function xquantNames(projection: string): { u: string; sb: string } {
  return { u: `${projection}.xquant_u`, sb: `${projection}.xquant_sb` };
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
