/**
 * Starts a worker thread that does not keep the process alive once it is unref'd. Bun's Web
 * Worker has unref(); Deno's has none (an idle pool would keep a library user's script running
 * until it called dispose), but Deno's node:worker_threads Worker runs the same worker script
 * (globalThis.onmessage / postMessage, shared WebAssembly memory) and has unref(), so Deno gets
 * that one, adapted to the Web Worker calls the pools use.
 */
import { Worker as NodeWorker } from "node:worker_threads";

export interface PoolWorker {
  postMessage(message: unknown): void;
  terminate(): void;
  addEventListener(type: "message" | "error", listener: (event: { data?: unknown; message?: string }) => void): void;
  unref?(): void;
}

export function spawnWorker(url: URL): PoolWorker {
  if (!("Deno" in globalThis)) return new Worker(url.href, { type: "module" }) as unknown as PoolWorker;
  const worker = new NodeWorker(url);
  return {
    postMessage: (message) => worker.postMessage(message),
    terminate: () => void worker.terminate(),
    addEventListener(type, listener) {
      if (type === "message") worker.on("message", (data: unknown) => listener({ data }));
      else worker.on("error", (error: Error) => listener({ message: error.message }));
    },
    unref: () => worker.unref(),
  };
}
