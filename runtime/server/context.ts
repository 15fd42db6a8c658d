/**
 * What every route needs from the app: the engine (or a 503 while it loads), the request
 * queue, the metrics, and the operating options. Built once by createApp.
 */
import type { Engine, Pooling } from "../engine/types.ts";
import { HttpError } from "./errors.ts";
import type { Metrics } from "./metrics.ts";
import type { RequestQueue } from "./queue.ts";
import type { ListenerBindings } from "./read-body.ts";

/** The Hono environment of the app: what the listener passes as `c.env`. */
export type AppEnv = { Bindings: ListenerBindings };

export interface ServerContext {
  /** The loaded engine; throws HttpError 503 while it is still loading (or failed to load). */
  engine(): Engine;
  readonly loaded: boolean;
  readonly queue: RequestQueue;
  readonly metrics: Metrics;
  /** Milliseconds of silence before an SSE keep-alive comment. */
  readonly keepAliveMs: number;
  /** Pooling for /v1/embeddings: --pooling, else the model's own (Engine.pooling). */
  readonly pooling: Pooling | undefined;
  /** Inputs and tokens (all inputs together) one /v1/embeddings request may hold. */
  readonly maxEmbedInputs: number;
  readonly maxEmbedTokens: number;
  /** Requests open now (headers in, response not yet sent), /health and /metrics aside. */
  readonly openRequests: number;
  readonly log: (line: string) => void;
}

export function engineHolder(engine: Engine | Promise<Engine>, log: (line: string) => void) {
  let current: Engine | undefined;
  let failure: unknown;
  if (engine instanceof Promise) {
    engine.then(
      (loaded) => (current = loaded),
      (error) => {
        failure = error;
        log(`crumb serve: model failed to load: ${(error as Error)?.message ?? String(error)}`);
      },
    );
  } else current = engine;
  return {
    get loaded() {
      return current !== undefined;
    },
    engine(): Engine {
      if (current !== undefined) return current;
      if (failure !== undefined) {
        throw new HttpError(503, "model_load_failed", `the model failed to load: ${(failure as Error)?.message ?? String(failure)}`);
      }
      throw new HttpError(503, "model_loading", "the model is still loading; retry shortly (GET /health answers 200 once ready)", {
        retryAfter: 2,
      });
    },
  };
}
