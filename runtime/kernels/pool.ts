/**
 * Worker pool that runs one kernel call across N threads over the single shared
 * WebAssembly.Memory (weights held once). Each worker instantiates the same compiled module
 * over that memory with its own stack carved from the arena (./wasm.ts). A call is split into
 * shards (typically row ranges of a matmul); the main thread runs shard 0 itself.
 *
 * Dispatch uses no messages: every worker owns a 256-byte slot in the shared memory
 * (control-block layout below). The main thread writes the export index and arguments, bumps
 * `request` and notifies; the worker spins briefly, then sleeps in Atomics.wait on `request`,
 * runs the export, stores `done` and notifies. The main thread waits on `done` the same way.
 * postMessage is used only to start workers.
 */
import { availableParallelism } from "node:os";
import { KernelError } from "../errors.ts";
import { type Kernels, loadKernels, STACK_BYTES } from "./wasm.ts";

/** Control slot per worker: int32 words, then f64 arguments from byte ARGS_OFFSET. */
export const SLOT_BYTES = 256;
export const SLOT = { request: 0, done: 1, exportIndex: 2, argCount: 3, status: 4 } as const;
export const ARGS_OFFSET = 32;
export const MAX_ARGS = (SLOT_BYTES - ARGS_OFFSET) / 8;
/** exportIndex value that tells a worker to leave its loop. */
export const QUIT = -1;

export interface PoolOptions {
  /** Threads including the calling one; default: all cores. */
  threads?: number;
  /** Kernel instance and arena to share; default: the process-wide `loadKernels()`. */
  kernels?: Kernels;
  /** How long a waiting thread spins before sleeping in Atomics.wait (µs); default 100. */
  spinMicros?: number;
  /** A worker that has not answered a call within this time is reported as hung; default 60000. */
  timeoutMs?: number;
}

export interface Pool {
  readonly threads: number;
  readonly kernels: Kernels;
  /**
   * Runs `exportName` once per argument list, shard i on thread i (shard 0 on the caller), and
   * returns when all are done. Shards must write disjoint memory. At most `threads` shards.
   */
  run(exportName: string, argsPerShard: readonly (readonly number[])[]): void;
  /**
   * Splits rows [0, rows) into up to `threads` ranges (multiples of `align` rows, except the
   * last) and runs `exportName` with `argsFor(begin, end)` for each range.
   */
  runRows(exportName: string, rows: number, argsFor: (begin: number, end: number) => number[], align?: number): void;
}

interface Worker0 {
  postMessage(message: unknown): void;
  terminate(): void;
  addEventListener(type: string, listener: (event: { data?: unknown; message?: string }) => void): void;
  unref?(): void;
}

interface PoolState extends Pool {
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
  const spinMicros = options.spinMicros ?? 100;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const { memory, arena } = kernels;
  if (!(memory.buffer instanceof SharedArrayBuffer)) {
    throw new KernelError("the worker pool needs kernels over a shared WebAssembly.Memory; for private memories use the row-shard pool (./shard-pool.ts) or threads: 1");
  }
  const module = kernels.module;
  const names = functionExports(module);
  const index = new Map(names.map((name, i) => [name, i]));
  const nWorkers = threads - 1;
  const control = nWorkers > 0 ? arena.alloc(nWorkers * SLOT_BYTES, 64) : 0;
  const stacks = nWorkers > 0 ? arena.alloc(nWorkers * STACK_BYTES, 16) : 0;
  const words = new Int32Array(memory.buffer);
  const doubles = new Float64Array(memory.buffer);
  new Uint8Array(memory.buffer, control, nWorkers * SLOT_BYTES).fill(0);
  const workerUrl = poolWorkerUrl();
  const workers: Worker0[] = [];
  const ready: Promise<void>[] = [];
  for (let w = 0; w < nWorkers; w++) {
    const worker = new Worker(workerUrl.href, { type: "module" }) as unknown as Worker0;
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
    worker.postMessage({ module, memory, stackTop: stacks + (w + 1) * STACK_BYTES, slot: control + w * SLOT_BYTES, spinMicros });
  }
  try {
    await Promise.all(ready);
  } catch (error) {
    for (const worker of workers) worker.terminate();
    throw error;
  }
  for (const worker of workers) worker.unref?.();

  let seq = 0;
  const exportsByIndex = names.map((name) => kernels.exports[name] as (...args: number[]) => unknown);
  const word = (w: number, field: number) => (control + w * SLOT_BYTES) / 4 + field;

  const state: PoolState = {
    threads,
    kernels,
    workers,
    disposed: false,
    run(exportName, argsPerShard) {
      if (state.disposed) throw new KernelError("this worker pool was disposed; create a new one with createPool()");
      const fn = index.get(exportName);
      if (fn === undefined) throw new KernelError(`pool.run: no kernel export named '${exportName}'`);
      if (argsPerShard.length > threads) {
        throw new KernelError(`pool.run(${exportName}): ${argsPerShard.length} shards for ${threads} threads; split into at most ${threads}`);
      }
      seq = (seq + 1) | 0;
      for (let s = 1; s < argsPerShard.length; s++) {
        const args = argsPerShard[s];
        if (args.length > MAX_ARGS) throw new KernelError(`pool.run(${exportName}): ${args.length} arguments, at most ${MAX_ARGS}`);
        const w = s - 1;
        const base = (control + w * SLOT_BYTES + ARGS_OFFSET) / 8;
        for (let i = 0; i < args.length; i++) doubles[base + i] = args[i];
        words[word(w, SLOT.exportIndex)] = fn;
        words[word(w, SLOT.argCount)] = args.length;
        Atomics.store(words, word(w, SLOT.request), seq);
        Atomics.notify(words, word(w, SLOT.request), 1);
      }
      let failure: unknown;
      if (argsPerShard.length > 0) {
        try {
          exportsByIndex[fn](...argsPerShard[0]);
        } catch (cause) {
          failure = cause;
        }
      }
      for (let s = 1; s < argsPerShard.length; s++) {
        const w = s - 1;
        waitFor(words, word(w, SLOT.done), seq, spinMicros, timeoutMs, () => {
          state.disposed = true;
          return new KernelError(`pool worker ${w + 1} did not finish ${exportName} within ${timeoutMs} ms; the pool is unusable, dispose it`);
        });
        if (words[word(w, SLOT.status)] !== 0) failure ??= new Error(`trap in worker ${w + 1}`);
      }
      if (failure !== undefined) {
        throw new KernelError(`kernel ${exportName} trapped in the worker pool (${String(failure)}); this is a crumb bug`, { cause: failure });
      }
    },
    quit() {
      seq = (seq + 1) | 0;
      for (let w = 0; w < nWorkers; w++) {
        words[word(w, SLOT.exportIndex)] = QUIT;
        Atomics.store(words, word(w, SLOT.request), seq);
        Atomics.notify(words, word(w, SLOT.request), 1);
      }
    },
    runRows(exportName, rows, argsFor, align = 1) {
      state.run(exportName, splitRows(rows, threads, align).map(([begin, end]) => argsFor(begin, end)));
    },
  };
  return state;
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

