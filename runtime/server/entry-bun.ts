/**
 * The Bun listener: Bun.serve around the Hono app, with the idle timeout off (Bun closes
 * connections idle for 10 s by default, which would cut long prefills on a Pi; SSE
 * keep-alives cover proxies). Run directly (`bun runtime/server/entry-bun.ts <model> ...`)
 * it is `crumb serve`.
 */
import type { Hono } from "hono";

export interface Listener {
  /** The base URL actually bound (port 0 picks a free one). */
  readonly url: string;
  /** Stops accepting connections; in-flight responses finish (force: cut them). */
  stop(force?: boolean): Promise<void>;
}

declare const Bun: {
  serve(options: { fetch: (request: Request) => Response | Promise<Response>; hostname: string; port: number; idleTimeout: number }): {
    hostname: string;
    port: number;
    stop(force?: boolean): Promise<void> | void;
  };
};

export function listenBun(app: Hono, options: { hostname: string; port: number }): Promise<Listener> {
  const server = Bun.serve({ fetch: app.fetch, hostname: options.hostname, port: options.port, idleTimeout: 0 });
  const host = server.hostname.includes(":") ? `[${server.hostname}]` : server.hostname;
  return Promise.resolve({
    url: `http://${host}:${server.port}`,
    async stop(force = false) {
      await server.stop(force);
    },
  });
}

if (import.meta.main) {
  const { runServeMain } = await import("../cli/serve.ts");
  await runServeMain(process.argv.slice(2));
}
