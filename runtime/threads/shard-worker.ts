/**
 * Worker side of the row-shard pool (./shard-pool.ts), for runtimes without shared
 * WebAssembly memory: the worker owns a private kernel instance and memory, receives its row
 * shards of the model's matrices once (postMessage), then serves matmul calls synchronously
 * through a control slot in a plain SharedArrayBuffer: it copies the prepared input from the
 * exchange buffer into its memory, runs the kernel on its rows, and copies the rows out.
 */
import { ARGS_OFFSET, functionExports, nextRequest, QUIT, SLOT, SLOT_BYTES } from "./pool.ts";
import { Arena, instantiateKernels, WASM_MAX_BYTES } from "../kernels/wasm.ts";

export interface WorkerScope {
  onmessage: ((event: { data: unknown }) => void) | null;
  postMessage(message: unknown, transfer?: unknown[]): void;
  close(): void;
}

export interface RowShardStart {
  readonly mode: "rows";
  /** The kernel module compiled for an unshared memory import. */
  readonly module: WebAssembly.Module;
  readonly exchange: SharedArrayBuffer;
  /** Byte offset of this worker's control slot in `exchange`. */
  readonly slot: number;
  readonly spinMicros: number;
}

/** Messages after start-up, until `serve`. */
export type RowShardMessage =
  | { readonly upload: number; readonly bytes: Uint8Array }
  | { readonly serve: { readonly inputBytes: number; readonly outputBytes: number; readonly inputAt: number; readonly outputAt: number } };

/** Extra int32 words of a row-shard control slot (after the pool's SLOT fields). */
export const ROW_SLOT = { inputBytes: 5, outputBytes: 6 } as const;

export function startRowShardWorker(scope: WorkerScope, start: RowShardStart): void {
  let instance: ReturnType<typeof instantiateKernels>;
  let arena: Arena;
  try {
    const memory = new WebAssembly.Memory({ initial: 32, maximum: WASM_MAX_BYTES / 65536 });
    instance = instantiateKernels(memory, undefined, start.module);
    arena = new Arena(memory, Number(instance.exports.__heap_base.value));
  } catch (error) {
    scope.postMessage({ error: String(error) });
    return;
  }
  scope.postMessage({ ready: true });
  scope.onmessage = (event) => {
    const message = event.data as RowShardMessage;
    try {
      if ("upload" in message) {
        const ptr = arena.alloc(message.bytes.byteLength, 64);
        new Uint8Array(instance.memory.buffer, ptr, message.bytes.byteLength).set(message.bytes);
        scope.postMessage({ uploaded: message.upload, ptr });
        return;
      }
      const { inputBytes, outputBytes, inputAt, outputAt } = message.serve;
      const inputPtr = arena.alloc(inputBytes, 64);
      const outputPtr = arena.alloc(outputBytes, 64);
      scope.onmessage = null;
      scope.postMessage({ serving: true, inputPtr, outputPtr });
      serve(start, instance, { inputPtr, outputPtr, inputAt, outputAt });
      scope.close();
    } catch (error) {
      scope.postMessage({ error: String(error) });
    }
  };
}

function serve(
  start: RowShardStart,
  instance: ReturnType<typeof instantiateKernels>,
  at: { inputPtr: number; outputPtr: number; inputAt: number; outputAt: number },
): void {
  const words = new Int32Array(start.exchange, start.slot, SLOT_BYTES / 4);
  const args = new Float64Array(start.exchange, start.slot + ARGS_OFFSET, (SLOT_BYTES - ARGS_OFFSET) / 8);
  const exchange = new Uint8Array(start.exchange);
  const fns = functionExports(start.module).map((name) => instance.exports[name] as (...a: number[]) => unknown);
  let last = 0;
  for (;;) {
    last = nextRequest(words, last, start.spinMicros);
    const fn = words[SLOT.exportIndex];
    if (fn === QUIT) return;
    let status = 0;
    try {
      // The memory may have grown since the last call: take fresh views.
      const memory = new Uint8Array(instance.memory.buffer);
      const inputBytes = words[ROW_SLOT.inputBytes];
      const outputBytes = words[ROW_SLOT.outputBytes];
      memory.set(exchange.subarray(at.inputAt, at.inputAt + inputBytes), at.inputPtr);
      const code = fns[fn](...args.subarray(0, words[SLOT.argCount]));
      if (typeof code === "number" && code !== 0) status = 2;
      exchange.set(memory.subarray(at.outputPtr, at.outputPtr + outputBytes), at.outputAt);
    } catch {
      status = 1;
    }
    words[SLOT.status] = status;
    Atomics.store(words, SLOT.done, last);
    Atomics.notify(words, SLOT.done);
  }
}
