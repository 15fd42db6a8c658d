/**
 * createApp(engine, options): crumb's OpenAI-compatible HTTP API as one Hono app, shared by
 * the Bun and Deno entries and by tests (app.fetch). Middleware, outermost first: request id
 * and access log, CORS (with preflight), Bearer auth (/health stays open), body limit; then
 * the routes. Every error from anywhere goes through the single onError below into OpenAI's
 * `{"error":{...}}` body.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import type { Engine, Pooling } from "../engine/types.ts";
import { engineHolder, type ServerContext } from "./context.ts";
import { HttpError, mapError } from "./errors.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { createRequestQueue, type RequestQueue } from "./queue.ts";
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

/** Builds the app; `engine` may be a promise while the model loads (/health answers 503 until then). */
export function createApp(engine: Engine | Promise<Engine>, options: AppOptions = {}): Hono {
  const log = options.log ?? ((line: string) => console.error(line));
  const holder = engineHolder(engine, log);
  const ctx: ServerContext = {
    engine: holder.engine,
    get loaded() {
      return holder.loaded;
    },
    queue: options.queue ?? createRequestQueue({ parallel: options.parallel, depth: options.queueDepth }),
    metrics: options.metrics ?? createMetrics(),
    keepAliveMs: options.keepAliveMs ?? 10_000,
    pooling: options.pooling,
    log,
  };
  const app = new Hono();

  app.use("*", async (c, next) => {
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

  app.use("*", cors({ origin: "*", exposeHeaders: ["x-request-id", "retry-after"], maxAge: 600 }));

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

  const maxSize = options.bodyLimit ?? 4 * 1024 * 1024;
  app.use(
    "*",
    bodyLimit({
      maxSize,
      onError: () => {
        throw new HttpError(413, "request_too_large", `the request body is larger than ${maxSize} bytes; send less text per request`);
      },
    }),
  );

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
    return c.json(body, status, headers);
  });

  return app;
}
