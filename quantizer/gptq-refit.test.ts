// The post-GPTQ refit of group scales and zero points (gptq-refit.ts): codes unchanged, no row's
// damped output error grows (the guard), the layer error drops, the fast path against its
// float64 twin within f16 rounding, and thread-count independence; then the sweep-and-refit
// rounds of methods/gptq.ts: no row's error grows from round to round, both paths agree, bad
// counts throw. The refit alone is tested with `rounds: 1`. Seeded, ragged sizes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createRandom } from "../runtime/engine/sampler.ts";
import { InvalidArgumentError, ShapeError } from "../runtime/errors.ts";
import { createDenseEngine, type DenseEngine } from "./dense-engine.ts";
import { refitGroupsReference } from "./gptq-refit.ts";
import { GPTQ_DAMP, GPTQ_ROUNDS, quantizeGptq, quantizeGptqReference } from "./methods/gptq.ts";
import { type MatrixInput, type QuantizedMatrix, reconstruct } from "./methods/types.ts";

/**
 * H = 2XᵀX/n for activations sharing a `common` component, with a few loud channels and one
 * dead one. Strong coupling between groups (common 0.6) makes a Jacobi step overshoot in most
 * rows, so the guard keeps few of them; at 0.2 most rows improve.
 */
function hessian(cols: number, tokens: number, seed: number, common: number, dead = 5): Float64Array {
  const random = createRandom(seed);
  const x = new Float64Array(tokens * cols);
  for (let t = 0; t < tokens; t++) {
    const shared = common * (random() - 0.5);
    for (let i = 0; i < cols; i++) x[t * cols + i] = i === dead ? 0 : (random() - 0.5 + shared) * (i % 11 === 0 ? 4 : 1);
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

function layer(rows: number, cols: number, seed: number, bits: 2 | 3 | 4, common = 0.2): MatrixInput {
  const random = createRandom(seed);
  const weights = Float32Array.from({ length: rows * cols }, () => (random() - 0.5) * 0.2);
  return { weights, rows, cols, group: 32, bits, hessian: hessian(cols, 3 * cols, seed + 1, common) };
}

type ZeroPoint = { codes: Uint8Array; scales: Float32Array; zeros: Float32Array };
function zeroPoint(q: QuantizedMatrix): ZeroPoint {
  if (!("codes" in q)) throw new Error("gptq returns bit-plane codes");
  return q;
}

/** Per-row eᵀH'e with H' = H + λ·mean(diag)·I, dead columns counted with diagonal 1 and weight 0. */
function rowErrors(input: MatrixInput, q: QuantizedMatrix): Float64Array {
  const { rows, cols, weights } = input;
  const h = input.hessian!;
  let mean = 0;
  for (let i = 0; i < cols; i++) mean += h[i * cols + i] === 0 ? 1 : h[i * cols + i];
  const shift = (GPTQ_DAMP * mean) / cols;
  const wq = reconstruct(q, rows, cols);
  const out = new Float64Array(rows);
  const e = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) e[c] = (h[c * cols + c] === 0 ? 0 : weights[r * cols + c]) - wq[r * cols + c];
    for (let i = 0; i < cols; i++) {
      let acc = (h[i * cols + i] === 0 ? 1 : 0) * e[i] + shift * e[i];
      for (let j = 0; j < cols; j++) acc += h[i * cols + j] * e[j];
      out[r] += e[i] * acc;
    }
  }
  return out;
}

/** |a − b| within one f16 step of the larger magnitude. */
function withinF16(a: number, b: number): boolean {
  const m = Math.max(Math.abs(a), Math.abs(b), 2 ** -14);
  return Math.abs(a - b) <= 2 ** (Math.floor(Math.log2(m)) - 10);
}

const sum = (a: Float64Array) => a.reduce((s, v) => s + v, 0);

describe("gptq refit", () => {
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

  for (const [rows, cols, bits] of [[40, 320, 2], [24, 192, 3], [16, 128, 4]] as const) {
    test(`${rows}x${cols} q${bits}: codes kept, no row error grows, the layer error drops (reference)`, () => {
      const input = layer(rows, cols, rows + cols, bits);
      const plain = zeroPoint(quantizeGptqReference(input, { refit: false }));
      const refit = zeroPoint(quantizeGptqReference(input, { rounds: 1 }));
      expect(refit.codes).toEqual(plain.codes);
      const before = rowErrors(input, plain), after = rowErrors(input, refit);
      let changed = 0;
      for (let r = 0; r < rows; r++) {
        expect(after[r]).toBeLessThanOrEqual(before[r]);
        if (after[r] < before[r]) changed++;
      }
      expect(changed).toBeGreaterThan(rows / 3);
      expect(sum(after)).toBeLessThan(sum(before));
    });

    test(`${rows}x${cols} q${bits}: strongly coupled groups, the guard still keeps every row from growing`, () => {
      const input = layer(rows, cols, rows + cols, bits, 0.6);
      const plain = zeroPoint(quantizeGptqReference(input, { refit: false }));
      const refit = zeroPoint(quantizeGptqReference(input, { rounds: 1 }));
      const before = rowErrors(input, plain), after = rowErrors(input, refit);
      for (let r = 0; r < rows; r++) expect(after[r]).toBeLessThanOrEqual(before[r]);
      expect(sum(after)).toBeLessThan(sum(before));
    });

    test(`${rows}x${cols} q${bits}: the fast path matches the float64 twin within f16 rounding`, () => {
      const input = layer(rows, cols, rows + cols, bits);
      const ref = zeroPoint(quantizeGptqReference(input, { rounds: 1 }));
      const fast = zeroPoint(quantizeGptq(input, { engine, rounds: 1 }));
      const plain = zeroPoint(quantizeGptq(input, { engine, refit: false }));
      expect(fast.codes).toEqual(plain.codes);
      let off = 0;
      for (let i = 0; i < ref.scales.length; i++) {
        if (!withinF16(fast.scales[i], ref.scales[i]) || !withinF16(fast.zeros[i], ref.zeros[i])) off++;
      }
      // The float32 codes may differ from the twin's in a few places (gptq.test.ts); their groups may too.
      expect(off / ref.scales.length).toBeLessThan(0.02);
      const before = rowErrors(input, plain), after = rowErrors(input, fast);
      for (let r = 0; r < rows; r++) expect(after[r]).toBeLessThanOrEqual(before[r] * (1 + 1e-6));
      expect(sum(after)).toBeLessThan(sum(before));
    });
  }

  for (const [rows, cols, bits] of [[40, 320, 2], [24, 192, 3], [16, 128, 4]] as const) {
    test(`${rows}x${cols} q${bits}: a second round lowers the layer error and no row's (reference and fast path)`, () => {
      const input = layer(rows, cols, rows + cols, bits);
      for (const quantize of [(rounds: number) => quantizeGptqReference(input, { rounds }), (rounds: number) => quantizeGptq(input, { engine, rounds })]) {
        const one = rowErrors(input, zeroPoint(quantize(1)));
        const two = rowErrors(input, zeroPoint(quantize(GPTQ_ROUNDS)));
        let changed = 0;
        for (let r = 0; r < rows; r++) {
          expect(two[r]).toBeLessThanOrEqual(one[r] * (1 + 1e-6));
          if (two[r] < one[r] * (1 - 1e-6)) changed++;
        }
        expect(changed).toBeGreaterThan(0);
        expect(sum(two)).toBeLessThan(sum(one));
      }
      const ref = sum(rowErrors(input, quantizeGptqReference(input))), fast = sum(rowErrors(input, quantizeGptq(input, { engine })));
      expect(Math.abs(fast / ref - 1)).toBeLessThan(0.01);
    });
  }

  test("rounds outside 1-8 or not whole throw InvalidArgumentError", () => {
    const input = layer(8, 64, 5, 3);
    for (const rounds of [0, 1.5, 9]) {
      expect(() => quantizeGptq(input, { engine, rounds })).toThrow(InvalidArgumentError);
      expect(() => quantizeGptqReference(input, { rounds })).toThrow(InvalidArgumentError);
    }
  });

  test("the refit does not depend on the thread count or on repetition", () => {
    const input = layer(70, 288, 9, 3);
    const two = zeroPoint(quantizeGptq(input, { engine }));
    const again = zeroPoint(quantizeGptq(input, { engine }));
    const one = zeroPoint(quantizeGptq({ ...input, hessian: Float64Array.from(input.hessian!) }, { engine: single }));
    for (const q of [again, one]) {
      expect(q.codes).toEqual(two.codes);
      expect(q.scales).toEqual(two.scales);
      expect(q.zeros).toEqual(two.zeros);
    }
  });

  test("mismatched shapes throw ShapeError", () => {
    const input = { weights: new Float32Array(64), rows: 1, cols: 64, group: 32, hessian: new Float64Array(64 * 64), dead: new Uint8Array(64), shift: 0.01, codes: new Uint8Array(64), scales: new Float32Array(1), zeros: new Float32Array(2) };
    expect(() => refitGroupsReference(input)).toThrow(ShapeError);
  });
});
