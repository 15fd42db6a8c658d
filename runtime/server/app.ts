/**
 * createApp(engine, options): crumb's OpenAI-compatible HTTP API as one Hono app, shared by
 * the Bun and Deno entries and by tests (app.fetch). Middleware, outermost first: request id
 * and access log; header size (431); the cap on open requests (503); CORS, only with an API
 * key or `cors` origins; Bearer auth (/health stays open); without an API key, JSON bodies
 * only (415, so a browser page cannot post a "simple" request without a CORS preflight); the
 * body, read under its size limit and the read deadline (413, 408; a client that leaves is a
 * 499); then the routes. Every error from anywhere goes through the single onError below into
 * OpenAI's `{"error":{...}}` body.
 */
import { Hono } from "hono";
import { cors } from "hono/cors";
import type { Engine, Pooling } from "../engine/types.ts";
import { type AppEnv, engineHolder, type ServerContext } from "./context.ts";
import { HttpError, mapError } from "./errors.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { createRequestQueue, type RequestQueue } from "./queue.ts";
import { markArrival, readBodyMiddleware } from "./read-body.ts";
import { registerChat } from "./routes/chat.ts";
import { registerCompletions } from "./routes/completions.ts";
import { registerEmbeddings } from "./routes/embeddings.ts";
import { registerMisc } from "./routes/misc.ts";

export interface AppOptions {
  /** Required Bearer token for every route but /health and preflight; none = open. */
  readonly apiKey?: string;
  /** The admission queue; default one built from `parallel` and `queueDepth`. */
  readonly queue?: RequestQueue;
  readonly parallel?: number;
  readonly queueDepth?: number;
  /** Largest request body in bytes (default 4 MiB); larger ones get 413. */
  readonly bodyLimit?: number;
  /** Milliseconds a request body may take to arrive after its headers (default 30 000); 408 beyond. */
  readonly readTimeoutMs?: number;
  /** Requests open at once, /health and /metrics aside (default 64); 503 beyond. */
  readonly maxConnections?: number;
  /** Origins CORS allows ("*" for any). Default: none without an API key, any with one. */
  readonly cors?: readonly string[];
  /** Inputs one /v1/embeddings request may hold (default 256). */
  readonly maxEmbedInputs?: number;
  /** Tokens one /v1/embeddings request may hold over all its inputs (default 32 768). */
  readonly maxEmbedTokens?: number;
  /** Embedding pooling; default: the model's own (Engine.pooling). */
  readonly pooling?: Pooling;
  /** SSE keep-alive interval in ms (default 10 000). */
  readonly keepAliveMs?: number;
  /** Receives one access-log line per request and error details (default: stderr). */
  readonly log?: (line: string) => void;
  readonly metrics?: Metrics;
}

const ROUTES = [
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  "/v1/models",
  "/health",
  "/metrics",
  "/tokenize",
  "/detokenize",
];

function routeLabel(path: string): string {
  if (path.startsWith("/v1/models/")) return "/v1/models/:id";
  return ROUTES.includes(path) ? path : "other";
}

/** Constant-time comparison, so the key cannot be guessed from response timing. */
function sameSecret(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= a.charCodeAt(i % (a.length || 1)) ^ b.charCodeAt(i % (b.length || 1));
  return diff === 0;
}

const validRequestId = (id: string | undefined) => id !== undefined && /^[\w.:-]{1,128}$/.test(id);

/** Largest single header (name and value) and all headers together, in bytes (431 beyond). */
export const MAX_HEADER_BYTES = 8 * 1024;
export const MAX_HEADERS_BYTES = 16 * 1024;

function checkHeaderSize(headers: Headers): void {
  let total = 0;
  for (const [name, value] of headers) {
    const size = name.length + value.length + 4;
    total += size;
    if (size > MAX_HEADER_BYTES || total > MAX_HEADERS_BYTES) {
      const what = size > MAX_HEADER_BYTES ? `the ${name} header is ${size} bytes` : `the headers reach ${total} bytes`;
      throw new HttpError(
        431,
        "request_header_fields_too_large",
        `${what}; this server reads at most ${MAX_HEADER_BYTES} bytes per header and ${MAX_HEADERS_BYTES} in all: send a shorter header`,
      );
    }
  }
}

const isJson = (type: string | undefined) => type !== undefined && type.split(";")[0].trim().toLowerCase() === "application/json";

/** Statuses after which the rest of the request (unread body, oversized headers) cannot be trusted: close the connection. */
const CLOSE_AFTER = new Set([408, 413, 431]);

/** Routes that must answer while everything else is busy (load balancers, monitoring). */
const ALWAYS_OPEN = new Set(["/health", "/metrics"]);

/** Builds the app; `engine` may be a promise while the model loads (/health answers 503 until then). */
export function createApp(engine: Engine | Promise<Engine>, options: AppOptions = {}): Hono<AppEnv> {
  const log = options.log ?? ((line: string) => console.error(line));
  const holder = engineHolder(engine, log);
  // A request counts from its headers until its response is sent (a stream: until it ends),
  // so stalled bodies and held streams cannot pile up without bound.
  const maxConnections = options.maxConnections ?? 64;
  let open = 0;
  const ctx: ServerContext = {
    engine: holder.engine,
    get loaded() {
      return holder.loaded;
    },
    queue: options.queue ?? createRequestQueue({ parallel: options.parallel, depth: options.queueDepth }),
    metrics: options.metrics ?? createMetrics(),
    keepAliveMs: options.keepAliveMs ?? 10_000,
    pooling: options.pooling,
    maxEmbedInputs: options.maxEmbedInputs ?? 256,
    maxEmbedTokens: options.maxEmbedTokens ?? 32_768,
    get openRequests() {
      return open;
    },
    log,
  };
  const app = new Hono<AppEnv>();

  app.use("*", async (c, next) => {
    markArrival(c);
    const incoming = c.req.header("x-request-id");
    const requestId = validRequestId(incoming) ? incoming! : crypto.randomUUID();
    const start = performance.now();
    await next();
    c.res.headers.set("x-request-id", requestId);
    const route = routeLabel(c.req.path);
    ctx.metrics.request(route, c.res.status);
    log(
      `${new Date().toISOString()} ${requestId} ${c.req.method} ${c.req.path} ${c.res.status} ${(performance.now() - start).toFixed(1)}ms`,
    );
  });

  app.use("*", (c, next) => {
    checkHeaderSize(c.req.raw.headers);
    return next();
  });

  app.use("*", async (c, next) => {
    if (ALWAYS_OPEN.has(c.req.path)) return next();
    if (open >= maxConnections) {
      throw new HttpError(
        503,
        "too_many_connections",
        `${open} requests are open, the limit set by --max-connections ${maxConnections}; retry after 1 s`,
        { retryAfter: 1 },
      );
    }
    open++;
    let counted = true;
    const release = () => {
      if (counted) open--;
      counted = false;
    };
    try {
      await next();
    } finally {
      const body = c.res.body;
      if (body === null || !c.res.headers.get("content-type")?.startsWith("text/event-stream")) release();
      else c.res = new Response(releasedWhenDone(body, release), c.res);
    }
  });

  const origins = options.cors ?? (options.apiKey === undefined ? [] : ["*"]);
  if (origins.length > 0) {
    const origin = origins.includes("*") ? "*" : [...origins];
    app.use("*", cors({ origin, exposeHeaders: ["x-request-id", "retry-after"], maxAge: 600 }));
  }

  app.use("*", (c, next) => {
    if (options.apiKey === undefined || c.req.path === "/health" || c.req.method === "OPTIONS") return next();
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(.+)$/i.exec(header.trim());
    if (match === null || !sameSecret(match[1], options.apiKey)) {
      throw new HttpError(
        401,
        "invalid_api_key",
        match === null
          ? "missing API key: send the header 'Authorization: Bearer <key>' with the key given to --api-key"
          : "incorrect API key provided",
        { type: "invalid_request_error" },
      );
    }
    return next();
  });

  if (options.apiKey === undefined) {
    app.use("*", (c, next) => {
      if (c.req.raw.body === null && c.req.method !== "POST") return next();
      if (!isJson(c.req.header("content-type"))) {
        throw new HttpError(
          415,
          "unsupported_media_type",
          `this server (started without --api-key) takes only JSON request bodies, got Content-Type ${
            JSON.stringify(c.req.header("content-type") ?? "(none)")
          }; send 'Content-Type: application/json'`,
          { param: "content-type" },
        );
      }
      return next();
    });
  }

  app.use("*", readBodyMiddleware({ maxBytes: options.bodyLimit ?? 4 * 1024 * 1024, timeoutMs: options.readTimeoutMs ?? 30_000 }));

  registerChat(app, ctx);
  registerCompletions(app, ctx);
  registerEmbeddings(app, ctx);
  registerMisc(app, ctx);

  app.notFound((c) => {
    throw new HttpError(
      404,
      "not_found",
      `no route ${c.req.method} ${c.req.path}; see /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings`,
    );
  });

  app.onError((error, c) => {
    const { status, body, retryAfter } = mapError(error);
    if (status >= 500 && !(error instanceof HttpError)) {
      log(`error ${c.req.method} ${c.req.path}: ${(error as Error)?.stack ?? String(error)}`);
    }
    const headers: Record<string, string> = retryAfter === undefined ? {} : { "retry-after": String(retryAfter) };
    if (CLOSE_AFTER.has(status)) headers.connection = "close";
    return c.json(body, status, headers);
  });

  return app;
}

/** `body`, calling `done` once it has been read to the end or cancelled. */
function releasedWhenDone(body: ReadableStream<Uint8Array>, done: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done: ended, value } = await reader.read();
        if (ended) {
          done();
          controller.close();
        } else controller.enqueue(value);
      } catch (error) {
        done();
        controller.error(error);
      }
    },
    cancel(reason) {
      done();
      return reader.cancel(reason);
    },
  });
}
