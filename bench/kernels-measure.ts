/**
 * Measurements behind `bun run bench:kernels` (bench/kernels.ts): GEMV time of crumb's
 * kernels per encoding, shape and thread count, the "dequantise to f32, then dot" baseline
 * (kernels-wasm/src/baseline.rs) on the same packed bytes and threads, and the streaming-read
 * bandwidth of the machine, all in one process on one worker pool.
 *
 * What is timed: one decode step's matrix-vector product as the engine pays it, so the LUT
 * encodings include building the input's tables and q8 includes quantising the activations
 * (`kernel_ms` is the GEMV alone on prebuilt tables). Each timed call reads the next of
 * several copies of the matrix, so the weights stream from memory as they do in a model
 * whose layers do not fit the last-level cache; the result is the median call.
 */
import { KernelError } from "../runtime/errors.ts";
import { type Encoding, encodingName, matrixLayout } from "../runtime/format/encoding.ts";
import { createDequantScratch, dequantShards, gemvDequantCall, streamShards } from "./baseline/wrappers.ts";
import {
  buildLut,
  createLut,
  createPackedMatrix,
  createQ8Input,
  gemmShardCall,
  gemv,
  type PackedMatrix,
  type PreparedInput,
  quantizeQ8Input,
} from "../runtime/kernels/matmul.ts";
import { type Pool, splitRows } from "../runtime/threads/pool.ts";
import type { Kernels } from "../runtime/kernels/wasm.ts";
import { ENCODINGS, fitGroup } from "./config.ts";

export const KERNEL_ENCODINGS = ["q2", "q3", "q4", "ternary", "q8", "f16", "f32"] as const;
export type KernelEncodingName = typeof KERNEL_ENCODINGS[number];

/** The packed encodings measured: the LUT ones as bench/config.ts packs models; q8 as the embeddings. */
export const KERNEL_ENCODING: Readonly<Record<KernelEncodingName, Encoding>> = {
  ...ENCODINGS,
  q8: { kind: "q8", group: 32 },
  f16: { kind: "f16" },
  f32: { kind: "f32" },
};

export interface KernelBenchOptions {
  /** (rows, cols) = (output features, input features): W is rows x cols and y = W x. */
  readonly shapes: readonly (readonly [number, number])[];
  readonly encodings: readonly KernelEncodingName[];
  readonly threads: readonly number[];
  /** Each measurement runs at least this long (and at least MIN_REPS calls). */
  readonly minTimeMs: number;
  /** Copies of each matrix are cycled until they cover this many bytes (cache-cold weights). */
  readonly workingSetBytes: number;
  /** Buffer read by the bandwidth kernel; much larger than the last-level cache. */
  readonly bandwidthBytes: number;
  readonly seed: number;
  readonly log: (message: string) => void;
}

export interface KernelRow {
  readonly encoding: KernelEncodingName;
  readonly rows: number;
  readonly cols: number;
  readonly threads: number;
  /** Median decode-step GEMV: table building / activation quantisation + the kernel. */
  readonly gemv_ms: number;
  /** Packed weight bytes / gemv_ms. */
  readonly gbs: number;
  readonly speedup_vs_dequant: number;
  readonly packing: string;
  readonly weight_bytes: number;
  /** The kernel alone on a prepared input (equal to gemv_ms for f16/f32). */
  readonly kernel_ms: number;
  /** The kernel alone, always on the first copy (cache-resident when it fits the last-level cache). */
  readonly hot_kernel_ms: number;
  readonly dequant_ms: number;
  readonly dequant_gbs: number;
  /** gbs as a percentage of the streaming-read bandwidth at the same thread count. */
  readonly pct_of_bandwidth: number;
  /** max |kernel - baseline| / max |baseline| on the same input (a sanity check, not a bound). */
  readonly max_rel_diff: number;
  readonly copies: number;
  readonly reps: number;
}

/** What measureMatrix measures; kernelRow derives the reported row. */
export type MatrixTiming = Pick<
  KernelRow,
  | "encoding"
  | "rows"
  | "cols"
  | "threads"
  | "packing"
  | "weight_bytes"
  | "gemv_ms"
  | "kernel_ms"
  | "hot_kernel_ms"
  | "dequant_ms"
  | "max_rel_diff"
  | "copies"
  | "reps"
>;

/** The reported row: timings rounded, GB/s, speedup and share of the bandwidth (GB/s at the same threads). */
export function kernelRow(t: MatrixTiming, bandwidthGbs: number): KernelRow {
  const gbs = t.weight_bytes / t.gemv_ms / 1e6;
  return {
    encoding: t.encoding,
    rows: t.rows,
    cols: t.cols,
    threads: t.threads,
    gemv_ms: round(t.gemv_ms, 4),
    gbs: round(gbs, 2),
    speedup_vs_dequant: round(t.dequant_ms / t.gemv_ms, 2),
    packing: t.packing,
    weight_bytes: t.weight_bytes,
    kernel_ms: round(t.kernel_ms, 4),
    hot_kernel_ms: round(t.hot_kernel_ms, 4),
    dequant_ms: round(t.dequant_ms, 3),
    dequant_gbs: round(t.weight_bytes / t.dequant_ms / 1e6, 2),
    pct_of_bandwidth: round((100 * gbs) / bandwidthGbs, 1),
    max_rel_diff: round(t.max_rel_diff, 5),
    copies: t.copies,
    reps: t.reps,
  };
}

/** Best of several passes over the same configuration: the lowest of each median, reps summed. */
export function bestTiming(passes: readonly MatrixTiming[]): MatrixTiming {
  const min = (key: "gemv_ms" | "kernel_ms" | "hot_kernel_ms" | "dequant_ms") => Math.min(...passes.map((p) => p[key]));
  return {
    ...passes[0],
    gemv_ms: min("gemv_ms"),
    kernel_ms: min("kernel_ms"),
    hot_kernel_ms: min("hot_kernel_ms"),
    dequant_ms: min("dequant_ms"),
    max_rel_diff: Math.max(...passes.map((p) => p.max_rel_diff)),
    reps: passes.reduce((n, p) => n + p.reps, 0),
  };
}

export function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export interface BandwidthRow {
  readonly threads: number;
  readonly gbs: number;
  readonly ms: number;
  readonly bytes: number;
}

const MIN_REPS = 7;
const MAX_REPS = 5000;

/** Calls `step(i)` repeatedly (i = call index) and returns the median time in ms and the call count. */
export function timeMedian(step: (i: number) => void, minTimeMs: number, warmup: number): { ms: number; reps: number } {
  for (let i = 0; i < warmup; i++) step(i);
  const times: number[] = [];
  const start = performance.now();
  while (times.length < MAX_REPS && (times.length < MIN_REPS || performance.now() - start < minTimeMs)) {
    const t0 = performance.now();
    step(times.length);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  const ms = times.length % 2 === 1 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
  return { ms, reps: times.length };
}

/** xorshift32 words: fast deterministic filler for large buffers. */
function fillRandom(bytes: Uint8Array, seed: number): void {
  let s = (seed * 2654435761) >>> 0 || 1;
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2);
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = s;
  }
  for (let i = words.length * 4; i < bytes.length; i++) bytes[i] = i * 131;
}

/**
 * Random packed bytes of a (rows, cols) matrix: random indices/codes, with every f16 scale
 * and weight, and every f32 weight, made finite (scales in [2^-7, 2^-6), weights in ±[0.5, 1)).
 */
export function randomPackedMatrix(e: Encoding, rows: number, cols: number, seed: number): Uint8Array {
  const l = matrixLayout(e, rows, cols);
  const bytes = new Uint8Array(l.byteLength);
  fillRandom(bytes, seed);
  const u16 = (from: number, to: number, mask: number, set: number) => {
    const v = new Uint16Array(bytes.buffer, from, (to - from) >> 1);
    for (let i = 0; i < v.length; i++) v[i] = (v[i] & mask) | set;
  };
  const SCALE = [0x03ff, 0x2000] as const;
  if (e.kind === "f32") {
    const v = new Uint32Array(bytes.buffer);
    for (let i = 0; i < v.length; i++) v[i] = (v[i] & 0x807fffff) | 0x3f000000;
  } else if (e.kind === "f16") {
    u16(0, l.byteLength, 0x83ff, 0x3800);
  } else if (e.kind === "q8") {
    u16(l.scaleOffset, l.byteLength, ...SCALE);
  } else {
    for (let b = 0; b < l.byteLength; b += l.blockBytes) u16(b + l.indexBytes, b + l.blockBytes, ...SCALE);
  }
  return bytes;
}

/** Streaming-read bandwidth at each thread count: median of full passes over one buffer. */
export function measureBandwidth(k: Kernels, pool: Pool, options: KernelBenchOptions): BandwidthRow[] {
  const bytes = options.bandwidthBytes;
  const mark = k.arena.mark();
  try {
    const ptr = k.arena.alloc(bytes, 64);
    // Touch every page: fresh WASM pages may map to one shared zero page and read unrealistically fast.
    fillRandom(new Uint8Array(k.memory.buffer, ptr, bytes), options.seed + 99);
    return options.threads.map((threads) => {
      // With every pool thread reading, chunks taken from the pool's queue keep both cores busy
      // even when one thread wakes late; with fewer, one chunk per thread caps the parallelism.
      const parts = threads === pool.threads ? threads * 8 : threads;
      const tasks = streamShards(k, ptr, bytes, parts).map((args) => ({ exportName: "stream_sum_u32", args }));
      const { ms } = timeMedian(() => pool.runTasks(tasks), options.minTimeMs, 2);
      const gbs = bytes / ms / 1e6;
      options.log(`bandwidth: ${threads} thread(s) ${gbs.toFixed(1)} GB/s (${(bytes / 2 ** 20).toFixed(0)} MiB in ${ms.toFixed(1)} ms)`);
      return { threads, gbs, ms, bytes };
    });
  } finally {
    k.arena.release(mark);
  }
}

/** The prepared input and the decode-step preparation of matrix `a` from the activations at xPtr. */
function prepareFor(k: Kernels, a: PackedMatrix, xPtr: number): { input: number | PreparedInput; prepare: () => void } {
  const e = a.encoding;
  if (e.kind === "bitplane" || e.kind === "ternary") {
    const lut = createLut(k, a.cols, e.group, 1);
    const prepare = () => buildLut(k, lut, xPtr, 1);
    prepare();
    return { input: lut, prepare };
  }
  if (e.kind === "q8") {
    const q = createQ8Input(k, a.cols, e.group, 1);
    const prepare = () => quantizeQ8Input(k, q, xPtr, 1);
    prepare();
    return { input: q, prepare };
  }
  return { input: xPtr, prepare: () => {} };
}

function maxRelDiff(got: Float32Array, want: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

/** Every thread count of one (encoding, shape): kernel, kernel-only and baseline timings (ms, unrounded). */
export function measureMatrix(
  k: Kernels,
  pool: Pool,
  name: KernelEncodingName,
  rows: number,
  cols: number,
  bandwidth: ReadonlyMap<number, number>,
  options: KernelBenchOptions,
): MatrixTiming[] {
  const e = fitGroup(KERNEL_ENCODING[name], cols);
  const mark = k.arena.mark();
  try {
    const bytes = randomPackedMatrix(e, rows, cols, options.seed + rows * 7 + cols);
    const copies = Math.max(1, Math.ceil(options.workingSetBytes / bytes.byteLength));
    const mats = Array.from({ length: copies }, () => createPackedMatrix(k, e, rows, cols, bytes));
    const x = new Float32Array(cols).map((_, i) => Math.sin(i * 0.37 + options.seed) * 2);
    const xPtr = k.arena.alloc(4 * cols, 64);
    new Float32Array(k.memory.buffer, xPtr, cols).set(x);
    const out = k.arena.alloc(4 * rows, 64);
    const { input, prepare } = prepareFor(k, mats[0], xPtr);
    const maxThreads = Math.max(...options.threads);
    const scratch = createDequantScratch(k, mats[0], maxThreads);
    // Validated once through the public wrappers; the timed loops call the raw exports.
    const want = gemv(k, mats[0], x) as Float32Array;
    const base = mats.map((a) => gemvDequantCall(k, a, xPtr, out, scratch));
    return options.threads.map((threads) => {
      const calls = mats.map((a) => gemmShardCall(a, input, 1, out, rows));
      const exportName = calls[0].exportName;
      const shards = calls.map((c) => splitRows(rows, threads, c.align).map(([b, en]) => c.argsFor(b, en)));
      const baseShards = base.map((c) => dequantShards(c, rows, threads));
      const check = (run: () => void) => {
        new Float32Array(k.memory.buffer, out, rows).fill(NaN);
        run();
        return new Float32Array(k.memory.buffer, out, rows).slice();
      };
      const got = check(() => pool.run(exportName, shards[0]));
      const baseline = check(() => pool.run(base[0].exportName, baseShards[0]));
      const maxRel = maxRelDiff(got, baseline);
      if (!(maxRelDiff(got, want) === 0 && maxRel < 0.25)) {
        throw new KernelError(
          `${name} ${rows}x${cols} at ${threads} threads: pool result differs from gemv or from the baseline (max rel diff ${maxRel}); this is a kernel bug`,
        );
      }
      const warmup = Math.min(copies, 50);
      const step = timeMedian((i) => {
        prepare();
        pool.run(exportName, shards[i % copies]);
      }, options.minTimeMs, warmup);
      const kernel = e.kind === "f32" || e.kind === "f16"
        ? step
        : timeMedian((i) => pool.run(exportName, shards[i % copies]), options.minTimeMs, warmup);
      const hot = timeMedian(() => pool.run(exportName, shards[0]), options.minTimeMs, 5);
      const dq = timeMedian((i) => pool.run(base[0].exportName, baseShards[i % copies]), options.minTimeMs, 1);
      const timing: MatrixTiming = {
        encoding: name,
        rows,
        cols,
        threads,
        packing: encodingName(e),
        weight_bytes: bytes.byteLength,
        gemv_ms: step.ms,
        kernel_ms: kernel.ms,
        hot_kernel_ms: hot.ms,
        dequant_ms: dq.ms,
        max_rel_diff: maxRel,
        copies,
        reps: step.reps,
      };
      const row = kernelRow(timing, bandwidth.get(threads) ?? NaN);
      options.log(
        `${name.padEnd(7)} ${rows}x${cols} t${threads}: ${row.gemv_ms.toFixed(3)} ms ${row.gbs.toFixed(1)} GB/s ` +
          `(${row.pct_of_bandwidth}% of bw), dequant ${row.dequant_ms.toFixed(2)} ms, ${row.speedup_vs_dequant}x`,
      );
      return timing;
    });
  } finally {
    k.arena.release(mark);
  }
}
