/**
 * Worker side of the kernel pool (./pool.ts): instantiates the kernel module over the shared
 * memory with its own stack, then serves calls from its control slot until told to quit.
 * Waits spin for `spinMicros`, then sleep in Atomics.wait; no messages after start-up.
 */
import { ARGS_OFFSET, functionExports, QUIT, SLOT, SLOT_BYTES } from "./pool.ts";
import { instantiateKernels } from "./wasm.ts";

interface Start {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  stackTop: number;
  slot: number;
  spinMicros: number;
}

interface WorkerScope {
  onmessage: ((event: { data: Start }) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;

scope.onmessage = (event) => {
  scope.onmessage = null;
  const { module, memory, stackTop, slot, spinMicros } = event.data;
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
    let request = Atomics.load(words, SLOT.request);
    if (request === last) {
      const spinEnd = performance.now() + spinMicros / 1000;
      while (request === last && performance.now() < spinEnd) request = Atomics.load(words, SLOT.request);
      if (request === last) {
        Atomics.wait(words, SLOT.request, last);
        continue;
      }
    }
    last = request;
    const fn = words[SLOT.exportIndex];
    if (fn === QUIT) return;
    let status = 0;
    try {
      fns[fn](...args.subarray(0, words[SLOT.argCount]));
    } catch {
      status = 1;
    }
    words[SLOT.status] = status;
    Atomics.store(words, SLOT.done, request);
    Atomics.notify(words, SLOT.done);
  }
}
