/**
 * How the ops and the attention states run kernels: as steps, each a list of calls of one
 * export that may run in parallel (row or head shards of one op). With a worker pool the steps
 * are queued as phases of one pool batch (./pool.ts `enqueue`) and a barrier is put only where
 * a step reads storage the current phase writes, or writes storage it reads or writes; the
 * queue is flushed when the host needs the results (a read, a compressed cache's JS work) or,
 * by policy, after every step or at every layer. Without a pool every call runs at once.
 *
 * A one-call step that depends on a one-call phase (a residual add, then the next RMSNorm, then
 * its LUT tables) is chained to it instead: the same thread runs both, without a barrier.
 *
 * Storage ids name what a step touches (a run-state buffer, a prepared input, a layer of the
 * KV cache); weights and tables that no step writes need none. Steps keep their argument lists,
 * which are validated once when the caller builds its plan, so queueing allocates nothing.
 */
import { KernelError } from "../errors.ts";
import type { Kernels } from "../kernels/wasm.ts";
import { CHUNKS_PER_THREAD, functionExports, type Pool } from "./pool.ts";
import { callExact } from "./task-queue.ts";

/**
 * When queued steps run: "step" after each step (one pool dispatch per op, as fused groups
 * need at most), "layer" at each layer boundary (the attention state marks them), "forward"
 * only when the host needs results (one dispatch per decode step with an f16 cache).
 */
export type FlushPolicy = "step" | "layer" | "forward";
export const FLUSH_POLICIES: readonly FlushPolicy[] = ["step", "layer", "forward"];

export interface KernelQueue {
  readonly kernels: Kernels;
  /** The shared-memory pool behind the queue, if any (flush before using it directly). */
  readonly pool: Pool | undefined;
  /** Pieces a parallel step is cut into: threads × CHUNKS_PER_THREAD, 1 without a pool. */
  readonly parts: number;
  readonly policy: FlushPolicy;
  /** The index `step` takes for an export; throws KernelError for an unknown name. */
  fn(exportName: string): number;
  /** A new storage id (for a buffer whose readers and writers must be ordered). */
  storage(): number;
  /** Queues (or runs) one step: `calls` of export `fn`, touching `reads` and `writes` (storage ids). */
  step(fn: number, calls: readonly (readonly number[])[], reads: readonly number[], writes: readonly number[]): void;
  /** A layer ends here: flushes under the "layer" policy. */
  boundary(): void;
  /** Runs every queued step and returns when they are done. */
  flush(): void;
  /** Pool dispatches so far (0 without a pool). */
  readonly dispatches: number;
}

export function createKernelQueue(kernels: Kernels, pool: Pool | undefined, policy: FlushPolicy = "forward"): KernelQueue {
  if (!FLUSH_POLICIES.includes(policy)) throw new KernelError(`unknown flush policy "${policy}"; choose ${FLUSH_POLICIES.join(", ")}`);
  const queued = pool !== undefined && pool.threads > 1 ? pool : undefined;
  const names = functionExports(kernels.module);
  const index = new Map(names.map((name, i) => [name, i]));
  const fns = names.map((name) => kernels.exports[name] as (...args: number[]) => unknown);
  let storages = 0;
  // Phase bookkeeping per storage id: the phase that last wrote or read it.
  let lastWrite = new Int32Array(64).fill(-1);
  let lastRead = new Int32Array(64).fill(-1);
  let phase = 0;
  let phaseCalls = 0; // calls in the current phase (a one-call phase can take a dependent one-call step as a chain)

  const runHere = (fn: number, a: readonly number[]) => {
    try {
      callExact(fns[fn], a, 0, a.length);
    } catch (cause) {
      throw new KernelError(`kernel ${names[fn]} trapped (${String(cause)}); its arguments passed validation, so this is a crumb bug`, { cause });
    }
  };
  const conflicts = (reads: readonly number[], writes: readonly number[]) => {
    for (let i = 0; i < reads.length; i++) if (lastWrite[reads[i]] === phase) return true;
    for (let i = 0; i < writes.length; i++) if (lastWrite[writes[i]] === phase || lastRead[writes[i]] === phase) return true;
    return false;
  };

  const queue: KernelQueue = {
    kernels,
    pool: queued,
    parts: queued === undefined ? 1 : queued.threads * CHUNKS_PER_THREAD,
    policy,
    fn(exportName) {
      const fn = index.get(exportName);
      if (fn === undefined) throw new KernelError(`no kernel export named '${exportName}'`);
      return fn;
    },
    storage() {
      const id = storages++;
      if (id >= lastWrite.length) {
        const grow = (a: Int32Array) => {
          const b = new Int32Array(2 * a.length).fill(-1);
          b.set(a);
          return b;
        };
        lastWrite = grow(lastWrite);
        lastRead = grow(lastRead);
      }
      return id;
    },
    step(fn, calls, reads, writes) {
      if (queued === undefined) {
        for (let i = 0; i < calls.length; i++) runHere(fn, calls[i]);
        return;
      }
      const dependent = queued.pending === 0 || conflicts(reads, writes);
      if (dependent && calls.length === 1 && phaseCalls === 1 && queued.pending > 0) {
        // One call after a one-call phase it depends on: chained, same thread, no barrier.
        queued.enqueue(fn, calls[0], "chain");
      } else {
        if (dependent) {
          phase++;
          phaseCalls = 0;
        }
        for (let i = 0; i < calls.length; i++) queued.enqueue(fn, calls[i], dependent && i === 0 ? "barrier" : "join");
        phaseCalls += calls.length;
      }
      for (let i = 0; i < reads.length; i++) lastRead[reads[i]] = phase;
      for (let i = 0; i < writes.length; i++) lastWrite[writes[i]] = phase;
      if (policy === "step") queued.flush();
    },
    boundary() {
      if (policy === "layer") queued?.flush();
    },
    flush() {
      queued?.flush();
    },
    get dispatches() {
      return queued?.dispatches ?? 0;
    },
  };
  return queue;
}
