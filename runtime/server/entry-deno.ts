/**
 * The Deno listener: Deno.serve around the Hono app. Deno keeps idle HTTP connections open, so
 * long prefills are not cut; the app's read deadline covers bodies (408), but Deno.serve has no
 * option to time out headers that never complete (checked on Deno 2.9: a connection stalled
 * mid-headers stays open), so behind Deno the header timeout is a reverse proxy's job. `crumb
 * serve` (runtime/cli/serve.ts, `deno task serve`) starts it.
 */
import type { Hono } from "hono";
import type { AppEnv } from "./context.ts";
import type { Listener } from "./entry-bun.ts";

declare const Deno: {
  serve(
    options: { hostname: string; port: number; onListen?: (addr: { hostname: string; port: number }) => void },
    handler: (request: Request) => Response | Promise<Response>,
  ): { finished: Promise<void>; shutdown(): Promise<void> };
};

export function listenDeno(app: Hono<AppEnv>, options: { hostname: string; port: number }): Promise<Listener> {
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: options.hostname,
      port: options.port,
      onListen: ({ hostname, port }) => {
        const host = hostname.includes(":") ? `[${hostname}]` : hostname;
        resolve({
          url: `http://${host}:${port}`,
          async stop() {
            await server.shutdown();
          },
        });
      },
    }, (request) => app.fetch(request));
  });
}
