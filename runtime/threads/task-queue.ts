/**
 * The shared-memory task queue behind the worker pool (./pool.ts). A batch is a list of kernel
 * calls (export index + f64 arguments) written into a table in the shared memory; the main
 * thread and every worker claim calls one at a time with Atomics.add on a shared counter until
 * the table is drained, so a thread that starts late (wake-up latency) or is descheduled (a
 * busy machine) leaves its share to the others instead of stalling the batch. Work is split in
 * more calls than threads for that reason; which thread runs which call never changes a
 * result, because calls write disjoint memory and each is computed the same way on any thread.
 *
 * Protocol (all words Int32, each hot word on its own 64-byte line):
 * - publish: the main thread writes the table, COUNT, NEXT = FINISHED = 0, then OPEN = seq and
 *   SEQ = seq, and notifies SEQ only if some worker flagged SLEEPING.
 * - join: a worker that sees a new SEQ stores JOINED[w] = seq, then re-reads OPEN; only if the
 *   batch is still open does it claim calls. It clears JOINED[w] when the counter runs out.
 * - close: once FINISHED = COUNT the main thread stores OPEN = 0 and waits for every worker
 *   whose JOINED is this seq. The store/load pairs (JOINED then OPEN in the worker, OPEN then
 *   JOINED in the main thread) are sequentially consistent, so a worker either sees the batch
 *   closed or is waited for: no late worker can claim from the next batch's half-written table.
 * - sleeping: a waiting thread spins (./spin-policy.ts), then sets its SLEEPING flag,
 *   re-checks, and sleeps in Atomics.wait; the other side notifies only when the flag is set,
 *   so a busy decode loop (threads spinning between calls) makes no futex system calls at all.
 * - phases: each call carries AFTER, the number of calls of the batch that must be finished
 *   before it starts (the start of its phase). Calls are claimed in table order, so every call
 *   before it is already claimed by a running thread and the wait always ends: a batch can hold
 *   a whole decoder layer (norm, then the q/k/v rows, then RoPE, ...) with a barrier between
 *   steps instead of one dispatch per step. Barrier waits spin, then sleep with BARRIER_SLEEPERS
 *   raised; a thread finishing a call notifies FINISHED only when someone sleeps there.
 * - chains: a call may be chained to the one before it (CHAIN: the head holds the number of
 *   calls in its chain, each member -1). The thread that claims the head runs the whole chain in
 *   order and counts it finished; a thread that claims a member skips it. Dependent one-call
 *   steps (a residual add, the next RMSNorm, that norm's LUT tables) so need no barrier between
 *   them and stay on one thread.
 */
import type { SpinPolicy } from "./spin-policy.ts";

/** Int32 words per 64-byte cache line. */
const LINE = 16;
export const Q = {
  seq: 0,
  open: 1,
  count: 2,
  quit: 3,
  next: LINE,
  finished: 2 * LINE,
  status: 3 * LINE,
  mainSleeping: 3 * LINE + 1,
  barrierSleepers: 3 * LINE + 2,
} as const;
const WORKER_LINES_AT = 4 * LINE;
/** JOINED[w] and SLEEPING[w] of worker w (0-based), as word offsets from the queue base. */
export const joinedWord = (w: number) => WORKER_LINES_AT + w * LINE;
export const sleepingWord = (w: number) => WORKER_LINES_AT + w * LINE + 1;

/** One table entry: export index, argument count, AFTER, CHAIN, then f64 arguments from byte 16. */
export const TASK_BYTES = 128;
const TASK_ARGS_AT = 16;
export const MAX_TASK_ARGS = (TASK_BYTES - TASK_ARGS_AT) / 8;
/** Largest batch published at once (a 1.1B decode step in 2-thread shards is ~1200 calls). */
export const MAX_TASKS = 2048;

/** Byte offset of the task table from the queue base. */
export function tableOffset(workers: number): number {
  return (WORKER_LINES_AT + workers * LINE) * 4;
}

/** Bytes of the queue (header lines and task table) for `workers` workers. */
export function queueBytes(workers: number): number {
  return tableOffset(workers) + MAX_TASKS * TASK_BYTES;
}

/** Views of one queue in a shared memory; `base` is its byte offset (64-byte aligned). */
export interface QueueViews {
  readonly words: Int32Array;
  readonly doubles: Float64Array;
  /** Word index of the queue base. */
  readonly at: number;
  /** Byte offset of the task table. */
  readonly table: number;
}

export function queueViews(buffer: ArrayBufferLike, base: number, workers: number): QueueViews {
  return { words: new Int32Array(buffer), doubles: new Float64Array(buffer), at: base / 4, table: base + tableOffset(workers) };
}

/**
 * Writes call i of a batch into the table; it starts once `after` calls of the batch have
 * finished. `chained`: it runs right after call i-1, on the thread that runs that one.
 */
export function writeTask(q: QueueViews, i: number, fn: number, args: ArrayLike<number>, after = 0, chained = false): void {
  const byte = q.table + i * TASK_BYTES;
  q.words[byte / 4] = fn;
  q.words[byte / 4 + 1] = args.length;
  q.words[byte / 4 + 2] = after;
  q.words[byte / 4 + 3] = 1;
  if (chained) {
    q.words[byte / 4 + 3] = -1;
    let head = i - 1;
    while (q.words[(q.table + head * TASK_BYTES) / 4 + 3] < 0) head--;
    q.words[(q.table + head * TASK_BYTES) / 4 + 3]++;
  }
  const a = (byte + TASK_ARGS_AT) / 8;
  for (let k = 0; k < args.length; k++) q.doubles[a + k] = args[k];
}

export type KernelFn = (...args: number[]) => unknown;

/**
 * Calls fn with the `argc` arguments a[at..at+argc), as a fixed-arity call: no spread, and no
 * more arguments than the export takes (V8 allocates on both when calling into WebAssembly).
 */
export function callExact(fn: KernelFn, a: ArrayLike<number>, at: number, argc: number): unknown {
  switch (argc) {
    case 0:
      return fn();
    case 1:
      return fn(a[at]);
    case 2:
      return fn(a[at], a[at + 1]);
    case 3:
      return fn(a[at], a[at + 1], a[at + 2]);
    case 4:
      return fn(a[at], a[at + 1], a[at + 2], a[at + 3]);
    case 5:
      return fn(a[at], a[at + 1], a[at + 2], a[at + 3], a[at + 4]);
    case 6:
      return fn(a[at], a[at + 1], a[at + 2], a[at + 3], a[at + 4], a[at + 5]);
    case 7:
      return fn(a[at], a[at + 1], a[at + 2], a[at + 3], a[at + 4], a[at + 5], a[at + 6]);
    case 8:
      return fn(a[at], a[at + 1], a[at + 2], a[at + 3], a[at + 4], a[at + 5], a[at + 6], a[at + 7]);
    case 9:
      return fn(a[at], a[at + 1], a[at + 2], a[at + 3], a[at + 4], a[at + 5], a[at + 6], a[at + 7], a[at + 8]);
    case 10:
      return fn(a[at], a[at + 1], a[at + 2], a[at + 3], a[at + 4], a[at + 5], a[at + 6], a[at + 7], a[at + 8], a[at + 9]);
    case 11:
      return fn(a[at], a[at + 1], a[at + 2], a[at + 3], a[at + 4], a[at + 5], a[at + 6], a[at + 7], a[at + 8], a[at + 9], a[at + 10]);
    case 12:
      return fn(a[at], a[at + 1], a[at + 2], a[at + 3], a[at + 4], a[at + 5], a[at + 6], a[at + 7], a[at + 8], a[at + 9], a[at + 10], a[at + 11]);
    case 13:
      return fn(a[at], a[at + 1], a[at + 2], a[at + 3], a[at + 4], a[at + 5], a[at + 6], a[at + 7], a[at + 8], a[at + 9], a[at + 10], a[at + 11], a[at + 12]);
    case 14:
      return fn(a[at], a[at + 1], a[at + 2], a[at + 3], a[at + 4], a[at + 5], a[at + 6], a[at + 7], a[at + 8], a[at + 9], a[at + 10], a[at + 11], a[at + 12], a[at + 13]);
    default:
      throw new RangeError(`kernel call with ${argc} arguments, at most ${MAX_TASK_ARGS}`);
  }
}

/** Runs call i from the table. */
export function runTask(q: QueueViews, i: number, fns: readonly KernelFn[]): void {
  const byte = q.table + i * TASK_BYTES;
  callExact(fns[q.words[byte / 4]], q.doubles, (byte + TASK_ARGS_AT) / 8, q.words[byte / 4 + 1]);
}

/**
 * Claims and runs calls of the open batch until the counter passes `count`, each after the
 * calls its phase waits for. `run(i)` runs call i and returns false when it trapped. Returns
 * false if any call this thread ran trapped.
 */
export function drain(q: QueueViews, count: number, spin: SpinPolicy, run: (i: number) => boolean): boolean {
  const { words, at } = q;
  let ok = true;
  for (;;) {
    const i = Atomics.add(words, at + Q.next, 1);
    if (i >= count) return ok;
    const entry = (q.table + i * TASK_BYTES) / 4;
    const chain = words[entry + 3];
    if (chain < 0) continue; // a chain member: its head's thread runs it
    const after = words[entry + 2];
    if (after > 0) waitFinished(q, after, spin);
    for (let c = 0; c < chain; c++) {
      if (!run(i + c)) {
        ok = false;
        Atomics.store(words, at + Q.status, 1);
      }
    }
    const finished = Atomics.add(words, at + Q.finished, chain) + chain;
    if (Atomics.load(words, at + Q.barrierSleepers) !== 0 || (finished === count && Atomics.load(words, at + Q.mainSleeping) !== 0)) {
      Atomics.notify(words, at + Q.finished);
    }
  }
}

/** Waits at a phase barrier until `after` calls of the batch have finished (spin, then sleep). */
function waitFinished(q: QueueViews, after: number, spin: SpinPolicy): void {
  const { words, at } = q;
  const word = at + Q.finished;
  if (spin.spinAtLeast(words, word, after)) return;
  Atomics.add(words, at + Q.barrierSleepers, 1);
  for (;;) {
    const current = Atomics.load(words, word);
    if (current >= after) break;
    Atomics.wait(words, word, current, 100);
  }
  Atomics.sub(words, at + Q.barrierSleepers, 1);
}

/**
 * Worker side: waits for batches (spin, then sleep with the SLEEPING flag set), joins each and
 * runs calls until the queue is told to quit.
 */
export function serveQueue(q: QueueViews, w: number, spin: SpinPolicy, fns: readonly KernelFn[]): void {
  const { words, at } = q;
  const seqWord = at + Q.seq;
  const run = (i: number) => {
    try {
      runTask(q, i, fns);
      return true;
    } catch {
      return false;
    }
  };
  let last = 0;
  for (;;) {
    if (!spin.spin(() => Atomics.load(words, seqWord) !== last)) {
      Atomics.store(words, at + sleepingWord(w), 1);
      while (Atomics.load(words, seqWord) === last) Atomics.wait(words, seqWord, last);
      Atomics.store(words, at + sleepingWord(w), 0);
    }
    const seq = Atomics.load(words, seqWord);
    last = seq;
    if (Atomics.load(words, at + Q.quit) !== 0) return;
    Atomics.store(words, at + joinedWord(w), seq);
    if (Atomics.load(words, at + Q.open) === seq) drain(q, words[at + Q.count], spin, run);
    Atomics.store(words, at + joinedWord(w), 0);
    if (Atomics.load(words, at + Q.mainSleeping) !== 0) Atomics.notify(words, at + joinedWord(w));
  }
}

/**
 * Main side: waits until `done()` (spin, then sleep on word `i` with MAIN_SLEEPING set; the
 * workers notify that word when they change it). Throws `onTimeout()` after `timeoutMs`.
 */
export function mainWait(q: QueueViews, i: number, done: () => boolean, spin: SpinPolicy, timeoutMs: number, onTimeout: () => Error): void {
  if (spin.spin(done)) return;
  const { words, at } = q;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    Atomics.store(words, at + Q.mainSleeping, 1);
    const current = Atomics.load(words, i);
    if (done()) break;
    const left = deadline - performance.now();
    if (left <= 0) {
      Atomics.store(words, at + Q.mainSleeping, 0);
      throw onTimeout();
    }
    Atomics.wait(words, i, current, Math.min(left, 100));
  }
  Atomics.store(words, at + Q.mainSleeping, 0);
}
