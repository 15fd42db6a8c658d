// GPTQ's fast path (blocked factor on the WASM GEMM + left-looking sweep) against its float64
// twins: the factor against linalg.ts reverseCholeskyUpper, the codes and the layer output
// error against quantizeGptqReference (without the refit, whose parity is gptq-refit.test.ts);
// thread-count independence, the damping escalation and the per-Hessian factor cache. Seeded, ragged sizes (not multiples of the 128 block).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createRandom } from "../runtime/engine/sampler.ts";
import { createDenseEngine, type DenseEngine } from "./dense-engine.ts";
import { type GptqFactor, reverseCholeskyBlocked } from "./gptq-factor.ts";
import { reverseCholeskyUpper } from "./linalg.ts";
import { quantizeGptq, quantizeGptqReference } from "./methods/gptq.ts";
import { hessianError, type MatrixInput, reconstruct } from "./methods/types.ts";

/** H = 2XᵀX/n for correlated activations with a few loud channels and one dead one. */
function hessian(cols: number, tokens: number, seed: number, dead = 5): Float64Array {
  const random = createRandom(seed);
  const x = new Float64Array(tokens * cols);
  for (let t = 0; t < tokens; t++) {
    const common = random() - 0.5;
    for (let i = 0; i < cols; i++) x[t * cols + i] = i === dead ? 0 : (random() - 0.5 + 0.6 * common) * (i % 11 === 0 ? 4 : 1);
  }
  const h = new Float64Array(cols * cols);
  for (let t = 0; t < tokens; t++) {
    for (let i = 0; i < cols; i++) {
      const xi = x[t * cols + i];
      if (xi === 0) continue;
      for (let j = 0; j < cols; j++) h[i * cols + j] += (2 * xi * x[t * cols + j]) / tokens;
    }
  }
  return h;
}

function layer(rows: number, cols: number, seed: number, bits: 2 | 3 | 4 = 2): MatrixInput {
  const random = createRandom(seed);
  const weights = Float32Array.from({ length: rows * cols }, () => (random() - 0.5) * 0.2);
  return { weights, rows, cols, group: 32, bits, hessian: hessian(cols, 3 * cols, seed + 1) };
}

/** Max |R_fast − R_ref| over the factor, relative to max |R_ref|. */
function factorError(fast: GptqFactor, ref: Float64Array, n: number): number {
  let err = 0, scale = 0;
  for (const { start, size, diagT, aboveT } of fast.blocks) {
    for (let i = 0; i < size; i++) {
      const j = start + i;
      for (let k = 0; k <= i; k++) {
        const want = ref[(start + k) * n + j];
        err = Math.max(err, Math.abs(diagT[i * size + k] - want));
        scale = Math.max(scale, Math.abs(want));
      }
      for (let k = 0; k < start; k++) err = Math.max(err, Math.abs(aboveT[i * start + k] - ref[k * n + j]));
    }
  }
  return err / scale;
}

function codesOf(q: ReturnType<typeof quantizeGptq>): Uint8Array {
  if (!("codes" in q)) throw new Error("gptq returns bit-plane codes");
  return q.codes;
}

describe("gptq fast path", () => {
  let engine: DenseEngine;
  let single: DenseEngine;
  beforeAll(async () => {
    engine = await createDenseEngine({ threads: 2 });
    single = await createDenseEngine({ threads: 1 });
  });
  afterAll(async () => {
    await engine.dispose();
    await single.dispose();
  });

  test("blocked reverse Cholesky matches the float64 factor (permuted, dead column)", () => {
    const n = 300;
    const h = hessian(n, 900, 3);
    const diag = new Float64Array(n);
    for (let i = 0; i < n; i++) diag[i] = h[i * n + i] || 1;
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => diag[b] - diag[a] || a - b);
    const ref = reverseCholeskyUpper(h, n, 0.01, { order, diag });
    const fast = reverseCholeskyBlocked(h, n, 0.01, { order, diag }, engine);
    expect(fast.blocks.map((b) => b.size)).toEqual([128, 128, 44]);
    expect(fast.lambda).toBe(ref.lambda);
    expect(factorError(fast, ref.factor, n)).toBeLessThan(1e-5);
  });

  test("the damping grows until the blocked factor exists, as in the reference", () => {
    const n = 140;
    const h = new Float64Array(n * n);
    for (let i = 0; i < n; i++) h[i * n + i] = 1;
    h[2 * n + 135] = h[135 * n + 2] = 1.05; // indefinite: eigenvalue −0.05, fixed by λ = 0.1
    const view = { order: Array.from({ length: n }, (_, i) => i), diag: new Float64Array(n).fill(1) };
    const ref = reverseCholeskyUpper(h, n, 0.01, view);
    const fast = reverseCholeskyBlocked(h, n, 0.01, view, engine);
    expect(ref.lambda).toBeCloseTo(0.1, 12);
    expect(fast.lambda).toBe(ref.lambda);
    expect(factorError(fast, ref.factor, n)).toBeLessThan(1e-6);
  });

  for (const [rows, cols, bits] of [[40, 320, 2], [24, 192, 3], [16, 128, 4]] as const) {
    test(`${rows}x${cols} q${bits}: codes and output error match the float64 reference`, () => {
      const input = layer(rows, cols, rows + cols, bits);
      const ref = quantizeGptqReference(input, { refit: false });
      const fast = quantizeGptq(input, { engine, refit: false });
      if (!("scales" in fast) || !("scales" in ref) || !("zeros" in fast) || !("zeros" in ref)) throw new Error("zero-point scales expected");
      expect(fast.scales).toEqual(ref.scales);
      expect(fast.zeros).toEqual(ref.zeros);
      const a = codesOf(ref), b = codesOf(fast);
      let differ = 0;
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differ++;
      expect(differ / a.length).toBeLessThan(0.01);
      const h = input.hessian!;
      const eRef = hessianError(input.weights, reconstruct(ref, rows, cols), rows, cols, h);
      const eFast = hessianError(input.weights, reconstruct(fast, rows, cols), rows, cols, h);
      expect(Math.abs(eFast / eRef - 1)).toBeLessThan(0.01);
    });
  }

  test("the result does not depend on the thread count or on the factor cache", () => {
    const input = layer(70, 288, 9);
    const two = quantizeGptq(input, { engine });
    const again = quantizeGptq(input, { engine }); // cached factor
    const fresh = quantizeGptq({ ...input, hessian: Float64Array.from(input.hessian!) }, { engine: single });
    expect(again).toEqual(two);
    expect(fresh).toEqual(two);
    expect(codesOf(fresh)).toEqual(codesOf(two));
  });
});
