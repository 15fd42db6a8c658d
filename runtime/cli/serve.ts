/**
 * `crumb serve [model] [--tokenizer F] [--chat-template F] [--host 127.0.0.1] [--port 8080] [--api-key K]
 * [--threads N] [--kv auto|f16|q8|q4|xquant|xquant-cl|f32] [--kv-budget B] [--ctx N] [--parallel 1] [--queue 16] [--pooling mean|last]`:
 * loads the model in the background (/health answers 503 until it is ready), serves the
 * OpenAI-compatible API on Bun or Deno, and on SIGTERM/SIGINT stops taking requests, lets
 * running ones finish (cancelling them after a grace period) and exits cleanly.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { setTimeout as delay } from "node:timers/promises";
import { isPackedFile, loadEngine } from "../engine/load-engine.ts";
import { KV_TYPES, type KvType } from "../engine/wasm-backend.ts";
import { parseBytes } from "../engine/kv-cache/auto.ts";
import { defaultThreads } from "../threads/pool.ts";
import type { Pooling } from "../engine/types.ts";
import { CrumbError, InvalidArgumentError } from "../errors.ts";
import { createApp } from "../server/app.ts";
import type { Listener } from "../server/entry-bun.ts";
import { createRequestQueue } from "../server/queue.ts";
import { numberOption, parseCommandLine } from "./args.ts";

export const SERVE_USAGE =
  "usage: bun run serve <model.q4 | model dir | model.gguf | model.bin> [--tokenizer <file>] [--chat-template <file.jinja>] [--host 127.0.0.1] [--port 8080] [--api-key <key>] " +
  "[--threads <n>] [--kv auto|f16|q8|q4|xquant|xquant-cl|f32] [--kv-budget <bytes>] [--ctx <positions>] [--parallel 1] [--queue 16] [--pooling mean|last] [--grace <seconds>]";


export interface ServeConfig {
  readonly model: string;
  readonly tokenizer?: string;
  /** A Jinja chat template file that replaces the model's own (or gives it one). */
  readonly chatTemplate?: string;
  readonly hostname: string;
  readonly port: number;
  readonly apiKey?: string;
  readonly threads?: number;
  readonly kv: string;
  readonly kvBudget?: number;
  readonly contextLength?: number;
  readonly parallel: number;
  readonly queueDepth: number;
  /** Overrides the model's own pooling. */
  readonly pooling?: Pooling;
  readonly graceSeconds: number;
}

/**
 * The most recent model in the local cache ($CRUMB_CACHE, else ~/.cache/crumb/models, where
 * `bun run pull` stores {org}--{name}/{commit}/ snapshots): the newest snapshot directory
 * with a config.json, or packed crumb file, at most two levels down.
 */
function newestCachedModel(env: Record<string, string | undefined>): string | undefined {
  // HOME rather than os.homedir(): Deno would need --allow-sys for the latter.
  const home = env.HOME ?? env.USERPROFILE;
  const root = env.CRUMB_CACHE?.trim() || (home === undefined ? undefined : join(home, ".cache", "crumb", "models"));
  if (root === undefined || !existsSync(root)) return undefined;
  const candidates: { path: string; mtime: number }[] = [];
  const visit = (dir: string, depth: number) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const stat = statSync(path);
      if (stat.isDirectory()) {
        if (existsSync(join(path, "config.json"))) candidates.push({ path, mtime: stat.mtimeMs });
        else if (depth < 2 && name !== "refs") visit(path, depth + 1);
      } else if (isPackedFile(path)) candidates.push({ path, mtime: stat.mtimeMs });
    }
  };
  visit(root, 0);
  candidates.sort((a, b) => b.mtime - a.mtime);
  return candidates[0]?.path;
}

const NO_MODEL =
  "no model given, CRUMB_MODEL is not set and the local cache holds none. Get one:\n" +
  "  bun run pull HuggingFaceTB/SmolLM2-135M-Instruct        # prints the directory it downloaded to\n" +
  "  bun run quantize <that directory> --bits 4 -o model.q4\n" +
  "  bun run serve model.q4\n" +
  "(serve also runs a Hugging Face directory, a .gguf or a llama2.c .bin directly, on the slower fp32 reference engine)";

export function parseServeArgs(argv: string[], env: Record<string, string | undefined> = process.env): ServeConfig {
  const { values, positionals } = parseCommandLine(argv, {
    tokenizer: { type: "string" },
    "chat-template": { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "8080" },
    "api-key": { type: "string" },
    threads: { type: "string" },
    kv: { type: "string", default: "auto" },
    "kv-budget": { type: "string" },
    ctx: { type: "string" },
    parallel: { type: "string", default: "1" },
    queue: { type: "string", default: "16" },
    pooling: { type: "string" },
    grace: { type: "string", default: "10" },
  }, SERVE_USAGE);
  if (positionals.length > 1) throw new InvalidArgumentError("model", `give one model path, got ${positionals.length}\n${SERVE_USAGE}`);
  const model = positionals[0] ?? env.CRUMB_MODEL ?? newestCachedModel(env);
  if (model === undefined || model === "") throw new InvalidArgumentError("model", NO_MODEL);
  if (!existsSync(model)) throw new InvalidArgumentError("model", `model path "${model}" does not exist\n${SERVE_USAGE}`);
  const template = values["chat-template"] as string | undefined;
  if (template !== undefined && !existsSync(template)) {
    throw new InvalidArgumentError("--chat-template", `chat template file "${template}" does not exist`);
  }
  const kv = String(values.kv);
  if (!(KV_TYPES as readonly string[]).includes(kv)) {
    throw new InvalidArgumentError("--kv", `--kv must be one of ${KV_TYPES.join(", ")}, got "${kv}"`);
  }
  const pooling = values.pooling === undefined ? undefined : String(values.pooling);
  if (pooling !== undefined && pooling !== "mean" && pooling !== "last") {
    throw new InvalidArgumentError("--pooling", `--pooling must be mean or last, got "${pooling}"`);
  }
  return {
    model,
    tokenizer: values.tokenizer as string | undefined,
    chatTemplate: values["chat-template"] as string | undefined,
    hostname: String(values.host),
    port: numberOption(values.port, "--port", { min: 0, max: 65535, integer: true })!,
    apiKey: (values["api-key"] as string | undefined) ?? env.CRUMB_API_KEY,
    threads: numberOption(values.threads, "--threads", { min: 1, max: 256, integer: true }),
    kv,
    kvBudget: values["kv-budget"] === undefined ? undefined : parseBytes(String(values["kv-budget"])),
    contextLength: numberOption(values.ctx, "--ctx", { min: 1, integer: true }),
    parallel: numberOption(values.parallel, "--parallel", { min: 1, max: 64, integer: true })!,
    queueDepth: numberOption(values.queue, "--queue", { min: 0, max: 100_000, integer: true })!,
    pooling: pooling as Pooling | undefined,
    graceSeconds: numberOption(values.grace, "--grace", { min: 0, max: 3600 })!,
  };
}

async function listen(app: ReturnType<typeof createApp>, hostname: string, port: number): Promise<Listener> {
  if ("Deno" in globalThis) return (await import("../server/entry-deno.ts")).listenDeno(app, { hostname, port });
  return (await import("../server/entry-bun.ts")).listenBun(app, { hostname, port });
}

/** Serves until SIGTERM/SIGINT; resolves after a clean shutdown. */
export async function runServe(
  argv: string[],
  io = { stdout: (t: string) => void process.stdout.write(t), stderr: (t: string) => void process.stderr.write(t) },
): Promise<void> {
  const config = parseServeArgs(argv);
  const log = (line: string) => io.stderr(line + "\n");
  const packed = isPackedFile(config.model);
  if (!packed && (config.threads !== undefined || config.kv !== "auto")) {
    log(`crumb serve: --threads and --kv apply to packed models on the WASM engine; ${config.model} runs on the fp32 reference engine`);
  }
  const engine = loadEngine(config.model, {
    tokenizer: config.tokenizer,
    contextLength: config.contextLength,
    threads: config.threads ?? defaultThreads(),
    kv: config.kv as KvType,
    kvBudget: config.kvBudget,
    chatTemplate: config.chatTemplate === undefined ? undefined : readFileSync(config.chatTemplate, "utf8"),
  });
  const queue = createRequestQueue({ parallel: config.parallel, depth: config.queueDepth });
  const app = createApp(engine, { apiKey: config.apiKey, queue, pooling: config.pooling, log });
  const listener = await listen(app, config.hostname, config.port);
  io.stdout(`crumb serve: listening on ${listener.url} (loading ${config.model}; GET /health answers 200 when ready)\n`);
  await new Promise<void>((resolve, reject) => {
    let stopping = false;
    const shutdown = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log(`crumb serve: ${signal}: finishing ${queue.running} running request(s), refusing new ones (grace ${config.graceSeconds} s)`);
      queue.close();
      await queue.drain(config.graceSeconds * 1000);
      // Give cancelled streams a moment to send their last frame, then close everything.
      const timer = new AbortController();
      await Promise.race([listener.stop(false), delay(1000, undefined, { signal: timer.signal }).catch(() => {})]);
      timer.abort();
      await listener.stop(true).catch(() => {});
      resolve();
    };
    process.on("SIGTERM", () => void shutdown("SIGTERM"));
    process.on("SIGINT", () => void shutdown("SIGINT"));
    engine.then(
      (loaded) => log(`crumb serve: model ${loaded.modelId} ready, context ${loaded.contextLength}`),
      // A server that can never answer should not keep running: stop and report the error.
      (error) => {
        stopping = true;
        listener.stop(true).finally(() => reject(error));
      },
    );
  });
  log("crumb serve: stopped");
}

/** For the entry files: runs serve and turns errors into one line and an exit code. */
export async function runServeMain(argv: string[]): Promise<void> {
  try {
    await runServe(argv);
    process.exit(0);
  } catch (error) {
    if (!(error instanceof CrumbError)) throw error;
    process.stderr.write(`crumb serve: ${error.message}\n`);
    process.exit(1);
  }
}
