/**
 * Embedding crumb's server in your own Deno program: load a model, build the Hono app with
 * createApp, add your own route next to the OpenAI ones, and serve it with Deno.serve.
 *
 *   deno run -A examples/deno-serve.ts <model dir | model.gguf | model.bin> [tokenizer]
 *
 * (`deno task serve <model>` runs the stock server instead.)
 */
import { importModel } from "../runtime/import/index.ts";
import { createEngine } from "../runtime/engine/engine.ts";
import { createApp } from "../runtime/server/app.ts";

declare const Deno: {
  args: string[];
  serve(options: { hostname: string; port: number }, handler: (request: Request) => Response | Promise<Response>): unknown;
};

const [modelPath, tokenizer] = Deno.args;
if (modelPath === undefined) throw new Error("usage: deno run -A examples/deno-serve.ts <model> [tokenizer]");

const engine = createEngine(await importModel(modelPath, { tokenizer }), { contextLength: 1024 });
const app = createApp(engine, { parallel: 1, queueDepth: 8 });
// Your own endpoints live beside the OpenAI ones.
app.get("/hello", (c) => c.json({ model: engine.modelId, context: engine.contextLength }));

Deno.serve({ hostname: "127.0.0.1", port: 8080 }, app.fetch);
