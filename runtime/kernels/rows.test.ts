/**
 * Parity of the row kernels (add_rows_f32, q8_row_f32) with their twins: both are exact in f32,
 * so the outputs must be equal bit for bit, for lengths off the SIMD width and groups that do
 * not divide the row; plus the wrappers' argument checks.
 */
import { describe, expect, test } from "bun:test";
import { KernelError, ShapeError } from "../errors.ts";
import { f32ToF16 } from "../format/pack-f16.ts";
import { addRowsRef, q8RowRef } from "./reference.ts";
import { addRowsF32, q8RowF32 } from "./rows.ts";
import { alloc, createRng, getF32, put, randomF32, withArena } from "../../test/fixtures/kernel-data.ts";
import { loadKernels } from "./wasm.ts";

const kern = loadKernels();

describe("add_rows_f32", () => {
  test.each([1, 3, 4, 7, 64, 1031])("equals the twin bit for bit, n=%d", (n) =>
    withArena(kern, () => {
      const rows = 5;
      const x = randomF32(n, rows * n, 3);
      const bias = randomF32(n + 7, n);
      const px = put(kern, x);
      const pb = put(kern, bias);
      const out = alloc(kern, rows * n);
      addRowsF32(kern, { x: px, bias: pb, out, rows, n });
      expect(getF32(kern, out, rows * n)).toEqual(addRowsRef(x, bias, rows, n));
      addRowsF32(kern, { x: px, bias: pb, out: px, rows, n }); // in place
      expect(getF32(kern, px, rows * n)).toEqual(addRowsRef(x, bias, rows, n));
    }));

  test("refuses a partly overlapping output and a zero row count", () =>
    withArena(kern, () => {
      const x = alloc(kern, 64);
      const bias = alloc(kern, 16);
      expect(() => addRowsF32(kern, { x, bias, out: x + 16, rows: 2, n: 16 })).toThrow(KernelError);
      expect(() => addRowsF32(kern, { x, bias, out: x, rows: 0, n: 16 })).toThrow(ShapeError);
    }));
});

describe("q8_row_f32", () => {
  for (const [n, group] of [[1, 16], [7, 16], [64, 32], [100, 32], [1031, 64], [5, 1]] as const) {
    test(`equals the twin bit for bit, n=${n} group=${group}`, () =>
      withArena(kern, () => {
        const rng = createRng(n * 31 + group);
        const codes = Int8Array.from({ length: n }, () => Math.floor(rng.uniform() * 255) - 127);
        const groups = Math.ceil(n / group);
        const scales = Uint16Array.from({ length: groups }, () => f32ToF16((rng.uniform() - 0.5) * 0.1));
        const pc = kern.arena.alloc(n, 16);
        new Int8Array(kern.memory.buffer, pc, n).set(codes);
        const ps = put(kern, scales);
        const out = alloc(kern, n);
        q8RowF32(kern, { codes: pc, scales: ps, group, n, out });
        expect(getF32(kern, out, n)).toEqual(q8RowRef(codes, scales, group, n));
      }));
  }

  test("refuses an output overlapping the codes", () =>
    withArena(kern, () => {
      const codes = alloc(kern, 16);
      const scales = alloc(kern, 1);
      expect(() => q8RowF32(kern, { codes, scales, group: 16, n: 16, out: codes })).toThrow(KernelError);
    }));
});
