// Every method on seeded random matrices: codes in range, packing round-trips exactly to
// what the method reconstructs, determinism, and the error ordering each method claims.
import { describe, expect, test } from "bun:test";
import { dequantize } from "../../runtime/format/pack-dequantize.ts";
import { createRandom } from "../../runtime/engine/sampler.ts";
import {
  hessianError,
  type MatrixInput,
  METHODS,
  packQuantized,
  type QuantizedMatrix,
  quantizeAbsmean,
  quantizeGptq,
  quantizeHlq,
  quantizeImatrix,
  quantizeMinMax,
  quantizePtqtp,
  quantizeQ8,
  quantizeRtn,
  reconstruct,
  squaredError,
} from "./index.ts";

function gaussianMatrix(rows: number, cols: number, seed: number): Float32Array {
  const random = createRandom(seed);
  const w = new Float32Array(rows * cols);
  for (let i = 0; i < w.length; i++) {
    const g = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    w[i] = (g * 0.05) * (random() < 0.02 ? 6 : 1); // a few outliers, like real weights
  }
  return w;
}

/** Calibration-like inputs with correlated, unevenly scaled channels: (tokens, cols). */
function activations(tokens: number, cols: number, seed: number): Float64Array {
  const random = createRandom(seed);
  const x = new Float64Array(tokens * cols);
  const gain = Array.from({ length: cols }, (_, c) => (c % 7 === 0 ? 8 : 0.5 + random()));
  for (let t = 0; t < tokens; t++) {
    const shared = random() - 0.5;
    for (let c = 0; c < cols; c++) x[t * cols + c] = gain[c] * ((random() - 0.5) + 1.5 * shared);
  }
  return x;
}

function stats(x: Float64Array, tokens: number, cols: number) {
  const importance = new Float64Array(cols);
  const hessian = new Float64Array(cols * cols);
  for (let t = 0; t < tokens; t++) {
    for (let i = 0; i < cols; i++) {
      importance[i] += x[t * cols + i] ** 2 / tokens;
      for (let j = 0; j < cols; j++) hessian[i * cols + j] += (2 * x[t * cols + i] * x[t * cols + j]) / tokens;
    }
  }
  return { importance, hessian };
}

const ROWS = 24;
const COLS = 128;
const X = activations(256, COLS, 7);
const STATS = stats(X, 256, COLS);

function input(bits: 1 | 2 | 3 | 4, group: 32 | 64 | 128 = 32, seed = 1): MatrixInput {
  return { weights: gaussianMatrix(ROWS, COLS, seed), rows: ROWS, cols: COLS, group, bits, ...STATS };
}

function err(q: QuantizedMatrix, m: MatrixInput, h?: ArrayLike<number>): number {
  return squaredError(m.weights, reconstruct(q, m.rows, m.cols), m.cols, h);
}

describe("every method", () => {
  for (const [name, info] of Object.entries(METHODS)) {
    test(`${name}: codes in range, packed bytes dequantise to its reconstruction, deterministic`, () => {
      for (const bits of [2, 3, 4] as const) {
        const m = input(bits, 64);
        const q = info.quantize(m);
        if ("codes" in q) {
          for (const c of q.codes) expect(c).toBeLessThan(1 << bits);
        } else if ("trits" in q) {
          for (const t of q.trits) expect(Math.abs(t)).toBeLessThanOrEqual(1);
        }
        const bytes = packQuantized(q, m.rows, m.cols);
        const back = dequantize(q.encoding, bytes, m.rows, m.cols);
        expect(Array.from(back)).toEqual(Array.from(reconstruct(q, m.rows, m.cols)));
        expect(packQuantized(info.quantize(m), m.rows, m.cols)).toEqual(bytes);
        expect(Array.from(m.weights)).toEqual(Array.from(input(bits, 64).weights));
        if (info.kind === "ternary") break;
      }
    });
  }
});

describe("error ordering", () => {
  test("rtn's clip/scale search beats plain min/max at 2, 3 and 4 bits", () => {
    for (const bits of [2, 3, 4] as const) {
      const m = input(bits);
      expect(err(quantizeRtn(m), m)).toBeLessThan(err(quantizeMinMax(m), m));
    }
  });

  test("imatrix beats rtn on importance-weighted error", () => {
    for (const bits of [2, 3] as const) {
      const m = input(bits);
      expect(err(quantizeImatrix(m), m, STATS.importance)).toBeLessThan(err(quantizeRtn(m), m, STATS.importance));
    }
  });

  test("gptq beats rtn and imatrix on the layer output error tr(E H Eᵀ), rtn by the measured margin", () => {
    // gptq's error as a fraction of rtn's, measured: 0.102, 0.169, 0.199 at 2, 3, 4 bits.
    // GPTQ's damping at 0.1 instead of 0.01 measures 0.124, 0.215, 0.262.
    const BOUND = { 2: 0.115, 3: 0.19, 4: 0.225 } as const;
    for (const bits of [2, 3, 4] as const) {
      const m = input(bits);
      const e = (q: QuantizedMatrix) => hessianError(m.weights, reconstruct(q, ROWS, COLS), ROWS, COLS, STATS.hessian);
      const gptq = e(quantizeGptq(m));
      const ratio = gptq / e(quantizeRtn(m));
      expect({ bits, ratio, ok: ratio < BOUND[bits] }).toEqual({ bits, ratio, ok: true });
      expect(gptq).toBeLessThan(e(quantizeImatrix(m)));
    }
  });

  test("hlq's per-plane refit beats rtn at 2 and 3 bits", () => {
    for (const bits of [2, 3] as const) {
      const m = input(bits);
      expect(err(quantizeHlq(m), m)).toBeLessThan(0.97 * err(quantizeRtn(m), m));
    }
  });

  test("ptqtp's two trit-planes beat absmean's one by a wide margin", () => {
    const m = input(2);
    expect(err(quantizePtqtp(m), m)).toBeLessThan(0.5 * err(quantizeAbsmean(m), m));
  });

  test("more bits, less error", () => {
    const e = [2, 3, 4].map((b) => err(quantizeRtn(input(b as 2 | 3 | 4)), input(b as 2 | 3 | 4)));
    expect(e[1]).toBeLessThan(e[0]);
    expect(e[2]).toBeLessThan(e[1]);
  });
});

describe("edge cases", () => {
  test("flat and all-zero groups quantise without NaN and reproduce the constant", () => {
    const w = new Float32Array(16 * 32);
    w.fill(0.25, 0, 32);
    const m: MatrixInput = { weights: w, rows: 16, cols: 32, group: 32, bits: 2 };
    for (const method of [quantizeRtn, quantizeHlq, quantizeAbsmean, quantizePtqtp]) {
      const back = reconstruct(method(m), 16, 32);
      for (const v of back) expect(Number.isFinite(v)).toBe(true);
      expect(back[0]).toBeCloseTo(0.25, 3);
      expect(back[40]).toBe(0);
    }
  });

  test("q8 accepts a partial last group and stays within half a step", () => {
    const w = gaussianMatrix(3, 172, 5);
    const q = quantizeQ8(w, 3, 172, 32);
    const back = dequantize(q.encoding, packQuantized(q, 3, 172), 3, 172);
    for (let i = 0; i < w.length; i++) expect(Math.abs(back[i] - w[i])).toBeLessThan(0.003);
  });

  test("a width that is not a multiple of the group is refused with a ShapeError", () => {
    const m: MatrixInput = { weights: new Float32Array(2 * 172), rows: 2, cols: 172, group: 32, bits: 2 };
    expect(() => quantizeRtn(m)).toThrow(/multiple of the group size 32/);
  });

  test("imatrix and gptq without calibration statistics say so", () => {
    const m: MatrixInput = { weights: new Float32Array(32), rows: 1, cols: 32, group: 32, bits: 2 };
    expect(() => quantizeImatrix(m)).toThrow(/calibration/);
    expect(() => quantizeGptq(m)).toThrow(/calibration/);
  });
});
