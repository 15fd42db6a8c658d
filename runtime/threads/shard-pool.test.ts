/**
 * The row-shard fallback pool (runtimes without shared WebAssembly memory): the kernel binary
 * runs over a private memory, row slices of packed matrices are packed matrices, and a matmul
 * split across workers with private memories equals the single-thread result bit for bit.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { KernelError, ShapeError } from "../errors.ts";
import { type Encoding, encodingName } from "../format/encoding.ts";
import { dequantize } from "../format/pack-dequantize.ts";
import { sliceMatrixRows } from "../format/slice-rows.ts";
import { buildLut, createLut, createPackedMatrix, createQ8Input, gemm, type PackedMatrix, type PreparedInput, quantizeQ8Input } from "../kernels/matmul.ts";
import { quantizeRtn, randomFloats } from "../../test/fixtures/matmul-fixtures.ts";
import { createShardPool, type ShardPool } from "./shard-pool.ts";
import { unsharedMemoryBinary } from "../kernels/unshared-binary.ts";
import { createKernels } from "../kernels/wasm.ts";

const ENCODINGS: Encoding[] = [
  { kind: "bitplane", bits: 2, group: 32, scales: "zero-point" },
  { kind: "bitplane", bits: 3, group: 64, scales: "per-plane" },
  { kind: "ternary", group: 128, planes: 2 },
  { kind: "q8", group: 32 },
  { kind: "f16" },
  { kind: "f32" },
];
const ROWS = 75; // not a multiple of the 16-row tile
const COLS = 200; // not a multiple of any group

describe("unshared kernel binary", () => {
  test("instantiates over a private memory and computes what the shared one does", () => {
    const k = createKernels({ shared: false });
    expect(k.memory.buffer instanceof SharedArrayBuffer).toBe(false);
    const shared = createKernels({ shared: true });
    const e = ENCODINGS[0];
    const packed = quantizeRtn(e, randomFloats(ROWS * COLS, 1), ROWS, COLS);
    const x = randomFloats(COLS, 2);
    const a = gemm(k, createPackedMatrix(k, e, ROWS, COLS, packed), x, 1) as Float32Array;
    const b = gemm(shared, createPackedMatrix(shared, e, ROWS, COLS, packed), x, 1) as Float32Array;
    expect(a).toEqual(b);
  });

  test("a binary without a shared memory import is refused", () => {
    const empty = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
    expect(() => unsharedMemoryBinary(empty)).toThrow(KernelError);
  });
});

describe("sliceMatrixRows", () => {
  for (const e of ENCODINGS) {
    test(`${encodingName(e)}: a slice dequantises to the same rows`, () => {
      const packed = quantizeRtn(e, randomFloats(ROWS * COLS, 3), ROWS, COLS);
      const full = dequantize(e, packed, ROWS, COLS);
      for (const [begin, end] of [[0, 16], [16, 48], [48, ROWS]]) {
        const part = dequantize(e, sliceMatrixRows(e, ROWS, COLS, packed, begin, end), end - begin, COLS);
        expect(part).toEqual(full.subarray(begin * COLS, end * COLS));
      }
    });
  }

  test("LUT slices off the row tile and empty ranges are refused", () => {
    const e = ENCODINGS[0];
    const packed = quantizeRtn(e, randomFloats(ROWS * COLS, 3), ROWS, COLS);
    expect(() => sliceMatrixRows(e, ROWS, COLS, packed, 8, 32)).toThrow(ShapeError);
    expect(() => sliceMatrixRows(e, ROWS, COLS, packed, 16, 16)).toThrow(ShapeError);
    expect(() => sliceMatrixRows(e, ROWS, COLS, packed.subarray(1), 0, 16)).toThrow(ShapeError);
  });
});

describe("row-shard pool", () => {
  const k = createKernels({ shared: false });
  const matrices: PackedMatrix[] = ENCODINGS.map((e, i) => createPackedMatrix(k, e, ROWS, COLS, quantizeRtn(e, randomFloats(ROWS * COLS, 10 + i), ROWS, COLS)));
  const pools: ShardPool[] = [];
  beforeAll(async () => {
    pools.push(await createShardPool({ threads: 2, kernels: k, matrices, maxTokens: 4 }));
    pools.push(await createShardPool({ threads: 3, kernels: k, matrices: matrices.slice(0, 3), maxTokens: 4 }));
  });
  afterAll(() => pools.forEach((p) => p.dispose()));

  const M = 3;
  function prepared(a: PackedMatrix, x: Float32Array): number | PreparedInput {
    const e = a.encoding;
    const xp = k.arena.alloc(x.length * 4);
    new Float32Array(k.memory.buffer, xp, x.length).set(x);
    if (e.kind === "bitplane" || e.kind === "ternary") {
      const lut = createLut(k, COLS, e.group, M);
      buildLut(k, lut, xp, M);
      return lut;
    }
    if (e.kind === "q8") {
      const q = createQ8Input(k, COLS, e.group, M);
      quantizeQ8Input(k, q, xp, M);
      return q;
    }
    return xp;
  }

  for (const [i, e] of ENCODINGS.entries()) {
    test(`${encodingName(e)}: 2 and 3 threads equal 1 thread bit for bit`, () => {
      const a = matrices[i];
      const x = randomFloats(M * COLS, 20 + i);
      const want = gemm(k, a, x, M) as Float32Array;
      for (const pool of pools) {
        const mark = k.arena.mark();
        try {
          const input = prepared(a, x);
          const stride = ROWS + 3;
          const out = k.arena.alloc(4 * M * stride);
          pool.gemm(a, input, M, out, stride);
          const got = new Float32Array(k.memory.buffer, out, M * stride);
          for (let t = 0; t < M; t++) expect(got.subarray(t * stride, t * stride + ROWS)).toEqual(want.subarray(t * ROWS, (t + 1) * ROWS));
        } finally {
          k.arena.release(mark);
        }
      }
    });
  }

  test("a matrix the pool was not given runs on the main thread; too many tokens are refused", () => {
    const pool = pools[1];
    const a = matrices[4]; // f16: not given to the 3-thread pool
    const x = randomFloats(M * COLS, 30);
    const want = gemm(k, a, x, M) as Float32Array;
    const mark = k.arena.mark();
    try {
      const input = prepared(a, x) as number;
      const out = k.arena.alloc(4 * M * ROWS);
      pool.gemm(a, input, M, out, ROWS);
      expect(new Float32Array(k.memory.buffer, out, M * ROWS)).toEqual(want);
      const big = k.arena.alloc(4 * 8 * COLS);
      expect(() => pools[0].gemm(a, big, 8, k.arena.alloc(4 * 8 * ROWS), ROWS)).toThrow(ShapeError);
    } finally {
      k.arena.release(mark);
    }
  });
});
