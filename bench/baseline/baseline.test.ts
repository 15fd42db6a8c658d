/**
 * Parity of the benchmark baselines (kernels-wasm/src/baseline.rs): the dequantise-then-dot
 * GEMV against its twin (./reference.ts: the format's dequantiser and f64 dots) within
 * f32 rounding, and against the real kernels (LUT, q8, f16, f32 GEMV) within their documented
 * activation-quantisation error, for every encoding on odd shapes (rows not a multiple of the
 * 16-row tile, cols not a multiple of the group). Row shards on 1 and 2 threads equal the
 * whole call bit for bit; the streaming-read sum equals its twin; bad arguments are typed errors.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { KernelError, ShapeError } from "../../runtime/errors.ts";
import { type Encoding, encodingName, matrixLayout } from "../../runtime/format/encoding.ts";
import { dequantize } from "../../runtime/format/pack-dequantize.ts";
import { isLutEncoding, unpackLut } from "../../runtime/format/pack-lut.ts";
import {
  createDequantScratch,
  dequantShards,
  gemvDequant,
  gemvDequantCall,
  runDequantShard,
  streamShards,
  streamSumU32,
} from "./wrappers.ts";
import { createPackedMatrix, gemv, type PackedMatrix } from "../../runtime/kernels/matmul.ts";
import { quantizeRtn, randomFloats, rng } from "../../test/fixtures/matmul-fixtures.ts";
import { createPool, disposePool, type Pool } from "../../runtime/threads/pool.ts";
import { gemvDequant as gemvDequantRef, streamSumU32 as streamSumU32Ref } from "./reference.ts";
import { QUICK } from "../../test/fixtures/kernel-data.ts";
import { loadBenchKernels } from "./kernels.ts";

const k = loadBenchKernels();
const ROWS = 37;
const COLS = 150;

const encodings: Encoding[] = [{ kind: "f32" }, { kind: "f16" }, { kind: "q8", group: 32 }, { kind: "q8", group: 48 }];
// CRUMB_QUICK_TESTS (emulated ARM64): one group size; every export and scale mode still runs.
for (const group of QUICK ? ([64] as const) : ([32, 64, 128] as const)) {
  for (const bits of [1, 2, 3, 4] as const) {
    for (const scales of ["zero-point", "per-plane"] as const) encodings.push({ kind: "bitplane", bits, group, scales });
  }
  for (const planes of [1, 2] as const) encodings.push({ kind: "ternary", group, planes });
}

/** Per row: f32 rounding of an n-term dot (and of the dequantised weights), as a bound. */
function f32Bound(w: Float32Array, x: Float32Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.abs(w[r * cols + c] * x[c]);
    out[r] = (cols + 4) * 2 ** -23 * s + 1e-6;
  }
  return out;
}

/**
 * Per row: the real kernel's activation-rounding bound. LUT: each table entry is off by at
 * most half a table step ts/2 (ts = the group's largest |quad sum| / 127), and every row's
 * (group, plane) lookup sum enters with its coefficient (zero-point (2^b-1)|d|, per-plane
 * sum|s_p|, ternary 3|alpha| per trit-plane) over G/8 table pairs (see matmul.test.ts).
 * q8: each activation is off by at most half its group's step amax/127.
 */
function realKernelBound(e: Encoding, bytes: Uint8Array, w: Float32Array, x: Float32Array, rows: number, cols: number): Float64Array {
  const out = f32Bound(w, x, rows, cols).map((v) => 2 * v);
  if (e.kind === "f32" || e.kind === "f16") return out;
  const l = matrixLayout(e, rows, cols);
  const G = e.group;
  const act = (c: number) => (c < cols ? Math.abs(x[c]) : 0);
  if (!isLutEncoding(e)) {
    for (let r = 0; r < rows; r++) {
      for (let g = 0; g < l.groups; g++) {
        let amax = 0;
        let wsum = 0;
        for (let c = g * G; c < Math.min(cols, (g + 1) * G); c++) {
          amax = Math.max(amax, act(c));
          wsum += Math.abs(w[r * cols + c]);
        }
        out[r] += (amax / 127 / 2) * wsum * 1.001;
      }
    }
    return out;
  }
  const { scales, vectors } = unpackLut(e, bytes, rows, cols);
  for (let g = 0; g < l.groups; g++) {
    let maxsum = 0;
    for (let q = g * G; q < (g + 1) * G; q += 4) maxsum = Math.max(maxsum, act(q) + act(q + 1) + act(q + 2) + act(q + 3));
    const ts = maxsum / 127;
    for (let r = 0; r < rows; r++) {
      const s = (r * l.groups + g) * vectors;
      let coef = 0;
      if (e.kind === "ternary") for (let t = 0; t < e.planes; t++) coef += 3 * Math.abs(scales[s + t]);
      else if (e.scales === "zero-point") coef = Math.abs(scales[s]) * ((1 << e.bits) - 1);
      else for (let p = 0; p < e.bits; p++) coef += Math.abs(scales[s + p]);
      out[r] += (ts / 2) * (G / 8) * coef * 1.001 + 1e-5;
    }
  }
  return out;
}

function expectWithin(got: Float32Array, want: Float32Array, bound: Float64Array): void {
  expect(got.length).toBe(want.length);
  const bad: { row: number; got: number; want: number; bound: number }[] = [];
  for (let r = 0; r < want.length; r++) {
    if (!(Math.abs(got[r] - want[r]) <= bound[r])) bad.push({ row: r, got: got[r], want: want[r], bound: bound[r] });
  }
  expect(bad.slice(0, 3)).toEqual([]);
}

function withMark<T>(body: () => T): T {
  const mark = k.arena.mark();
  try {
    return body();
  } finally {
    k.arena.release(mark);
  }
}

let pool: Pool | undefined;
afterAll(async () => {
  if (pool !== undefined) await disposePool(pool);
});

describe("gemv_dequant_* match their twin and the real kernels", () => {
  for (const e of encodings) {
    test(`${encodingName(e)} (rows ${ROWS}, cols ${COLS})`, () => {
      const bytes = quantizeRtn(e, randomFloats(ROWS * COLS, 21), ROWS, COLS, 5);
      const x = randomFloats(COLS, 22);
      x[3] = 8; // an outlier stretches the LUT/q8 activation steps
      const w = dequantize(e, bytes, ROWS, COLS);
      withMark(() => {
        const a = createPackedMatrix(k, e, ROWS, COLS, bytes);
        const got = gemvDequant(k, a, x) as Float32Array;
        expectWithin(got, gemvDequantRef(e, bytes, ROWS, COLS, x), f32Bound(w, x, ROWS, COLS));
        expectWithin(gemv(k, a, x) as Float32Array, got, realKernelBound(e, bytes, w, x, ROWS, COLS));
      });
    });
  }
});

describe("row shards", () => {
  const sharded: Encoding[] = [
    { kind: "bitplane", bits: 2, group: 64, scales: "zero-point" },
    { kind: "ternary", group: 32, planes: 2 },
    { kind: "q8", group: 32 },
    { kind: "f16" },
    { kind: "f32" },
  ];
  for (const e of sharded) {
    test(`${encodingName(e)}: 3 shards on one thread and 2 on the pool equal the whole call`, async () => {
      pool ??= await createPool({ threads: 2, kernels: k });
      const bytes = quantizeRtn(e, randomFloats(ROWS * COLS, 31), ROWS, COLS, 5);
      const x = randomFloats(COLS, 32);
      const mark = k.arena.mark();
      try {
        const a = createPackedMatrix(k, e, ROWS, COLS, bytes);
        const whole = gemvDequant(k, a, x) as Float32Array;
        const xp = k.arena.alloc(4 * COLS, 16);
        new Float32Array(k.memory.buffer, xp, COLS).set(x);
        const out = k.arena.alloc(4 * ROWS, 16);
        const call = gemvDequantCall(k, a, xp, out, createDequantScratch(k, a, 3));
        for (const [begin, end, slot] of [[0, 5, 2], [5, 20, 0], [20, ROWS, 1]]) runDequantShard(k, call, begin, end, slot);
        expect(new Float32Array(k.memory.buffer, out, ROWS).slice()).toEqual(whole);
        new Float32Array(k.memory.buffer, out, ROWS).fill(0);
        pool.run(call.exportName, dequantShards(call, ROWS, 2));
        expect(new Float32Array(k.memory.buffer, out, ROWS).slice()).toEqual(whole);
      } finally {
        k.arena.release(mark);
      }
    });
  }
});

describe("stream_sum_u32", () => {
  test("equals its twin, whole and in shards (with a tail of words past the 64-byte loop)", () => {
    const r = rng(41);
    const data = Uint8Array.from({ length: 4 * 1001 }, () => Math.floor(r() * 256));
    withMark(() => {
      const p = k.arena.alloc(data.length + 16, 64);
      new Uint8Array(k.memory.buffer, p, data.length).set(data);
      expect(streamSumU32(k, p, data.length)).toBe(streamSumU32Ref(data));
      expect(streamSumU32(k, p + 16, 4 * 37)).toBe(streamSumU32Ref(data.subarray(16, 16 + 4 * 37)));
      const shards = streamShards(k, p, 4000, 3);
      let total = 0;
      for (const [ptr, words] of shards) total = (total + (k.exports.stream_sum_u32(ptr, words) >>> 0)) >>> 0;
      expect(shards.reduce((n, [, words]) => n + words, 0)).toBe(1000);
      expect(total).toBe(streamSumU32Ref(data.subarray(0, 4000)));
    });
  });
});

describe("invalid arguments are typed errors", () => {
  const e: Encoding = { kind: "bitplane", bits: 2, group: 32, scales: "zero-point" };
  const bytes = quantizeRtn(e, randomFloats(ROWS * COLS, 51), ROWS, COLS, 5);

  test("gemvDequant: wrong input/output lengths", () => {
    withMark(() => {
      const a = createPackedMatrix(k, e, ROWS, COLS, bytes);
      expect(() => gemvDequant(k, a, new Float32Array(COLS - 1))).toThrow(ShapeError);
      expect(() => gemvDequant(k, a, new Float32Array(COLS), new Float32Array(ROWS + 1))).toThrow(ShapeError);
    });
  });

  test("gemvDequantCall: misaligned or out-of-range pointers, small scratch, bad slots and ranges", () => {
    withMark(() => {
      const a = createPackedMatrix(k, e, ROWS, COLS, bytes);
      const xp = k.arena.alloc(4 * COLS, 16);
      const out = k.arena.alloc(4 * ROWS, 16);
      const scratch = createDequantScratch(k, a, 2);
      const end = k.memory.buffer.byteLength;
      const moved: PackedMatrix = { ...a, ptr: a.ptr + 4 };
      expect(() => gemvDequantCall(k, moved, xp, out, scratch)).toThrow(KernelError);
      expect(() => gemvDequantCall(k, a, xp + 2, out, scratch)).toThrow(KernelError);
      expect(() => gemvDequantCall(k, a, end - 8, out, scratch)).toThrow(KernelError);
      expect(() => gemvDequantCall(k, a, xp, end - 4, scratch)).toThrow(KernelError);
      expect(() => gemvDequantCall(k, a, xp, out, { ...scratch, slotBytes: 4 * COLS })).toThrow(ShapeError);
      const call = gemvDequantCall(k, a, xp, out, scratch);
      expect(() => call.argsFor(0, ROWS, 2)).toThrow(ShapeError);
      expect(() => call.argsFor(0, ROWS + 1, 0)).toThrow(ShapeError);
      expect(() => call.argsFor(10, 5, 0)).toThrow(ShapeError);
      expect(() => dequantShards(call, ROWS, 3)).toThrow(ShapeError);
    });
  });

  test("streamSumU32: partial words, misaligned or out-of-range regions", () => {
    withMark(() => {
      const p = k.arena.alloc(64, 64);
      expect(() => streamSumU32(k, p, 6)).toThrow(ShapeError);
      expect(() => streamSumU32(k, p + 4, 16)).toThrow(KernelError);
      expect(() => streamSumU32(k, p, k.memory.buffer.byteLength)).toThrow(KernelError);
      expect(() => streamShards(k, p, 20, 2)).toThrow(ShapeError);
    });
  });
});
