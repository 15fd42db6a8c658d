/**
 * XQuant preparation for grouped-query models (XQuant, arXiv 2508.10395, §GQA; DESIGN.md
 * "Attention state"): per layer, the thin SVD Wᵀ = U·Σ·Bᵀ of k_proj and v_proj (W is
 * (kvDim, hidden), so U is (hidden, kvDim)). The runtime caches the latents X·U and rebuilds
 * K = (X·U)·(Σ·Bᵀ) (plus the projection's bias, if any). Computed from the Gram matrix
 * W·Wᵀ (kvDim × kvDim) by Jacobi (linalg.ts): B are its eigenvectors, σ² its eigenvalues,
 * U = Wᵀ·B·Σ⁻¹ (columns with σ below 1e-7·σ_max are zero: they carry nothing). Latent
 * channel 0 has the largest singular value. The factors are taken from the *quantised*
 * weights, so the XQuant path reproduces the packed model's K/V up to f16 rounding.
 */
import { symmetricEigen } from "./linalg.ts";

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
