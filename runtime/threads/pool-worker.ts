/**
 * Worker side of the kernel pools. The shared-memory pool (./pool.ts) sends a QueueStart: the
 * worker instantiates the kernel module over that shared memory with its own stack, then
 * claims calls from the pool's task queue (./task-queue.ts) until told to quit. The row-shard
 * pool (./shard-pool.ts) sends `{ mode: "rows", ... }`: see ./shard-worker.ts.
 * Waits spin for `spinMicros`, then sleep in Atomics.wait; no messages after start-up.
 */
import { functionExports, type QueueStart } from "./pool.ts";
import { type RowShardStart, startRowShardWorker, type WorkerScope } from "./shard-worker.ts";
import { SpinPolicy } from "./spin-policy.ts";
import { queueViews, serveQueue } from "./task-queue.ts";
import { instantiateKernels } from "../kernels/wasm.ts";

const scope = globalThis as unknown as WorkerScope;

scope.onmessage = (event) => {
  scope.onmessage = null;
  const start = event.data as QueueStart | RowShardStart;
  if ("mode" in start && start.mode === "rows") {
    startRowShardWorker(scope, start);
    return;
  }
  const { module, memory, stackTop, queue, worker, workers, spinMicros } = start as QueueStart;
  let fns: Array<(...args: number[]) => unknown>;
  try {
    const { exports } = instantiateKernels(memory, stackTop, module);
    fns = functionExports(module).map((name) => exports[name] as (...args: number[]) => unknown);
  } catch (error) {
    scope.postMessage({ error: String(error) });
    return;
  }
  scope.postMessage({ ready: true });
  serveQueue(queueViews(memory.buffer, queue, workers), worker, new SpinPolicy(spinMicros), fns);
  scope.close();
};
