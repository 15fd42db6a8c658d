/**
 * Admission control for generation and embedding work: `parallel` slots run at once, up to
 * `depth` requests wait in FIFO order, and a request arriving when both are full is refused
 * at once with 503 + Retry-After (llama-server and vLLM users expect a fast "busy" over an
 * unbounded wait). A waiting request whose client goes away leaves the line. `close` refuses
 * new work and `drain` waits for running work, cancelling it after a grace period
 * (graceful shutdown on SIGTERM).
 */
import { HttpError } from "./errors.ts";

export interface QueueOptions {
  /** Requests running at once (default 1). */
  readonly parallel?: number;
  /** Requests waiting for a slot at most (default 16). */
  readonly depth?: number;
  /** Retry-After seconds sent with 503 (default 1). */
  readonly retryAfter?: number;
}

/** A granted slot: `signal` aborts when the server cancels the work; `release` frees the slot (idempotent). */
export interface Slot {
  readonly signal: AbortSignal;
  release(): void;
}

export interface RequestQueue {
  /**
   * Joins the line; throws HttpError 503 at once (synchronously, so a stream can still answer
   * with a status) when the line is full or closed. Resolves when a slot is free.
   */
  enter(signal?: AbortSignal): Promise<Slot>;
  readonly running: number;
  readonly waiting: number;
  readonly parallel: number;
  readonly depth: number;
  /** Refuses new requests from now on (503). */
  close(): void;
  /** Resolves once nothing runs or waits; after `graceMs` aborts whatever still runs. */
  drain(graceMs: number): Promise<void>;
}

interface Waiter {
  grant(slot: Slot): void;
  fail(error: unknown): void;
}

export function createRequestQueue(options: QueueOptions = {}): RequestQueue {
  const parallel = options.parallel ?? 1;
  const depth = options.depth ?? 16;
  if (!Number.isInteger(parallel) || parallel < 1) {
    throw new HttpError(500, "config_error", `--parallel must be a positive integer, got ${parallel}`);
  }
  if (!Number.isInteger(depth) || depth < 0) {
    throw new HttpError(500, "config_error", `--queue must be a non-negative integer, got ${depth}`);
  }
  const retryAfter = options.retryAfter ?? 1;
  const line: Waiter[] = [];
  const active = new Set<AbortController>();
  let closed = false;
  let idle: (() => void) | undefined;

  const busy = (why: string) => new HttpError(503, closed ? "server_shutting_down" : "server_busy", why, { retryAfter });

  const makeSlot = (): Slot => {
    const controller = new AbortController();
    active.add(controller);
    let released = false;
    return {
      signal: controller.signal,
      release() {
        if (released) return;
        released = true;
        active.delete(controller);
        const next = line.shift();
        if (next !== undefined) next.grant(makeSlot());
        else if (active.size === 0) idle?.();
      },
    };
  };

  return {
    enter(signal) {
      if (closed) throw busy("the server is shutting down; retry against another instance");
      if (signal?.aborted) throw new HttpError(499, "client_closed_request", "the client closed the request");
      if (active.size < parallel && line.length === 0) return Promise.resolve(makeSlot());
      if (line.length >= depth) {
        throw busy(
          `all ${parallel} generation slot(s) are busy and ${line.length} request(s) are waiting (--queue ${depth}); retry after ${retryAfter} s`,
        );
      }
      return new Promise<Slot>((resolve, reject) => {
        const onAbort = () => {
          const at = line.indexOf(waiter);
          if (at !== -1) line.splice(at, 1);
          if (line.length === 0 && active.size === 0) idle?.();
          reject(new HttpError(499, "client_closed_request", "the client closed the request while it waited for a slot"));
        };
        const waiter: Waiter = {
          grant(slot) {
            signal?.removeEventListener("abort", onAbort);
            resolve(slot);
          },
          fail(error) {
            signal?.removeEventListener("abort", onAbort);
            reject(error);
          },
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        line.push(waiter);
      });
    },
    get running() {
      return active.size;
    },
    get waiting() {
      return line.length;
    },
    parallel,
    depth,
    close() {
      closed = true;
      for (const waiter of line.splice(0)) waiter.fail(busy("the server is shutting down; retry against another instance"));
    },
    drain(graceMs) {
      if (active.size === 0 && line.length === 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          for (const controller of active) controller.abort(busy("the server is shutting down"));
        }, graceMs);
        idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    },
  };
}
