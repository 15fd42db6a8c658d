/**
 * The worker pool's fallback for runtimes without shared WebAssembly memory: row sharding.
 * Each worker runs the kernels over its own private memory and holds, for every matrix it
 * is given, only its rows (uploaded once at start-up). A matmul copies the prepared input
 * (LUT tables, int8 activations or f32 rows) into an exchange SharedArrayBuffer, every worker
 * computes its rows while the main thread computes the first shard from its own copy, and
 * the workers' rows are copied back into the output. Dispatch is synchronous through control
 * slots in the exchange buffer, as in ./pool.ts; only a plain SharedArrayBuffer is needed.
 * The main thread keeps the whole model (it also serves embeddings and the first shard), so
 * this mode holds 1 + (N-1)/N copies of the weights: it trades memory for threads.
 */
import { KernelError, ShapeError } from "../errors.ts";
import { encodingName, matrixLayout, ROW_TILE } from "../format/encoding.ts";
import { sliceMatrixRows } from "../format/slice-rows.ts";
import { gemmShardCall, type PackedMatrix, type PreparedInput } from "../kernels/matmul.ts";
import { lutStride, q8InputStride, status } from "../kernels/matmul-inputs.ts";
import {
  ARGS_OFFSET,
  defaultThreads,
  functionExports,
  MAX_ARGS,
  poolWorkerUrl,
  QUIT,
  SLOT,
  SLOT_BYTES,
  splitRows,
  waitFor,
} from "./pool.ts";
import { ROW_SLOT, type RowShardStart } from "./shard-worker.ts";
import { kernelModule, type Kernels } from "../kernels/wasm.ts";

export interface ShardPoolOptions {
  /** Threads including the calling one; default: all cores. */
  readonly threads?: number;
  /** The main thread's kernels (over a private memory) holding the matrices. */
  readonly kernels: Kernels;
  /** Matrices to shard across the workers; any other matrix runs on the main thread alone. */
  readonly matrices: readonly PackedMatrix[];
  /** Most tokens one call handles (sizes the exchange buffer); default 64. */
  readonly maxTokens?: number;
  readonly spinMicros?: number;
  readonly timeoutMs?: number;
}

export interface ShardPool {
  readonly threads: number;
  readonly kernels: Kernels;
  /**
   * out (m, outStride) = x · Wᵀ at byte offset `out` of the main memory, rows split across
   * the workers. `x` is what gemmShardCall takes: the prepared input, or the pointer of m*cols
   * f32 activations for f32/f16 matrices, already validated by the caller.
   */
  gemm(a: PackedMatrix, x: number | PreparedInput, m: number, out: number, outStride: number): void;
  dispose(): void;
}

interface Worker0 {
  postMessage(message: unknown, transfer?: unknown[]): void;
  terminate(): void;
  addEventListener(type: string, listener: (event: { data?: unknown; message?: string }) => void): void;
  removeEventListener(type: string, listener: (event: { data?: unknown; message?: string }) => void): void;
  unref?(): void;
}

/** Rows [begin, end) of a matrix: `part` describes them as held in the owner's memory. */
interface Shard {
  readonly begin: number;
  readonly end: number;
  readonly part: PackedMatrix;
}

/** Bytes of the prepared input `m` tokens of a matrix read. */
function inputBytes(a: PackedMatrix, m: number): number {
  const e = a.encoding;
  if (e.kind === "bitplane" || e.kind === "ternary") return lutStride(a.cols, e.group) * m;
  if (e.kind === "q8") return q8InputStride(a.cols, e.group) * m;
  return 4 * a.cols * m;
}

export async function createShardPool(options: ShardPoolOptions): Promise<ShardPool> {
  const threads = options.threads ?? defaultThreads();
  if (!Number.isInteger(threads) || threads < 2 || threads > 256) {
    throw new KernelError(`row-shard pool threads must be an integer in 2..256, got ${threads}`);
  }
  if (typeof SharedArrayBuffer !== "function") {
    throw new KernelError("this runtime has no SharedArrayBuffer, so no worker pool can run; use threads: 1");
  }
  const { kernels } = options;
  const maxTokens = options.maxTokens ?? 64;
  const spinMicros = options.spinMicros ?? 100;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const nWorkers = threads - 1;
  const module = kernelModule({ shared: false });
  const exportIndex = new Map(functionExports(module).map((name, i) => [name, i]));

  // Exchange buffer: control slots, then the input region, then one output region per worker.
  const lut = (a: PackedMatrix) => a.encoding.kind === "bitplane" || a.encoding.kind === "ternary";
  const plans = options.matrices.map((a) => ({ a, ranges: splitRows(a.rows, threads, lut(a) ? ROW_TILE : 1) }));
  const inputCapacity = align64(Math.max(64, ...options.matrices.map((a) => inputBytes(a, maxTokens))));
  const outputCapacity = align64(Math.max(64, ...plans.flatMap((p) => p.ranges.slice(1).map(([b, e]) => 4 * maxTokens * (e - b)))));
  const inputAt = nWorkers * SLOT_BYTES;
  const outputAt = (w: number) => inputAt + inputCapacity + w * outputCapacity;
  const exchange = new SharedArrayBuffer(outputAt(nWorkers));
  const words = new Int32Array(exchange);
  const doubles = new Float64Array(exchange);
  const bytes = new Uint8Array(exchange);

  const workerUrl = poolWorkerUrl();
  const workers: Worker0[] = [];
  const shards = new Map<number, Shard[]>(); // by the matrix's main-memory pointer
  const scratch: { inputPtr: number; outputPtr: number }[] = [];
  try {
    for (let w = 0; w < nWorkers; w++) {
      const worker = new Worker(workerUrl.href, { type: "module" }) as unknown as Worker0;
      workers.push(worker);
      const start: RowShardStart = { mode: "rows", module, exchange, slot: w * SLOT_BYTES, spinMicros };
      await request(worker, w, start, "ready");
    }
    for (const { a, ranges } of plans) {
      const main = new Uint8Array(kernels.memory.buffer, a.ptr, a.layout.byteLength);
      const placed: Shard[] = [{ begin: ranges[0][0], end: ranges[0][1], part: a }];
      for (let s = 1; s < ranges.length; s++) {
        const [begin, end] = ranges[s];
        const shardBytes = sliceMatrixRows(a.encoding, a.rows, a.cols, main, begin, end);
        const reply = await request(workers[s - 1], s - 1, { upload: a.ptr, bytes: shardBytes }, "uploaded", [shardBytes.buffer]);
        const rows = end - begin;
        const part = { encoding: a.encoding, rows, cols: a.cols, ptr: reply.ptr as number, layout: matrixLayout(a.encoding, rows, a.cols) };
        placed.push({ begin, end, part });
      }
      shards.set(a.ptr, placed);
    }
    for (let w = 0; w < nWorkers; w++) {
      const reply = await request(workers[w], w, { serve: { inputBytes: inputCapacity, outputBytes: outputCapacity, inputAt, outputAt: outputAt(w) } }, "serving");
      scratch.push({ inputPtr: reply.inputPtr as number, outputPtr: reply.outputPtr as number });
    }
  } catch (error) {
    for (const worker of workers) worker.terminate();
    throw error;
  }
  for (const worker of workers) worker.unref?.();

  let seq = 0;
  let disposed = false;
  const slotWord = (w: number, field: number) => (w * SLOT_BYTES) / 4 + field;
  const memoryBytes = () => new Uint8Array(kernels.memory.buffer);

  return {
    threads,
    kernels,
    gemm(a, x, m, out, outStride) {
      if (disposed) throw new KernelError("this row-shard pool was disposed; create a new one");
      const placed = shards.get(a.ptr);
      const mainCall = gemmShardCall(a, x, m, out, outStride);
      const runOnMain = (args: number[]) => {
        const code = kernels.exports[mainCall.exportName](...args); // dense kernels return nothing
        if (typeof code === "number") status(`gemm ${encodingName(a.encoding)}`, code);
      };
      if (placed === undefined) {
        runOnMain(mainCall.argsFor(0, a.rows));
        return;
      }
      if (m > maxTokens) throw new ShapeError("row-shard gemm", `at most ${maxTokens} tokens per call`, String(m));
      const fn = exportIndex.get(mainCall.exportName)!;
      const inBytes = inputBytes(a, m);
      const inPtr = typeof x === "number" ? x : x.ptr;
      bytes.set(memoryBytes().subarray(inPtr, inPtr + inBytes), inputAt);
      seq = (seq + 1) | 0;
      for (let s = 1; s < placed.length; s++) {
        const w = s - 1;
        const { part } = placed[s];
        const rows = part.rows;
        const input = typeof x === "number" ? scratch[w].inputPtr : { ...x, ptr: scratch[w].inputPtr };
        const args = gemmShardCall(part, input, m, scratch[w].outputPtr, rows).argsFor(0, rows);
        if (args.length > MAX_ARGS) throw new KernelError(`row-shard gemm: ${args.length} arguments, at most ${MAX_ARGS}`);
        const base = (w * SLOT_BYTES + ARGS_OFFSET) / 8;
        for (let i = 0; i < args.length; i++) doubles[base + i] = args[i];
        words[slotWord(w, SLOT.exportIndex)] = fn;
        words[slotWord(w, SLOT.argCount)] = args.length;
        words[slotWord(w, ROW_SLOT.inputBytes)] = inBytes;
        words[slotWord(w, ROW_SLOT.outputBytes)] = 4 * m * rows;
        Atomics.store(words, slotWord(w, SLOT.request), seq);
        Atomics.notify(words, slotWord(w, SLOT.request), 1);
      }
      runOnMain(mainCall.argsFor(placed[0].begin, placed[0].end));
      let failed: number | undefined;
      for (let s = 1; s < placed.length; s++) {
        const w = s - 1;
        waitFor(words, slotWord(w, SLOT.done), seq, spinMicros, timeoutMs, () => {
          disposed = true;
          return new KernelError(`row-shard worker ${w + 1} did not finish within ${timeoutMs} ms; the pool is unusable, dispose it`);
        });
        if (words[slotWord(w, SLOT.status)] !== 0) failed ??= w + 1;
        const { begin, end } = placed[s];
        const rows = end - begin;
        const from = new Float32Array(exchange, outputAt(w), m * rows);
        const to = new Float32Array(kernels.memory.buffer);
        for (let t = 0; t < m; t++) to.set(from.subarray(t * rows, (t + 1) * rows), out / 4 + t * outStride + begin);
      }
      if (failed !== undefined) throw new KernelError(`kernel ${mainCall.exportName} failed in row-shard worker ${failed}; this is a crumb bug`);
    },
    dispose() {
      if (disposed && workers.length === 0) return;
      disposed = true;
      seq = (seq + 1) | 0;
      for (let w = 0; w < workers.length; w++) {
        words[slotWord(w, SLOT.exportIndex)] = QUIT;
        Atomics.store(words, slotWord(w, SLOT.request), seq);
        Atomics.notify(words, slotWord(w, SLOT.request), 1);
      }
      for (const worker of workers) worker.terminate();
      workers.length = 0;
    },
  };
}

function align64(n: number): number {
  return Math.ceil(n / 64) * 64;
}

/** Posts `message` to worker `w` and resolves with its reply carrying `key` (or rejects on error). */
function request(worker: Worker0, w: number, message: unknown, key: string, transfer?: unknown[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const done = () => {
      worker.removeEventListener("message", onMessage);
      worker.removeEventListener("error", onError);
    };
    const onMessage = (event: { data?: unknown }) => {
      const data = event.data as Record<string, unknown> | undefined;
      if (data?.[key] !== undefined) {
        done();
        resolve(data);
      } else if (data?.error !== undefined) {
        done();
        reject(new KernelError(`row-shard worker ${w + 1}: ${data.error}`));
      }
    };
    const onError = (event: { message?: string }) => {
      done();
      reject(new KernelError(`row-shard worker ${w + 1} failed: ${event.message ?? String(event)}`));
    };
    worker.addEventListener("message", onMessage);
    worker.addEventListener("error", onError);
    worker.postMessage(message, transfer);
  });
}
