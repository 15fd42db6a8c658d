/**
 * A model backend wrapped for tests that check the work done, not only the output: every
 * `forward` call is logged with the tokens it fed and the cache position it started at, and a
 * gate can hold forward calls until the test lets them through. With the gate a test decides
 * how far a generation may run ahead of its reader (one token per chunk read, a slot held busy)
 * by counting, never by waiting a while.
 */
import { createEngineOn, type EngineOptions, type ModelBackend, type ModelMetadata } from "../runtime/engine/engine.ts";
import type { PackedModel } from "../runtime/engine/packed-model.ts";
import { createReferenceEngine } from "../runtime/engine/reference-engine.ts";
import type { Engine } from "../runtime/engine/types.ts";
import { createWasmBackend, type WasmBackendOptions } from "../runtime/engine/wasm-backend.ts";
import type { ModelSource } from "../runtime/models/types.ts";
import type { ForwardOptions } from "../runtime/ops/types.ts";

/** One forward call: the tokens fed and the number of positions cached before them. */
export interface ForwardCall {
  readonly tokens: readonly number[];
  readonly position: number;
}

/** Holds forward calls (before they run) while closed; lets them through in FIFO order. */
export interface ForwardGate {
  /** From now on every forward call waits for `allow` or `open`. */
  close(): void;
  /** Lets `n` more calls through, waiting ones first. */
  allow(n?: number): void;
  /** Lets every waiting and later call through. */
  open(): void;
  /** Calls waiting at the gate now. */
  readonly waiting: number;
}

export interface CountingBackend {
  /** The wrapped backend, to build an engine on (`createEngineOn`). */
  readonly backend: ModelBackend;
  /** Every forward call so far, in order (embeddings included). */
  readonly calls: readonly ForwardCall[];
  readonly gate: ForwardGate;
  /** The index the next call will get: pass it to `since` to see only what a step did. */
  mark(): number;
  /** The calls made since `mark`. */
  since(mark: number): readonly ForwardCall[];
  /** Tokens fed by the calls made since `mark`. */
  tokensSince(mark: number): number;
}

/** The gate as the wrapper sees it: `pass` is undefined when a call may run at once. */
interface HeldGate extends ForwardGate {
  pass(): Promise<void> | undefined;
}

function createGate(): HeldGate {
  let closed = false;
  let allowance = 0;
  const waiters: (() => void)[] = [];
  const drain = () => {
    while (waiters.length > 0 && (!closed || allowance > 0)) {
      if (closed) allowance--;
      waiters.shift()!();
    }
  };
  return {
    close() {
      closed = true;
      allowance = 0;
    },
    allow(n = 1) {
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`allow needs a positive integer, got ${n}`);
      allowance += n;
      drain();
    },
    open() {
      closed = false;
      allowance = 0;
      drain();
    },
    get waiting() {
      return waiters.length;
    },
    pass(): Promise<void> | undefined {
      if (!closed) return undefined;
      if (allowance > 0 && waiters.length === 0) {
        allowance--;
        return undefined;
      }
      return new Promise<void>((resolve) => waiters.push(resolve));
    },
  };
}

/** Wraps `inner`; the wrapper forwards everything and logs (and may hold) each forward call. */
export function countForwards(inner: ModelBackend): CountingBackend {
  const calls: ForwardCall[] = [];
  const gate = createGate();
  // The cache's own length is the truth (a restored session fills it without a forward call).
  const position = () => inner.cache?.length() ?? -1;
  const run = (tokens: readonly number[], options?: ForwardOptions) => {
    calls.push({ tokens: [...tokens], position: position() });
    return inner.forward(tokens, options);
  };
  const backend: ModelBackend = {
    args: inner.args,
    contextLength: inner.contextLength,
    name: `${inner.name} (counting forward calls)`,
    cache: inner.cache,
    forward(tokens, options) {
      const held = gate.pass();
      return held === undefined ? run(tokens, options) : held.then(() => run(tokens, options));
    },
    truncate: (pos) => inner.truncate(pos),
    reset: () => inner.reset(),
    dispose: inner.dispose === undefined ? undefined : () => inner.dispose!(),
  };
  return {
    backend,
    calls,
    gate,
    mark: () => calls.length,
    since: (mark) => calls.slice(mark),
    tokensSince: (mark) => calls.slice(mark).reduce((n, call) => n + call.tokens.length, 0),
  };
}

/** An engine over the fp32 reference backend of `source`, its forward calls counted. */
export function countingReferenceEngine(source: ModelSource, options: EngineOptions = {}): { engine: Engine; counter: CountingBackend } {
  const reference = createReferenceEngine(source, { contextLength: options.contextLength });
  const counter = countForwards({ ...reference, name: "reference engine, fp32" });
  return { engine: createEngineOn(counter.backend, source, options), counter };
}

/** An engine over the WASM backend of a packed model, its forward calls counted. */
export async function countingWasmEngine(
  model: PackedModel,
  metadata: ModelMetadata,
  options: WasmBackendOptions = {},
): Promise<{ engine: Engine; counter: CountingBackend }> {
  const counter = countForwards(await createWasmBackend(model, options));
  return { engine: createEngineOn(counter.backend, metadata, { contextLength: options.contextLength }), counter };
}
