// quantizeInRowChunks: a matrix quantised in blocks of rows gives the whole matrix's result
// exactly (codes, scales, zeros), for GPTQ on the WASM engine and its float64 twin and for
// rtn, with ragged last blocks; mixed encodings are refused. Seeded.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createRandom } from "../../runtime/engine/sampler.ts";
import { createDenseEngine, type DenseEngine } from "../dense-engine.ts";
import { quantizeGptq, quantizeGptqReference } from "./gptq.ts";
import { quantizeInRowChunks } from "./row-chunks.ts";
import { quantizeRtn } from "./rtn.ts";
import type { MatrixInput, QuantizedMatrix } from "./types.ts";

function input(rows: number, cols: number, seed: number): MatrixInput {
  const random = createRandom(seed);
  const weights = Float32Array.from({ length: rows * cols }, () => (random() - 0.5) * 0.2);
  const tokens = 3 * cols;
  const x = Float64Array.from({ length: tokens * cols }, (_, i) => (random() - 0.5) * (i % cols === 3 ? 5 : 1));
  const hessian = new Float64Array(cols * cols);
  for (let t = 0; t < tokens; t++) {
    for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) hessian[i * cols + j] += (2 * x[t * cols + i] * x[t * cols + j]) / tokens;
  }
  return { weights, rows, cols, group: 32, bits: 4, hessian };
}

function same(a: QuantizedMatrix, b: QuantizedMatrix): void {
  expect(a.encoding).toEqual(b.encoding);
  if (!("codes" in a) || !("codes" in b)) throw new Error("bit-plane results expected");
  expect(Buffer.from(a.codes).equals(Buffer.from(b.codes))).toBe(true);
  expect(a.scales).toEqual(b.scales);
  expect(a.zeros).toEqual(b.zeros);
}

describe("quantizeInRowChunks", () => {
  let engine: DenseEngine;
  beforeAll(async () => {
    engine = await createDenseEngine({ threads: 2 });
  });
  afterAll(async () => {
    await engine.dispose();
  });

  test("GPTQ (WASM engine and float64 twin) and rtn in blocks of 7 rows equal the whole matrix", () => {
    const m = input(45, 96, 3);
    const chunks: number[] = [];
    const counting = (f: (b: MatrixInput) => QuantizedMatrix) => (b: MatrixInput) => {
      chunks.push(b.rows);
      return f(b);
    };
    const fast = (b: MatrixInput) => quantizeGptq(b, { engine });
    same(quantizeInRowChunks(m, counting(fast), 7 * 96), fast(m));
    expect(chunks).toEqual([7, 7, 7, 7, 7, 7, 3]);
    same(quantizeInRowChunks(m, (b) => quantizeGptqReference(b), 7 * 96), quantizeGptqReference(m));
    same(quantizeInRowChunks(m, quantizeRtn, 10 * 96), quantizeRtn(m));
  });

  test("a matrix within one block is quantised in one call; blocks of different encodings are refused", () => {
    const m = input(8, 64, 5);
    let calls = 0;
    quantizeInRowChunks(m, (b) => (calls++, quantizeRtn(b)), 8 * 64);
    expect(calls).toBe(1);
    let n = 0;
    const mixed = (b: MatrixInput) => quantizeRtn({ ...b, bits: n++ === 0 ? 4 : 3 });
    expect(() => quantizeInRowChunks(m, mixed, 4 * 64)).toThrow(/bit-plane blocks of one encoding.*q4g32zp, q3g32zp/);
  });
});
