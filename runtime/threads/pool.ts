/**
 * Worker pool that runs kernel calls across N threads over the single shared
 * WebAssembly.Memory (weights held once). Each worker instantiates the same compiled module
 * over that memory with its own stack carved from the arena (../kernels/wasm.ts). Work is a
 * batch of calls (typically row ranges of one or several matmuls) that the calling thread and
 * the workers claim dynamically from a task queue in the shared memory (./task-queue.ts), so a
 * late or descheduled thread does not hold the others back. A batch can hold several phases
 * with a barrier between them (`enqueue` ... `flush`): the ops queue a whole decoder layer or
 * forward pass that way and wake the workers once for it (`dispatches` counts the wakes).
 *
 * No messages after start-up: waiting threads spin, then sleep in Atomics.wait, and are
 * notified only when they sleep. The default spin (DEFAULT_SPIN_MICROS) outlasts most gaps
 * between two batches of a decode step (median ~40 µs for a 1.1B model), so during generation
 * the workers rarely sleep, yet a spinning worker does not hold a core for long when other
 * processes need it; a thread that finds itself descheduled while spinning spins even less for
 * a while (./spin-policy.ts).
 *
 * The per-worker slot layout below (SLOT, waitFor, nextRequest) is the protocol of the
 * row-shard pool (./shard-pool.ts), which keeps one slot per worker.
 */
import { availableParallelism } from "node:os";
import { KernelError } from "../errors.ts";
import {
  callExact,
  drain,
  joinedWord,
  MAX_TASK_ARGS,
  MAX_TASKS,
  mainWait,
  Q,
  queueBytes,
  queueViews,
  runTask,
  sleepingWord,
  tableOffset,
  TASK_BYTES,
  writeTask,
} from "./task-queue.ts";
import { SpinPolicy } from "./spin-policy.ts";
import { spawnWorker } from "./spawn-worker.ts";
import { type Kernels, loadKernels, STACK_BYTES } from "../kernels/wasm.ts";

/** Control slot per worker: int32 words, then f64 arguments from byte ARGS_OFFSET. */
export const SLOT_BYTES = 256;
export const SLOT = { request: 0, done: 1, exportIndex: 2, argCount: 3, status: 4 } as const;
export const ARGS_OFFSET = 32;
export const MAX_ARGS = (SLOT_BYTES - ARGS_OFFSET) / 8;
/** exportIndex value that tells a worker to leave its loop. */
export const QUIT = -1;
/**
 * How long an idle thread spins before sleeping (µs): covers most of the glue between two
 * batches of a decode step. Longer spins lost on a loaded machine (2-thread 1.1B decode next to
 * a 1-core job: 20 µs 15.1 tok/s, 100 µs 14.9, 500 µs 11.0, 2 ms 9.4); ./spin-policy.ts
 * shortens it further while this thread is being descheduled.
 */
export const DEFAULT_SPIN_MICROS = 100;
/** Row-parallel calls are split in this many ranges per thread, so the queue can rebalance. */
export const CHUNKS_PER_THREAD = 4;

/** What the pool's workers are started with (pool-worker.ts). */
export interface QueueStart {
  readonly module: WebAssembly.Module;
  readonly memory: WebAssembly.Memory;
  readonly stackTop: number;
  /** Byte offset of the task queue in the shared memory. */
  readonly queue: number;
  /** This worker's index (0-based) and the number of workers. */
  readonly worker: number;
  readonly workers: number;
  readonly spinMicros: number;
}

/** How an enqueued call relates to the calls before it (see `Pool.enqueue`). */
export type TaskLink = "join" | "barrier" | "chain";

/** One kernel call of a batch. */
export interface PoolTask {
  readonly exportName: string;
  readonly args: readonly number[];
}

export interface PoolOptions {
  /** Threads including the calling one; default: all cores. */
  threads?: number;
  /** Kernel instance and arena to share; default: the process-wide `loadKernels()`. */
  kernels?: Kernels;
  /** How long a waiting thread spins before sleeping in Atomics.wait (µs); default DEFAULT_SPIN_MICROS. */
  spinMicros?: number;
  /** A worker that has not answered a call within this time is reported as hung; default 60000. */
  timeoutMs?: number;
}

export interface Pool {
  readonly threads: number;
  readonly kernels: Kernels;
  /**
   * Runs `exportName` once per argument list across the threads (the caller takes part) and
   * returns when all are done. Shards must write disjoint memory. At most `threads` shards.
   */
  run(exportName: string, argsPerShard: readonly (readonly number[])[]): void;
  /**
   * Runs every task, claimed dynamically by the caller and the workers, and returns when all
   * are done. Tasks must write disjoint memory; any number of them, of any exports.
   */
  runTasks(tasks: readonly PoolTask[]): void;
  /**
   * Splits rows [0, rows) into up to CHUNKS_PER_THREAD × `threads` ranges (multiples of `align`
   * rows, except the last) and runs `exportName` with `argsFor(begin, end)` for each range.
   */
  runRows(exportName: string, rows: number, argsFor: (begin: number, end: number) => number[], align?: number): void;
  /** The index `enqueue` takes for an export; throws KernelError for an unknown name. */
  exportIndex(exportName: string): number;
  /**
   * Appends one call to the pending batch (a pool of one thread runs it at once). `link`:
   * "join" adds it to the current phase (calls of one phase must write disjoint memory);
   * "barrier" starts a new phase (it and every later call wait until every earlier pending call
   * has finished); "chain" runs it right after the call before it, on the same thread (for a
   * one-call step that depends on a one-call phase). `args` is copied.
   */
  enqueue(fn: number, args: ArrayLike<number>, link: TaskLink): void;
  /**
   * Runs the pending calls as one dispatch (a single call runs on this thread without waking
   * the workers) and returns when all are done. `runTasks` flushes first, so calls keep their order.
   */
  flush(): void;
  /** Calls pending since the last flush. */
  readonly pending: number;
  /** Batches so far that woke the workers (the pool's wake count). */
  readonly dispatches: number;
}

interface Worker0 {
  postMessage(message: unknown): void;
  terminate(): void;
  addEventListener(type: string, listener: (event: { data?: unknown; message?: string }) => void): void;
  unref?(): void;
}

interface PoolState extends Pool {
  dispatches: number;
  workers: Worker0[];
  disposed: boolean;
  /** Tells every worker to leave its loop. */
  quit(): void;
}

let workerUrlOverride: URL | undefined;

/** Single-file executables bundle the worker at another path; their entry point sets it here. */
export function usePoolWorkerUrl(url: URL): void {
  workerUrlOverride = url;
}

/** Where pool workers start (./pool-worker.ts, or what a single-file executable set). */
export function poolWorkerUrl(): URL {
  return workerUrlOverride ?? new URL("./pool-worker.ts", import.meta.url);
}

/** Threads available to this process: navigator.hardwareConcurrency, else os.availableParallelism(). */
export function defaultThreads(): number {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  const n = nav?.hardwareConcurrency ?? availableParallelism();
  return Math.max(1, Math.floor(n));
}

/** Splits [0, rows) into at most `parts` contiguous ranges whose sizes are multiples of `align`. */
export function splitRows(rows: number, parts: number, align = 1): Array<[number, number]> {
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(parts) || parts < 1 || !Number.isInteger(align) || align < 1) {
    throw new KernelError(`splitRows(${rows}, ${parts}, ${align}): rows ≥ 0, parts ≥ 1 and align ≥ 1 must be integers`);
  }
  const blocks = Math.ceil(rows / align);
  const n = Math.min(parts, blocks);
  const ranges: Array<[number, number]> = [];
  for (let i = 0; i < n; i++) {
    const begin = Math.floor((blocks * i) / n) * align;
    const end = Math.min(rows, Math.floor((blocks * (i + 1)) / n) * align);
    ranges.push([begin, end]);
  }
  return ranges;
}

/** Starts `threads − 1` workers over the kernels' shared memory and resolves when all are ready. */
export async function createPool(options: PoolOptions = {}): Promise<Pool> {
  const threads = options.threads ?? defaultThreads();
  if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
    throw new KernelError(`pool threads must be an integer in 1..256, got ${threads}`);
  }
  const kernels = options.kernels ?? loadKernels();
  const spinMicros = options.spinMicros ?? DEFAULT_SPIN_MICROS;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const { memory, arena } = kernels;
  if (!(memory.buffer instanceof SharedArrayBuffer)) {
    throw new KernelError("the worker pool needs kernels over a shared WebAssembly.Memory; for private memories use the row-shard pool (./shard-pool.ts) or threads: 1");
  }
  const module = kernels.module;
  const names = functionExports(module);
  const index = new Map(names.map((name, i) => [name, i]));
  const nWorkers = threads - 1;
  const base = nWorkers > 0 ? arena.alloc(queueBytes(nWorkers), 64) : 0;
  const stacks = nWorkers > 0 ? arena.alloc(nWorkers * STACK_BYTES, 16) : 0;
  if (nWorkers > 0) new Uint8Array(memory.buffer, base, tableOffset(nWorkers)).fill(0);
  const q = queueViews(memory.buffer, base, nWorkers);
  const workerUrl = poolWorkerUrl();
  const workers: Worker0[] = [];
  const ready: Promise<void>[] = [];
  for (let w = 0; w < nWorkers; w++) {
    const worker: Worker0 = spawnWorker(workerUrl);
    workers.push(worker);
    ready.push(
      new Promise((resolve, reject) => {
        worker.addEventListener("message", (event) => {
          const data = event.data as { ready?: boolean; error?: string };
          if (data.ready) resolve();
          else reject(new KernelError(`pool worker ${w + 1} failed to start: ${data.error}`));
        });
        worker.addEventListener("error", (event) => {
          reject(new KernelError(`pool worker ${w + 1} failed to start: ${event.message ?? String(event)}`));
        });
      }),
    );
    const start: QueueStart = { module, memory, stackTop: stacks + (w + 1) * STACK_BYTES, queue: base, worker: w, workers: nWorkers, spinMicros };
    worker.postMessage(start);
  }
  try {
    await Promise.all(ready);
  } catch (error) {
    for (const worker of workers) worker.terminate();
    throw error;
  }
  for (const worker of workers) worker.unref?.();

  const { words, at } = q;
  const spin = new SpinPolicy(spinMicros);
  let seq = 0;
  const exportsByIndex = names.map((name) => kernels.exports[name] as (...args: number[]) => unknown);
  const fnIndex = (exportName: string, op: string) => {
    const fn = index.get(exportName);
    if (fn === undefined) throw new KernelError(`${op}: no kernel export named '${exportName}'`);
    return fn;
  };
  // The batch being run, read by the callbacks below, which are made once: a batch then
  // allocates nothing (a decode step runs hundreds of calls, and per-batch closures showed up
  // in the peak RSS of long-context runs).
  const batch = { count: 0, joined: 0, failure: undefined as unknown };
  const runOwn = (i: number) => {
    try {
      runTask(q, i, exportsByIndex);
      return true;
    } catch (cause) {
      batch.failure ??= cause;
      return false;
    }
  };
  const allFinished = () => Atomics.load(words, at + Q.finished) >= batch.count;
  const workerLeft = () => Atomics.load(words, batch.joined) !== seq;
  const taskName = (i: number) => names[words[(q.table + i * TASK_BYTES) / 4]];
  const hung = () => {
    state.disposed = true;
    return new KernelError(`a pool worker did not finish ${taskName(0)} within ${timeoutMs} ms; the pool is unusable, dispose it`);
  };
  /** Runs an export on this thread with the arguments `args`. */
  const runHere = (fn: number, a: ArrayLike<number>) => {
    try {
      callExact(exportsByIndex[fn], a, 0, a.length);
    } catch (cause) {
      throw new KernelError(`kernel ${names[fn]} trapped (${String(cause)}); this is a crumb bug`, { cause });
    }
  };

  /** Publishes the `count` calls written in the table as one batch, drains it with the workers, closes it. */
  const runBatch = (count: number) => {
    words[at + Q.count] = count;
    Atomics.store(words, at + Q.next, 0);
    Atomics.store(words, at + Q.finished, 0);
    Atomics.store(words, at + Q.status, 0);
    seq = seq >= 0x3fff_ffff ? 1 : seq + 1;
    Atomics.store(words, at + Q.open, seq);
    Atomics.store(words, at + Q.seq, seq);
    for (let w = 0; w < nWorkers; w++) {
      if (Atomics.load(words, at + sleepingWord(w)) !== 0) {
        Atomics.notify(words, at + Q.seq);
        break;
      }
    }
    state.dispatches++;
    batch.count = count;
    batch.failure = undefined;
    drain(q, count, spin, runOwn);
    mainWait(q, at + Q.finished, allFinished, spin, timeoutMs, hung);
    Atomics.store(words, at + Q.open, 0);
    for (let w = 0; w < nWorkers; w++) {
      batch.joined = at + joinedWord(w);
      if (Atomics.load(words, batch.joined) === seq) mainWait(q, batch.joined, workerLeft, spin, timeoutMs, hung);
    }
    const failure = batch.failure;
    if (failure !== undefined || Atomics.load(words, at + Q.status) !== 0) {
      throw new KernelError(`a kernel (${taskName(0)}, ...) trapped in the worker pool (${String(failure ?? "trap in a worker")}); this is a crumb bug`, { cause: failure });
    }
  };

  let pending = 0;
  let phaseStart = 0;
  const checkUsable = () => {
    if (state.disposed) throw new KernelError("this worker pool was disposed; create a new one with createPool()");
  };
  const flush = () => {
    const count = pending;
    pending = 0;
    phaseStart = 0;
    if (count === 0) return;
    if (words[(q.table) / 4 + 3] === count) {
      // One call, or one chain: this thread alone, without waking the workers.
      for (let i = 0; i < count; i++) {
        try {
          runTask(q, i, exportsByIndex);
        } catch (cause) {
          throw new KernelError(`kernel ${taskName(i)} trapped (${String(cause)}); this is a crumb bug`, { cause });
        }
      }
      return;
    }
    runBatch(count);
  };

  const state: PoolState = {
    threads,
    kernels,
    workers,
    disposed: false,
    dispatches: 0,
    get pending() {
      return pending;
    },
    exportIndex: (exportName) => fnIndex(exportName, "pool"),
    enqueue(fn, args, link) {
      checkUsable();
      if (nWorkers === 0) {
        runHere(fn, args);
        return;
      }
      if (args.length > MAX_TASK_ARGS) throw new KernelError(`pool task ${names[fn]}: ${args.length} arguments, at most ${MAX_TASK_ARGS}`);
      if (pending === MAX_TASKS) flush(); // the rest starts a new batch, after everything before
      if (link === "barrier") phaseStart = pending;
      writeTask(q, pending, fn, args, phaseStart, link === "chain" && pending > 0);
      pending++;
    },
    flush() {
      checkUsable();
      flush();
    },
    runTasks(tasks) {
      checkUsable();
      flush();
      const fns = fnScratch;
      fns.length = tasks.length;
      for (let i = 0; i < tasks.length; i++) {
        const t = tasks[i];
        if (t.args.length > MAX_TASK_ARGS) throw new KernelError(`pool task ${t.exportName}: ${t.args.length} arguments, at most ${MAX_TASK_ARGS}`);
        fns[i] = fnIndex(t.exportName, "pool.runTasks");
      }
      if (nWorkers === 0 || tasks.length === 1) {
        for (let i = 0; i < tasks.length; i++) runHere(fns[i], tasks[i].args);
        return;
      }
      for (let from = 0; from < tasks.length; from += MAX_TASKS) {
        const count = Math.min(MAX_TASKS, tasks.length - from);
        for (let i = 0; i < count; i++) writeTask(q, i, fns[from + i], tasks[from + i].args);
        runBatch(count);
      }
    },
    run(exportName, argsPerShard) {
      checkUsable();
      fnIndex(exportName, "pool.run");
      if (argsPerShard.length > threads) {
        throw new KernelError(`pool.run(${exportName}): ${argsPerShard.length} shards for ${threads} threads; split into at most ${threads}`);
      }
      state.runTasks(argsPerShard.map((args) => ({ exportName, args })));
    },
    quit() {
      Atomics.store(words, at + Q.quit, 1);
      seq = seq >= 0x3fff_ffff ? 1 : seq + 1;
      Atomics.store(words, at + Q.seq, seq);
      Atomics.notify(words, at + Q.seq);
    },
    runRows(exportName, rows, argsFor, align = 1) {
      state.runTasks(rowTasks(exportName, rows, argsFor, align, threads * CHUNKS_PER_THREAD));
    },
  };
  const fnScratch: number[] = [];
  return state;
}

/**
 * Calls computing rows [0, rows) in up to `parts` aligned ranges: the tasks of one matmul (or
 * any row-parallel kernel) for `Pool.runTasks`, which may batch several matmuls together.
 */
export function rowTasks(exportName: string, rows: number, argsFor: (begin: number, end: number) => number[], align: number, parts: number): PoolTask[] {
  return splitRows(rows, parts, align).map(([begin, end]) => ({ exportName, args: argsFor(begin, end) }));
}

/** Stops the workers (each leaves its wait loop, then is terminated). Their stacks stay in the arena. */
export async function disposePool(pool: Pool): Promise<void> {
  const state = pool as PoolState;
  state.disposed = true;
  state.quit();
  for (const worker of state.workers) worker.terminate();
  state.workers.length = 0;
}

/** Waits until words[i] === value: spins for spinMicros, then sleeps in Atomics.wait. */
export function waitFor(words: Int32Array, i: number, value: number, spinMicros: number, timeoutMs: number, onTimeout: () => Error): void {
  let current = Atomics.load(words, i);
  if (current === value) return;
  const start = performance.now();
  const spinEnd = start + spinMicros / 1000;
  while (performance.now() < spinEnd) {
    current = Atomics.load(words, i);
    if (current === value) return;
  }
  const deadline = start + timeoutMs;
  for (;;) {
    current = Atomics.load(words, i);
    if (current === value) return;
    const left = deadline - performance.now();
    if (left <= 0) throw onTimeout();
    Atomics.wait(words, i, current, Math.min(left, 1000));
  }
}

/** Waits for the request word of a control slot to move past `last` (spin, then Atomics.wait) and returns it. */
export function nextRequest(words: Int32Array, last: number, spinMicros: number): number {
  for (;;) {
    let request = Atomics.load(words, SLOT.request);
    if (request !== last) return request;
    const spinEnd = performance.now() + spinMicros / 1000;
    while (request === last && performance.now() < spinEnd) request = Atomics.load(words, SLOT.request);
    if (request !== last) return request;
    Atomics.wait(words, SLOT.request, last);
  }
}

/** Names of the module's function exports, in module order (workers index the same list). */
export function functionExports(module: WebAssembly.Module): string[] {
  return WebAssembly.Module.exports(module).filter((e) => e.kind === "function").map((e) => e.name);
}

