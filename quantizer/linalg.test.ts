// Dense linear algebra on small seeded matrices: Cholesky, GPTQ's inverse factor, Jacobi eigen,
// and the XQuant factorisation built on it.
import { expect, test } from "bun:test";
import { createRandom } from "../runtime/engine/sampler.ts";
import { cholesky, dampingSchedule, inverseCholeskyUpper, reverseCholeskyUpper } from "./linalg.ts";
import { symmetricEigen, xquantFactors } from "../runtime/engine/kv-cache/xquant-factors.ts";

function spd(n: number, seed: number): Float64Array {
  const random = createRandom(seed);
  const x = Array.from({ length: 3 * n * n }, () => random() - 0.5);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < 3 * n; k++) a[i * n + j] += x[k * n + i] * x[k * n + j];
  return a;
}

test("cholesky reproduces A and rejects an indefinite matrix", () => {
  const n = 7;
  const a = spd(n, 1);
  const l = cholesky(a, n)!;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += l[i * n + k] * l[j * n + k];
      expect(s).toBeCloseTo(a[i * n + j], 10);
    }
  }
  expect(cholesky(Float64Array.of(1, 2, 2, 1), 2)).toBeUndefined();
});

test("inverseCholeskyUpper gives U with UᵀU = (H + damping)⁻¹", () => {
  const n = 6;
  const h = spd(n, 2);
  const u = inverseCholeskyUpper(h, n, 0);
  // (UᵀU)·H = I
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) {
        let inv = 0;
        for (let m = 0; m < n; m++) inv += u[m * n + i] * u[m * n + k];
        s += inv * h[k * n + j];
      }
      expect(s).toBeCloseTo(i === j ? 1 : 0, 8);
    }
  }
  for (let i = 1; i < n; i++) for (let j = 0; j < i; j++) expect(u[i * n + j]).toBe(0);
});

test("reverseCholeskyUpper gives upper R with R·Rᵀ = H' + λI (viewed H) and R = U⁻¹", () => {
  const n = 9;
  const h = spd(n, 5);
  const order = [3, 0, 8, 1, 7, 2, 6, 4, 5];
  const diag = new Float64Array(n).map((_, i) => h[i * n + i] * 1.5);
  const view = { order, diag };
  const { factor: r, lambda } = reverseCholeskyUpper(h, n, 0.01, view);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += diag[i] / n;
  expect(lambda).toBeCloseTo(0.01 * mean, 12);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (j < i) expect(r[i * n + j]).toBe(0);
      let s = 0;
      for (let k = 0; k < n; k++) s += r[i * n + k] * r[j * n + k];
      const want = i === j ? diag[order[i]] + lambda : h[order[i] * n + order[j]];
      expect(s).toBeCloseTo(want, 9);
    }
  }
  const u = inverseCholeskyUpper(h, n, 0.01, view);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += r[i * n + k] * u[k * n + j];
      expect(s).toBeCloseTo(i === j ? 1 : 0, 9);
    }
  }
});

test("dampingSchedule: ×10 up to 1, a single step when damping is off", () => {
  expect(dampingSchedule(0.01).length).toBe(3);
  expect(dampingSchedule(0)).toEqual([0]);
});

test("symmetricEigen: A·v = λ·v, descending, orthonormal", () => {
  const n = 8;
  const a = spd(n, 3);
  const { values, vectors } = symmetricEigen(a, n);
  for (let k = 0; k < n; k++) {
    if (k > 0) expect(values[k]).toBeLessThanOrEqual(values[k - 1]);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += a[i * n + j] * vectors[j * n + k];
      expect(s).toBeCloseTo(values[k] * vectors[i * n + k], 8);
    }
  }
});

test("xquantFactors: U·(ΣBᵀ) = Wᵀ, U has orthonormal columns, σ descending", () => {
  const kv = 8, hidden = 24;
  const random = createRandom(4);
  const w = Float32Array.from({ length: kv * hidden }, () => random() - 0.5);
  const { u, sb, sigma } = xquantFactors(w, kv, hidden);
  for (let j = 1; j < kv; j++) expect(sigma[j]).toBeLessThanOrEqual(sigma[j - 1]);
  for (let h = 0; h < hidden; h++) {
    for (let c = 0; c < kv; c++) {
      let s = 0;
      for (let j = 0; j < kv; j++) s += u[h * kv + j] * sb[j * kv + c];
      expect(s).toBeCloseTo(w[c * hidden + h], 5);
    }
  }
  for (let a = 0; a < kv; a++) {
    for (let b = 0; b < kv; b++) {
      let s = 0;
      for (let h = 0; h < hidden; h++) s += u[h * kv + a] * u[h * kv + b];
      expect(s).toBeCloseTo(a === b ? 1 : 0, 5);
    }
  }
});
