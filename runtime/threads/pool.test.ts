/**
 * Worker pool: row/head sharding over the shared memory gives results identical to one thread,
 * batches of mixed calls (longer than one queue table) all run exactly once, workers have
 * their own stacks, a phased batch keeps its barriers and counts one dispatch, failures
 * surface as KernelError, the spin policy backs off after a
 * preemption, and the same pool runs under Deno (pool-smoke.ts, spawned here so the check is
 * part of `bun test`).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { fileURLToPath } from "node:url";
import { KernelError } from "../errors.ts";
import { attentionCallArgs } from "../kernels/elementwise.ts";
import { createPool, defaultThreads, disposePool, type Pool, type PoolTask, rowTasks, splitRows } from "./pool.ts";
import { BACKOFF_MS, CONTENDED_SPIN_MICROS, SpinPolicy } from "./spin-policy.ts";
import { MAX_TASKS } from "./task-queue.ts";
import { alloc, getF32, put, QUICK, randomF32 } from "../../test/fixtures/kernel-data.ts";
import { loadKernels } from "../kernels/wasm.ts";

const kern = loadKernels();
const THREADS = QUICK ? [2] : [2, 3, 4];
const pools = new Map<number, Pool>();

beforeAll(async () => {
  // Created before any test allocates, so the pools' stacks sit below every test's arena mark.
  for (const threads of [1, ...THREADS]) pools.set(threads, await createPool({ threads }));
});

afterAll(async () => {
  for (const pool of pools.values()) await disposePool(pool);
});

describe("splitRows", () => {
  test("covers every row once, in aligned contiguous ranges", () => {
    for (const [rows, parts, align] of [[100, 3, 1], [5632, 4, 16], [17, 8, 16], [3, 8, 1], [64, 2, 64], [0, 2, 1]]) {
      const ranges = splitRows(rows, parts, align);
      expect(ranges.length).toBeLessThanOrEqual(parts);
      let next = 0;
      for (const [begin, end] of ranges) {
        expect(begin).toBe(next);
        expect(end).toBeGreaterThan(begin);
        expect(begin % align).toBe(0);
        next = end;
      }
      expect(next).toBe(rows);
    }
    expect(() => splitRows(10, 0)).toThrow(KernelError);
  });

  test("default thread count is a positive integer", () => {
    expect(Number.isInteger(defaultThreads()) && defaultThreads() >= 1).toBe(true);
  });
});

describe("sharded kernels equal one thread", () => {
  test.each(THREADS)("rmsnorm_f32 split by rows, %d threads, repeated calls", (threads) => {
    const mark = kern.arena.mark();
    const [rows, n] = [53, 771]; // odd n: every row uses the stack-allocated tail buffers
    const x = put(kern, randomF32(7, rows * n, 2));
    const w = put(kern, randomF32(8, n));
    const outs = [alloc(kern, rows * n), alloc(kern, rows * n)];
    const argsFor = (out: number) => (begin: number, end: number) => [x + begin * n * 4, w, out + begin * n * 4, end - begin, n, 1e-5];
    pools.get(1)!.runRows("rmsnorm_f32", rows, argsFor(outs[0]));
    const want = getF32(kern, outs[0], rows * n);
    for (let rep = 0; rep < (QUICK ? 5 : 50); rep++) {
      new Float32Array(kern.memory.buffer, outs[1], rows * n).fill(0);
      pools.get(threads)!.runRows("rmsnorm_f32", rows, argsFor(outs[1]), 4);
      expect(getF32(kern, outs[1], rows * n)).toEqual(want);
    }
    kern.arena.release(mark);
  });

  test.each(THREADS)("attention_f32 split by heads (inside GQA groups), %d threads", (threads) => {
    const mark = kern.arena.mark();
    const [nHeads, nKvHeads, headDim, kvLen] = [12, 3, 80, 71];
    const q = put(kern, randomF32(1, nHeads * headDim));
    const kCache = put(kern, randomF32(2, kvLen * nKvHeads * headDim));
    const vCache = put(kern, randomF32(3, kvLen * nKvHeads * headDim));
    const outs = [alloc(kern, nHeads * headDim), alloc(kern, nHeads * headDim)];
    const scratch = Array.from({ length: threads }, () => alloc(kern, nHeads * kvLen));
    const att = { q, kCache, vCache, nHeads, nKvHeads, headDim, kvLen };
    pools.get(1)!.run("attention_f32", [attentionCallArgs(kern, "f32", { ...att, out: outs[0], scratch: scratch[0] })]);
    const shards = splitRows(nHeads, threads).map(([headBegin, headEnd], s) =>
      attentionCallArgs(kern, "f32", { ...att, out: outs[1], scratch: scratch[s], headBegin, headEnd })
    );
    pools.get(threads)!.run("attention_f32", shards);
    expect(getF32(kern, outs[1], nHeads * headDim)).toEqual(getF32(kern, outs[0], nHeads * headDim));
    kern.arena.release(mark);
  });
});

describe("task batches", () => {
  test.each(THREADS)("%d threads: a batch of mixed calls longer than the queue table runs each call once", (threads) => {
    const mark = kern.arena.mark();
    const n = 40;
    const count = MAX_TASKS + 38;
    const x = put(kern, randomF32(9, count * n, 2));
    const w = put(kern, randomF32(10, n));
    const out = alloc(kern, count * n);
    const acc = alloc(kern, count);
    new Float32Array(kern.memory.buffer, acc, count).fill(1);
    // Even calls normalise a row, odd calls double a running value: a call run twice shows.
    const tasks: PoolTask[] = Array.from({ length: count }, (_, i) =>
      i % 2 === 0
        ? { exportName: "rmsnorm_f32", args: [x + i * n * 4, w, out + i * n * 4, 1, n, 1e-5] }
        : { exportName: "scale_f32", args: [acc + i * 4, 2, acc + i * 4, 1] }
    );
    pools.get(threads)!.runTasks(tasks);
    const ref = alloc(kern, count * n);
    for (let i = 0; i < count; i += 2) kern.exports.rmsnorm_f32(x + i * n * 4, w, ref + i * n * 4, 1, n, 1e-5);
    const rows = (at: number) => Array.from({ length: count / 2 }, (_, j) => getF32(kern, at + 2 * j * n * 4, n));
    expect(rows(out)).toEqual(rows(ref));
    const doubled = getF32(kern, acc, count);
    expect(Array.from({ length: count / 2 }, (_, j) => doubled[2 * j + 1])).toEqual(new Array(count / 2).fill(2));
    kern.arena.release(mark);
  });

  test("rowTasks splits rows into aligned ranges covering every row once", () => {
    const tasks = rowTasks("gemm_lut", 100, (begin, end) => [begin, end], 16, 4);
    expect(tasks.map((t) => t.args)).toEqual([[0, 16], [16, 48], [48, 80], [80, 100]]);
  });
});

describe("phased batches (enqueue ... flush)", () => {
  test.each(THREADS)("%d threads: calls after a barrier see every earlier call's writes; one dispatch per flush", (threads) => {
    const pool = pools.get(threads)!;
    const mark = kern.arena.mark();
    // 60 phases of 8 calls over two ping-pong buffers of 8 shards: call j of phase k writes
    // shard j of one buffer from shards j and j+1 of the other, which two different calls of
    // phase k-1 wrote. A call started before its barrier reads a stale shard and changes the sum.
    const [shards, len, phases] = [8, 16384, 60];
    const bufs = [put(kern, randomF32(11, shards * len)), alloc(kern, shards * len)];
    const initial = getF32(kern, bufs[0], shards * len);
    const add = pool.exportIndex("add_f32");
    const before = pool.dispatches;
    for (let k = 0; k < phases; k++) {
      const [from, to] = [bufs[k % 2], bufs[(k + 1) % 2]];
      for (let j = 0; j < shards; j++) {
        pool.enqueue(add, [from + j * len * 4, from + ((j + 1) % shards) * len * 4, to + j * len * 4, len], j === 0 ? "barrier" : "join");
      }
    }
    expect(pool.pending).toBe(phases * shards);
    pool.flush();
    expect(pool.pending).toBe(0);
    expect(pool.dispatches).toBe(before + 1);
    let want = initial;
    for (let k = 0; k < phases; k++) {
      const next = new Float32Array(shards * len);
      for (let j = 0; j < shards; j++) {
        for (let i = 0; i < len; i++) next[j * len + i] = want[j * len + i] + want[((j + 1) % shards) * len + i];
      }
      want = next;
    }
    expect(getF32(kern, bufs[phases % 2], shards * len)).toEqual(want);
    // One pending call runs on this thread without a dispatch; an empty flush does nothing.
    pool.enqueue(add, [bufs[0], bufs[0], bufs[1], len], "barrier");
    pool.flush();
    pool.flush();
    expect(pool.dispatches).toBe(before + 1);
    kern.arena.release(mark);
  });

  test.each(THREADS)("%d threads: a chain runs in order on one thread, between barriers, without a dispatch of its own", (threads) => {
    const pool = pools.get(threads)!;
    const mark = kern.arena.mark();
    const rows = 16;
    const v = put(kern, Float32Array.from({ length: rows }, (_, i) => i));
    const other = alloc(kern, 4096);
    const scale = pool.exportIndex("scale_f32");
    const add = pool.exportIndex("add_f32");
    const one = put(kern, new Float32Array(rows).fill(1));
    // 30 rounds of a parallel phase, then a chain ((v·2)+1)·2, whose order the result shows.
    for (let r = 0; r < 30; r++) {
      for (let j = 0; j < 8; j++) pool.enqueue(scale, [other + j * 512 * 4, 1, other + j * 512 * 4, 512], j === 0 ? "barrier" : "join");
      pool.enqueue(scale, [v, 2, v, rows], "barrier");
      pool.enqueue(add, [v, one, v, rows], "chain");
      pool.enqueue(scale, [v, 0.5, v, rows], "chain");
    }
    pool.flush();
    // Each round maps x to ((2x)+1)/2 = x + 0.5; any other order gives another value.
    expect(getF32(kern, v, rows)).toEqual(Float32Array.from({ length: rows }, (_, i) => i + 15));
    // A batch that is one chain runs on this thread: no dispatch.
    const before = pool.dispatches;
    pool.enqueue(scale, [v, 2, v, rows], "barrier");
    pool.enqueue(scale, [v, 0.5, v, rows], "chain");
    pool.flush();
    expect(pool.dispatches).toBe(before);
    kern.arena.release(mark);
  });

  test("a one-thread pool runs each call at once; runTasks flushes pending calls first", () => {
    const one = pools.get(1)!;
    const mark = kern.arena.mark();
    const p = put(kern, Float32Array.of(3));
    one.enqueue(one.exportIndex("scale_f32"), [p, 2, p, 1], "barrier");
    expect(getF32(kern, p, 1)[0]).toBe(6);
    expect(one.pending).toBe(0);
    const pool = pools.get(THREADS[0])!;
    pool.enqueue(pool.exportIndex("scale_f32"), [p, 2, p, 1], "barrier");
    pool.enqueue(pool.exportIndex("scale_f32"), [p, 2, p, 1], "barrier");
    pool.runTasks([{ exportName: "scale_f32", args: [p, 0.5, p, 1] }]);
    expect(getF32(kern, p, 1)[0]).toBe(12);
    kern.arena.release(mark);
  });
});

describe("spin policy", () => {
  test("spins the configured time until a preemption, then briefly for BACKOFF_MS", () => {
    const policy = new SpinPolicy(2000);
    expect(policy.budget(10)).toBe(2000);
    policy.observe(0.01, 10);
    expect(policy.budget(11)).toBe(2000);
    policy.observe(5, 20);
    expect(policy.budget(21)).toBe(CONTENDED_SPIN_MICROS);
    expect(policy.budget(20 + BACKOFF_MS + 1)).toBe(2000);
    expect(new SpinPolicy(0).spin(() => false)).toBe(false);
    expect(new SpinPolicy(50).spin(() => true)).toBe(true);
  });
});

describe("failures", () => {
  test("unknown exports, too many shards and traps throw KernelError; the pool survives a trap", () => {
    const pool = pools.get(THREADS[0])!;
    expect(() => pool.run("no_such_kernel", [[]])).toThrow(/no kernel export named 'no_such_kernel'/);
    const tooMany = Array.from({ length: pool.threads + 1 }, () => [0, 0, 0]);
    expect(() => pool.run("softmax_f32", tooMany)).toThrow(KernelError);
    const p = alloc(kern, 4);
    // A pointer past the end of memory traps inside the worker (shard 1).
    expect(() => pool.run("scale_f32", [[p, 1, p, 1], [0xffff_fff0, 1, p, 4]])).toThrow(/trapped in the worker pool/);
    pool.run("scale_f32", [[p, 1, p, 1], [p, 1, p, 1]]);
  });

  test("a disposed pool refuses calls", async () => {
    const pool = await createPool({ threads: 2 });
    await disposePool(pool);
    expect(() => pool.run("softmax_f32", [])).toThrow(/disposed/);
    expect(createPool({ threads: 0 })).rejects.toThrow(KernelError);
  });
});

test("the pool works under Deno", async () => {
  const script = fileURLToPath(new URL("../../test/fixtures/pool-smoke.ts", import.meta.url));
  const proc = Bun.spawn(["npx", "--no-install", "deno", "run", "-A", "--quiet", script], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  expect({ code, stdout: stdout.trim(), stderr: code === 0 ? "" : stderr }).toEqual({
    code: 0,
    stdout: `pool smoke ok: 2 threads equal 1 thread (${process.env.CRUMB_KERNELS === "simd128" ? "simd128" : "relaxed-simd"})`,
    stderr: "",
  });
}, 60_000);
