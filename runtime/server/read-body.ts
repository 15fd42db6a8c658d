/**
 * Reading a request body under three limits at once: its size (413), the time it may take to
 * arrive, counted from the moment the headers were complete (408, --read-timeout), and the
 * client staying (a client that leaves mid-body is a 499, not a server error). The bytes are
 * kept on the context for the route's JSON parser (`parseJsonBody`: UTF-8, nesting at most 64
 * deep, an object), and once they are in, the listener is told to lift its idle limit so a long
 * prefill is not cut.
 *
 * Hand-written rather than hono's body-limit: that middleware enforces the size only, and only
 * while it reads chunked bodies itself; a body with a Content-Length is left to the route, so
 * neither a deadline nor a departing client could be told apart from an error there.
 */
import type { Context, MiddlewareHandler } from "hono";
import { InvalidArgumentError } from "../errors.ts";
import { HttpError } from "./errors.ts";
import type { JsonObject } from "./schema.ts";

/** What a listener offers the app through `c.env` (Bun: per-request idle timeout). */
export interface ListenerBindings {
  /** From now on this request's connection has no idle limit (generation may be silent for long). */
  readonly keepOpen?: () => void;
}

export interface BodyLimits {
  /** Largest body in bytes (413 beyond). */
  readonly maxBytes: number;
  /** Milliseconds the body may take to arrive after the headers (408 beyond). */
  readonly timeoutMs: number;
}

/** Per request (the context object lives for one request): the body read and the arrival time. */
const bodies = new WeakMap<Context, Uint8Array>();
const arrivals = new WeakMap<Context, number>();

/** Marks when the request's headers were complete: the read deadline counts from here. */
export function markArrival(c: Context): void {
  arrivals.set(c, performance.now());
}

/** The body read by `readBodyMiddleware` (empty for requests without one). */
export function bodyBytes(c: Context): Uint8Array {
  return bodies.get(c) ?? new Uint8Array(0);
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(413, "request_too_large", `the request body is larger than ${maxBytes} bytes; send less text per request`);
}

function clientLeft(cause?: unknown): HttpError {
  return new HttpError(499, "client_closed_request", "the client closed the connection before the request body arrived", { cause });
}

/** Reads every request body with a size cap and a deadline before the route runs. */
export function readBodyMiddleware(limits: BodyLimits): MiddlewareHandler {
  return async (c, next) => {
    const request = c.req.raw;
    if (request.body === null) {
      (c.env as ListenerBindings | undefined)?.keepOpen?.();
      return next();
    }
    const declared = Number(request.headers.get("content-length") ?? NaN);
    if (declared > limits.maxBytes) throw tooLarge(limits.maxBytes);
    const started = arrivals.get(c) ?? performance.now();
    const left = Math.max(0, limits.timeoutMs - (performance.now() - started));
    const reader = request.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), left)));
    try {
      for (;;) {
        const result = await Promise.race([reader.read(), expired]);
        if (result === "timeout") {
          throw new HttpError(
            408,
            "request_timeout",
            `the request body did not arrive within ${limits.timeoutMs / 1000} s (--read-timeout); send it at once or raise --read-timeout`,
          );
        }
        if (result.done) break;
        size += result.value.length;
        if (size > limits.maxBytes) throw tooLarge(limits.maxBytes);
        chunks.push(result.value);
      }
    } catch (error) {
      reader.cancel().catch(() => {});
      if (error instanceof HttpError) throw error;
      // The runtime ends the stream with an error when the connection closes mid-body.
      throw clientLeft(error);
    } finally {
      clearTimeout(timer);
    }
    if (request.signal.aborted) throw clientLeft();
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, at);
      at += chunk.length;
    }
    bodies.set(c, bytes);
    (c.env as ListenerBindings | undefined)?.keepOpen?.();
    return next();
  };
}

/** Nesting a request body may have; deeper JSON is refused before it is parsed (400). */
export const MAX_JSON_DEPTH = 64;

/** Deepest array/object nesting in `text` (strings skipped), scanning stops past `limit`. */
function nestingDepth(text: string, limit: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > deepest && (deepest = depth) > limit) return deepest;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return deepest;
}

/** Parses a request body: valid UTF-8, valid JSON nested at most MAX_JSON_DEPTH deep, an object. */
export function parseJsonBody(bytes: Uint8Array): JsonObject {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch (cause) {
    throw new InvalidArgumentError("body", "the request body is not valid UTF-8; send JSON encoded as UTF-8", { cause });
  }
  if (text.trim() === "") throw new InvalidArgumentError("body", "the request body is empty; send a JSON object");
  if (nestingDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    throw new InvalidArgumentError("body", `the request body nests arrays or objects more than ${MAX_JSON_DEPTH} levels deep; flatten it`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new InvalidArgumentError("body", `the request body is not valid JSON (${(cause as Error).message}); send a JSON object`, {
      cause,
    });
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new InvalidArgumentError(
      "body",
      `the request body must be a JSON object, got ${Array.isArray(value) ? "an array" : JSON.stringify(value)}`,
    );
  }
  return value as JsonObject;
}
