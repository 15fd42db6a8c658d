/**
 * Dense matmul kernels (f32, f16, q8; kernels-wasm/src/dense.rs) against their f64 twins,
 * per-token int8 quantisation against its twin (exact), and the wrappers' argument checks:
 * bad shapes, misaligned or out-of-range pointers and mismatched tables raise typed errors.
 */
import { describe, expect, test } from "bun:test";
import { FormatError, KernelError, ShapeError } from "../errors.ts";
import type { Encoding } from "../format/encoding.ts";
import { encodingName } from "../format/encoding.ts";
import { dequantize } from "../format/pack-dequantize.ts";
import { buildLut, createLut, createPackedMatrix, gemm, gemv, packedMatrixAt, quantizeI8 } from "./matmul.ts";
import { quantizeRtn, randomFloats } from "./matmul-fixtures.ts";
import { gemmDense, quantizeI8 as quantizeI8Ref } from "./reference/matmul.ts";
import { loadKernels } from "./wasm.ts";

const k = loadKernels();

/** f32 summation error bound: |sum w x| rounding <= n * eps * sum |w x| (generous constant). */
function denseBound(w: Float32Array, x: Float32Array, m: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m * rows);
  for (let t = 0; t < m; t++) {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += Math.abs(w[r * cols + c] * x[t * cols + c]);
      out[t * rows + r] = s * 1e-6 * Math.log2(cols + 2) + 1e-7;
    }
  }
  return out;
}

describe("dense kernels match their twins", () => {
  const dense: Encoding[] = [
    { kind: "f32" }, { kind: "f16" }, { kind: "q8", group: 32 }, { kind: "q8", group: 64 }, { kind: "q8", group: 128 },
    { kind: "q8", group: 48 },
  ];
  for (const e of dense) {
    for (const [rows, cols, m] of [[37, 200, 3], [1, 7, 1], [16, 129, 5]]) {
      test(`${encodingName(e)} ${rows}x${cols}, m ${m}`, () => {
        const bytes = quantizeRtn(e, randomFloats(rows * cols, rows + cols), rows, cols);
        const x = randomFloats(m * cols, 3);
        const mark = k.arena.mark();
        try {
          const a = createPackedMatrix(k, e, rows, cols, bytes);
          const y = gemm(k, a, x, m) as Float32Array;
          const ref = gemmDense(e, bytes, rows, cols, x, m);
          const bound = denseBound(dequantize(e, bytes, rows, cols), x, m, rows, cols);
          for (let i = 0; i < y.length; i++) expect(Math.abs(y[i] - ref[i])).toBeLessThanOrEqual(bound[i]);
          expect(gemv(k, a, x.subarray(0, cols))).toEqual(y.subarray(0, rows));
        } finally {
          k.arena.release(mark);
        }
      });
    }
  }

  test("per-token int8 quantisation equals its twin exactly (zeros and ties too)", () => {
    for (const x of [randomFloats(301, 4), new Float32Array(9), Float32Array.from([1, -0.5, 0.25, 127, -127, 63.5])]) {
      const got = quantizeI8(k, x);
      const want = quantizeI8Ref(x);
      expect(got.q).toEqual(want.q);
      expect(got.scale).toBe(want.scale);
    }
  });
});

describe("wrappers reject bad arguments with typed errors", () => {
  const e: Encoding = { kind: "bitplane", bits: 2, group: 32, scales: "zero-point" };
  const rows = 20;
  const cols = 40;
  const bytes = quantizeRtn(e, randomFloats(rows * cols, 1), rows, cols);

  test("wrong byte count, bad dims and bad encodings", () => {
    expect(() => createPackedMatrix(k, e, rows, cols, bytes.subarray(1))).toThrow(ShapeError);
    expect(() => createPackedMatrix(k, e, 0, cols, bytes)).toThrow(FormatError);
    expect(() => createPackedMatrix(k, { kind: "bitplane", bits: 5, group: 32, scales: "zero-point" } as never, rows, cols, bytes)).toThrow(FormatError);
    expect(() => createLut(k, cols, 48)).toThrow(ShapeError);
  });

  test("wrong input/output lengths, m and table mismatches", () => {
    const mark = k.arena.mark();
    try {
      const a = createPackedMatrix(k, e, rows, cols, bytes);
      expect(() => gemv(k, a, new Float32Array(cols - 1))).toThrow(ShapeError);
      expect(() => gemv(k, a, new Float32Array(cols), new Float32Array(rows + 1))).toThrow(ShapeError);
      expect(() => gemm(k, a, new Float32Array(cols * 2), 0)).toThrow(ShapeError);
      expect(() => gemm(k, a, new Float32Array(cols * 2), 2.5)).toThrow(ShapeError);
      const otherGroup = createLut(k, cols, 64);
      expect(() => gemv(k, a, otherGroup)).toThrow(ShapeError);
      const otherCols = createLut(k, cols + 1, 32);
      expect(() => gemv(k, a, otherCols)).toThrow(ShapeError);
      const small = createLut(k, cols, 32, 1);
      buildLut(k, small, new Float32Array(cols));
      expect(() => gemm(k, a, small, 2)).toThrow(ShapeError);
      expect(() => buildLut(k, small, new Float32Array(2 * cols), 2)).toThrow(ShapeError);
      const f = createPackedMatrix(k, { kind: "f32" }, 2, 2, new Uint8Array(16));
      expect(() => gemv(k, f, small)).toThrow(ShapeError);
    } finally {
      k.arena.release(mark);
    }
  });

  test("misaligned and out-of-range pointers", () => {
    const mark = k.arena.mark();
    try {
      const a = createPackedMatrix(k, e, rows, cols, bytes);
      const x = k.arena.alloc(cols * 4, 64);
      const out = k.arena.alloc(rows * 4, 64);
      const size = k.memory.buffer.byteLength;
      expect(() => gemv(k, a, x + 2, out)).toThrow(KernelError);
      expect(() => gemv(k, a, x, out + 1)).toThrow(KernelError);
      expect(() => gemv(k, a, size - 8, out)).toThrow(KernelError);
      expect(() => gemv(k, a, x, size)).toThrow(KernelError);
      expect(() => gemv(k, a, -64, out)).toThrow(KernelError);
      expect(() => gemv(k, a, 0, out)).toThrow(KernelError);
      expect(() => packedMatrixAt(k, e, rows, cols, a.ptr + 16)).toThrow(KernelError);
      expect(() => packedMatrixAt(k, e, rows, cols, size - 64)).toThrow(KernelError);
      // Valid pointers work and agree with the array form.
      new Float32Array(k.memory.buffer, x, cols).set(randomFloats(cols, 2));
      expect(gemv(k, packedMatrixAt(k, e, rows, cols, a.ptr), x, out)).toBeUndefined();
      const viaArray = gemv(k, a, randomFloats(cols, 2)) as Float32Array;
      expect(new Float32Array(k.memory.buffer, out, rows)).toEqual(viaArray);
    } finally {
      k.arena.release(mark);
    }
  });
});
