/**
 * Worker side of the kernel pools. The shared-memory pool (./pool.ts) sends `{ module, memory,
 * ... }`: the worker instantiates the kernel module over that shared memory with its own
 * stack, then serves calls from its control slot until told to quit. The row-shard pool
 * (./shard-pool.ts) sends `{ mode: "rows", ... }`: see ./shard-worker.ts.
 * Waits spin for `spinMicros`, then sleep in Atomics.wait; no messages after start-up.
 */
import { ARGS_OFFSET, functionExports, nextRequest, QUIT, SLOT, SLOT_BYTES } from "./pool.ts";
import { type RowShardStart, startRowShardWorker, type WorkerScope } from "./shard-worker.ts";
import { instantiateKernels } from "./wasm.ts";

interface Start {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  stackTop: number;
  slot: number;
  spinMicros: number;
}

const scope = globalThis as unknown as WorkerScope;

scope.onmessage = (event) => {
  scope.onmessage = null;
  const start = event.data as Start | RowShardStart;
  if ("mode" in start && start.mode === "rows") {
    startRowShardWorker(scope, start);
    return;
  }
  const { module, memory, stackTop, slot, spinMicros } = start as Start;
  let fns: Array<(...args: number[]) => unknown>;
  try {
    const { exports } = instantiateKernels(memory, stackTop, module);
    fns = functionExports(module).map((name) => exports[name]);
  } catch (error) {
    scope.postMessage({ error: String(error) });
    return;
  }
  scope.postMessage({ ready: true });
  serve(memory, slot, spinMicros, fns);
  scope.close();
};

function serve(memory: WebAssembly.Memory, slot: number, spinMicros: number, fns: Array<(...args: number[]) => unknown>): void {
  const words = new Int32Array(memory.buffer, slot, SLOT_BYTES / 4);
  const args = new Float64Array(memory.buffer, slot + ARGS_OFFSET, (SLOT_BYTES - ARGS_OFFSET) / 8);
  // The slot was zeroed before this worker started, so request 0 is "nothing yet"; reading the
  // current value instead would lose a request posted between start-up and this line.
  let last = 0;
  for (;;) {
    last = nextRequest(words, last, spinMicros);
    const fn = words[SLOT.exportIndex];
    if (fn === QUIT) return;
    let status = 0;
    try {
      fns[fn](...args.subarray(0, words[SLOT.argCount]));
    } catch {
      status = 1;
    }
    words[SLOT.status] = status;
    Atomics.store(words, SLOT.done, last);
    Atomics.notify(words, SLOT.done);
  }
}
