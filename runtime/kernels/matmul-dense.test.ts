/**
 * Dense matmul kernels against their twins: f32/f16 and q8 with f32 activations
 * (kernels-wasm/src/dense.rs) within an f32 summation bound of f64; q8 on int8 activations
 * (q8dot.rs, what the wrapper runs) bit-exact, and within the activation rounding bound of
 * f64 (each code is off by at most half a step: |err| <= sum_g ws_g * xs_g/2 * sum |q|).
 * Per-token int8 quantisation against its twin (exact), and the wrappers' argument checks:
 * bad shapes, misaligned or out-of-range pointers and mismatched inputs raise typed errors.
 */
import { describe, expect, test } from "bun:test";
import { FormatError, KernelError, ShapeError } from "../errors.ts";
import type { Encoding } from "../format/encoding.ts";
import { encodingName } from "../format/encoding.ts";
import { dequantize } from "../format/pack-dequantize.ts";
import { unpackQ8 } from "../format/pack-q8.ts";
import {
  buildLut,
  createLut,
  createPackedMatrix,
  createQ8Input,
  gemm,
  gemv,
  packedMatrixAt,
  quantizeI8,
  quantizeQ8Input,
} from "./matmul.ts";
import { quantizeRtn, randomFloats } from "../../test/fixtures/matmul-fixtures.ts";
import { gemmDense, gemmQ8I8, q8ActByteLength, quantizeI8 as quantizeI8Ref, quantizeQ8Act } from "./reference/matmul.ts";
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

const SHAPES = [[37, 200, 3], [1, 7, 1], [16, 129, 5]];

describe("dense kernels match their twins", () => {
  const dense: Encoding[] = [{ kind: "f32" }, { kind: "f16" }];
  const q8: Extract<Encoding, { kind: "q8" }>[] = [32, 64, 128, 48].map((group) => ({ kind: "q8", group }));
  for (const e of [...dense, ...q8]) {
    for (const [rows, cols, m] of SHAPES) {
      test(`${encodingName(e)} ${rows}x${cols}, m ${m}: kernel with f32 activations`, () => {
        const bytes = quantizeRtn(e, randomFloats(rows * cols, rows + cols), rows, cols);
        const x = randomFloats(m * cols, 3);
        const mark = k.arena.mark();
        try {
          const a = createPackedMatrix(k, e, rows, cols, bytes);
          const xp = k.arena.alloc(4 * m * cols);
          new Float32Array(k.memory.buffer, xp, m * cols).set(x);
          const op = k.arena.alloc(4 * m * rows);
          if (e.kind === "q8") expect(k.exports.gemm_q8(a.ptr, a.layout.scaleOffset, e.group, xp, cols, m, rows, cols, op, rows)).toBe(0);
          else k.exports[`gemm_${e.kind}`](a.ptr, xp, cols, m, rows, cols, op, rows);
          const y = new Float32Array(k.memory.buffer, op, m * rows).slice();
          const ref = gemmDense(e, bytes, rows, cols, x, m);
          const bound = denseBound(dequantize(e, bytes, rows, cols), x, m, rows, cols);
          for (let i = 0; i < y.length; i++) expect(Math.abs(y[i] - ref[i])).toBeLessThanOrEqual(bound[i]);
          if (e.kind !== "q8") expect(gemv(k, a, x.subarray(0, cols))).toEqual(y.subarray(0, rows));
        } finally {
          k.arena.release(mark);
        }
      });
    }
  }

  for (const e of q8) {
    for (const [rows, cols, m] of SHAPES) {
      test(`${encodingName(e)} ${rows}x${cols}, m ${m}: int8 activations, exact twin and bound`, () => {
        const bytes = quantizeRtn(e, randomFloats(rows * cols, rows + cols), rows, cols);
        const x = randomFloats(m * cols, 3);
        x[0] = 0;
        const mark = k.arena.mark();
        try {
          const a = createPackedMatrix(k, e, rows, cols, bytes);
          const input = createQ8Input(k, cols, e.group, m);
          quantizeQ8Input(k, input, x, m);
          for (let t = 0; t < m; t++) {
            const ref = quantizeQ8Act(x.subarray(t * cols, (t + 1) * cols), cols, e.group);
            const at = input.ptr + t * q8ActByteLength(cols, e.group);
            expect(new Int16Array(k.memory.buffer, at, ref.q.length)).toEqual(ref.q);
            expect(new Float32Array(k.memory.buffer, at + 2 * ref.q.length, ref.scales.length)).toEqual(ref.scales);
          }
          const y = gemm(k, a, input, m) as Float32Array;
          expect(y).toEqual(gemmQ8I8(e, bytes, rows, cols, x, m));
          expect(gemm(k, a, x, m)).toEqual(y);
          const exact = gemmDense(e, bytes, rows, cols, x, m);
          const { codes, scales } = unpackQ8(e, bytes, rows, cols);
          const groups = Math.ceil(cols / e.group);
          for (let t = 0; t < m; t++) {
            const xs = quantizeQ8Act(x.subarray(t * cols, (t + 1) * cols), cols, e.group).scales;
            for (let r = 0; r < rows; r++) {
              let bound = 1e-5;
              for (let c = 0; c < cols; c++) {
                const g = Math.floor(c / e.group);
                bound += Math.abs(codes[r * cols + c]) * scales[r * groups + g] * xs[g] * 0.5;
              }
              expect(Math.abs(y[t * rows + r] - exact[t * rows + r])).toBeLessThanOrEqual(bound * 1.001);
            }
          }
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
    expect(() => createPackedMatrix(k, { kind: "bitplane", bits: 5, group: 32, scales: "zero-point" } as never, rows, cols, bytes)).toThrow(
      FormatError,
    );
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
      const q = createPackedMatrix(
        k,
        { kind: "q8", group: 32 },
        2,
        cols,
        quantizeRtn({ kind: "q8", group: 32 }, new Float32Array(2 * cols), 2, cols),
      );
      expect(() => gemv(k, q, small)).toThrow(ShapeError);
      expect(() => gemv(k, a, createQ8Input(k, cols, 32))).toThrow(ShapeError);
      expect(() => gemv(k, q, createQ8Input(k, cols, 64))).toThrow(ShapeError);
      expect(() => createQ8Input(k, cols, 24)).toThrow(ShapeError);
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
