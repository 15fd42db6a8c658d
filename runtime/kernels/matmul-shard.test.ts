/**
 * Row shards (`gemmRows`, what a worker pool runs): the union of shards equals the full
 * gemm bit for bit for LUT and dense encodings, and bad shard arguments raise typed errors.
 */
import { describe, expect, test } from "bun:test";
import { KernelError, ShapeError } from "../errors.ts";
import { type Encoding, encodingName } from "../format/encoding.ts";
import { buildLut, checkedPrepareCall, createLut, createPackedMatrix, createQ8Input, gemm, gemmRows, quantizeQ8Input } from "./matmul.ts";
import { quantizeRtn, randomFloats } from "../../test/fixtures/matmul-fixtures.ts";
import { loadKernels } from "./wasm.ts";

const k = loadKernels();
const ROWS = 53;
const COLS = 150;
const M = 3;

describe("gemmRows shards equal the full gemm", () => {
  const encodings: Encoding[] = [
    { kind: "bitplane", bits: 3, group: 64, scales: "per-plane" },
    { kind: "ternary", group: 32, planes: 1 },
    { kind: "f32" },
    { kind: "f16" },
    { kind: "q8", group: 32 },
  ];
  for (const e of encodings) {
    test(encodingName(e), () => {
      const mark = k.arena.mark();
      try {
        const a = createPackedMatrix(k, e, ROWS, COLS, quantizeRtn(e, randomFloats(ROWS * COLS, 4), ROWS, COLS));
        const x = randomFloats(M * COLS, 5);
        const full = gemm(k, a, x, M) as Float32Array;
        const xp = k.arena.alloc(M * COLS * 4);
        new Float32Array(k.memory.buffer, xp, M * COLS).set(x);
        let input: number | ReturnType<typeof createLut> | ReturnType<typeof createQ8Input> = xp;
        if (e.kind === "bitplane" || e.kind === "ternary") {
          input = createLut(k, COLS, e.group, M);
          buildLut(k, input, xp, M);
        } else if (e.kind === "q8") {
          input = createQ8Input(k, COLS, e.group, M);
          quantizeQ8Input(k, input, xp, M);
        }
        const stride = ROWS + 5;
        const out = k.arena.alloc(M * stride * 4);
        for (const [start, count] of [[0, 16], [16, 32], [48, 5]]) gemmRows(k, a, input, M, start, count, out, stride);
        const got = new Float32Array(k.memory.buffer, out, M * stride);
        for (let t = 0; t < M; t++) expect(got.subarray(t * stride, t * stride + ROWS)).toEqual(full.subarray(t * ROWS, (t + 1) * ROWS));
      } finally {
        k.arena.release(mark);
      }
    });
  }

  test("bad shards are rejected", () => {
    const e: Encoding = { kind: "bitplane", bits: 2, group: 32, scales: "zero-point" };
    const mark = k.arena.mark();
    try {
      const a = createPackedMatrix(k, e, ROWS, COLS, quantizeRtn(e, randomFloats(ROWS * COLS, 4), ROWS, COLS));
      const lut = createLut(k, COLS, 32, 1);
      buildLut(k, lut, randomFloats(COLS, 1));
      const out = k.arena.alloc(ROWS * 4);
      expect(() => gemmRows(k, a, lut, 1, 8, 16, out)).toThrow(ShapeError);
      expect(() => gemmRows(k, a, lut, 1, 48, 16, out)).toThrow(ShapeError);
      expect(() => gemmRows(k, a, lut, 1, 0, 16, out, 10)).toThrow(ShapeError);
      expect(() => gemmRows(k, a, lut, 2, 0, 16, out)).toThrow(ShapeError);
      expect(() => gemmRows(k, a, out, 1, 0, 16, out)).toThrow(ShapeError);
      expect(() => gemmRows(k, a, lut, 1, 0, 16, k.memory.buffer.byteLength - 8)).toThrow(KernelError);
      const f = createPackedMatrix(k, { kind: "f32" }, 2, 2, new Uint8Array(16));
      expect(() => gemmRows(k, f, lut, 1, 0, 1, out)).toThrow(ShapeError);
      expect(() => gemmRows(k, f, out + 2, 1, 0, 1, out)).toThrow(KernelError);
      const q = createPackedMatrix(
        k,
        { kind: "q8", group: 32 },
        2,
        COLS,
        quantizeRtn({ kind: "q8", group: 32 }, new Float32Array(2 * COLS), 2, COLS),
      );
      expect(() => gemmRows(k, q, out, 1, 0, 1, out)).toThrow(ShapeError);
    } finally {
      k.arena.release(mark);
    }
  });

  test("preparing an input: the checked call refuses overlap, overflow and a full buffer, and its token ranges add up", () => {
    const mark = k.arena.mark();
    try {
      const lut = createLut(k, COLS, 32, 4);
      const x = k.arena.alloc(4 * 4 * COLS, 64);
      new Float32Array(k.memory.buffer, x, 4 * COLS).set(randomFloats(4 * COLS, 9));
      expect(() => checkedPrepareCall(k, lut, lut.ptr + 64, 1)).toThrow(/overlaps the prepared buffer/);
      expect(() => checkedPrepareCall(k, lut, x, 5)).toThrow(ShapeError);
      expect(() => checkedPrepareCall(k, lut, k.memory.buffer.byteLength - 8, 1)).toThrow(KernelError);
      // Tokens [0, 1) and [1, 4) as two calls build the same tables as buildLut on all four.
      const call = checkedPrepareCall(k, lut, x, 4);
      for (const [b, e] of [[0, 1], [1, 4]]) k.exports[call.exportName](...call.argsFor(b, e));
      const split = new Uint8Array(k.memory.buffer, lut.ptr, lut.stride * 4).slice();
      const whole = createLut(k, COLS, 32, 4);
      buildLut(k, whole, new Float32Array(k.memory.buffer, x, 4 * COLS).slice(), 4);
      expect(split).toEqual(new Uint8Array(k.memory.buffer, whole.ptr, whole.stride * 4).slice());
    } finally {
      k.arena.release(mark);
    }
  });
});
