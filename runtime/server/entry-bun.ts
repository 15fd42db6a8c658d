/**
 * The Bun listener: Bun.serve around the Hono app. A connection that sends nothing for
 * `readTimeoutSeconds` (a stalled request, an idle keep-alive) is closed, at Bun's 4-second
 * granularity (the app's own read deadline answers a slow body with 408 on time); once a
 * request's body is in, the app lifts that limit for it (`keepOpen`), so a long prefill on a Pi
 * or a stream between keep-alive comments is never cut. Bun itself closes a connection whose
 * headers do not complete within about 10 s and answers headers beyond 16 KiB with a bare 431
 * (the app's own OpenAI-shaped 431 covers headers between 8 and 16 KiB). `crumb serve`
 * (runtime/cli/serve.ts) starts it.
 */
import type { Hono } from "hono";
import type { AppEnv } from "./context.ts";

export interface Listener {
  /** The base URL actually bound (port 0 picks a free one). */
  readonly url: string;
  /** Stops accepting connections; in-flight responses finish (force: cut them). */
  stop(force?: boolean): Promise<void>;
}

interface BunServer {
  hostname: string;
  port: number;
  stop(force?: boolean): Promise<void> | void;
  /** Sets one request's idle timeout in seconds (0: none). */
  timeout(request: Request, seconds: number): void;
}

declare const Bun: {
  serve(options: {
    fetch: (request: Request, server: BunServer) => Response | Promise<Response>;
    hostname: string;
    port: number;
    idleTimeout: number;
  }): BunServer;
};

/** Bun's idle timeout is whole seconds, at most 255. */
const MAX_IDLE_SECONDS = 255;

export function listenBun(app: Hono<AppEnv>, options: { hostname: string; port: number; readTimeoutSeconds?: number }): Promise<Listener> {
  const seconds = options.readTimeoutSeconds ?? 30;
  const idleTimeout = seconds === 0 ? 0 : Math.min(MAX_IDLE_SECONDS, Math.max(1, Math.ceil(seconds)));
  const server = Bun.serve({
    fetch: (request, bun) => app.fetch(request, { keepOpen: () => bun.timeout(request, 0) }),
    hostname: options.hostname,
    port: options.port,
    idleTimeout,
  });
  const host = server.hostname.includes(":") ? `[${server.hostname}]` : server.hostname;
  return Promise.resolve({
    url: `http://${host}:${server.port}`,
    async stop(force = false) {
      await server.stop(force);
    },
  });
}
