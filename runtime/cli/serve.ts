/**
 * `crumb serve [model] [flags]`: binds the port first (a port in use or a bad host is one line
 * and exit 1), then loads the model in the background with a progress bar (/health answers 503
 * until it is ready), prints one `ready` line, and serves the OpenAI-compatible API on Bun or
 * Deno. SIGTERM/SIGINT stop taking requests, let running ones finish (cancelling them after a
 * grace period) and exit cleanly. Logs go to stderr; the API key is never printed.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { lookup } from "node:dns/promises";
import { join } from "node:path";
import process from "node:process";
import { setTimeout as delay } from "node:timers/promises";
import { isPackedFile } from "../engine/load-engine.ts";
import type { KvType } from "../engine/wasm-backend.ts";
import { defaultThreads } from "../threads/pool.ts";
import type { Pooling } from "../engine/types.ts";
import { InvalidArgumentError, ListenError, UsageError } from "../errors.ts";
import { pathProblem } from "../format/path-problem.ts";
import { createApp } from "../server/app.ts";
import type { Listener } from "../server/entry-bun.ts";
import { createRequestQueue } from "../server/queue.ts";
import { type CommandSpec, parseCommand } from "./command-line.ts";
import { choiceValue, integerValue, numberValue } from "./flag-values.ts";
import { stderrLog } from "./generate.ts";
import type { CliIo } from "./io.ts";
import { checkModelPath, loadModelForCli } from "./load-model.ts";
import { CHAT_TEMPLATE_FLAG, engineFlags, MODEL_FLAG, modelArgument, TOKENIZER_FLAG } from "./model-flags.ts";

export const SERVE_COMMAND: CommandSpec = {
  name: "serve",
  summary: "serve the OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/embeddings, ...)",
  arguments: [{ name: "model", description: "model.q4, model.gguf, a Hugging Face directory or a llama2.c .bin", required: false }],
  flags: [
    MODEL_FLAG,
    { flags: "--host <address>", description: "address to listen on (0.0.0.0: every interface)", default: "127.0.0.1" },
    { flags: "--port <n>", description: "port to listen on (0: any free one)", default: 8080, parse: integerValue({ min: 0, max: 65535 }) },
    { flags: "--api-key <key>", description: "require this Bearer key (better: the CRUMB_API_KEY environment variable, which no process list shows)" },
    { flags: "--cors <origins>", description: "origins allowed by CORS, comma-separated, or *", defaultLabel: "none without --api-key, any with one" },
    CHAT_TEMPLATE_FLAG,
    TOKENIZER_FLAG,
    ...engineFlags("auto"),
    { flags: "--parallel <n>", description: "requests generating at once", default: 1, parse: integerValue({ min: 1, max: 64 }) },
    { flags: "--queue <n>", description: "requests waiting at most (then 503)", default: 16, parse: integerValue({ min: 0, max: 100_000 }) },
    { flags: "--pooling <mode>", description: "embedding pooling: mean or last", defaultLabel: "the model's own, else mean", parse: choiceValue(["mean", "last"]) },
    { flags: "--grace <seconds>", description: "how long SIGTERM lets running requests finish", default: 10, parse: numberValue({ min: 0, max: 3600 }) },
    // Bun's idle timeout, which enforces it for headers, counts whole seconds up to 255.
    { flags: "--read-timeout <seconds>", description: "time a request's headers and body may take to arrive (408 after)", default: 30, parse: numberValue({ min: 1, max: 255 }) },
    { flags: "--max-connections <n>", description: "requests open at once (then 503)", default: 64, parse: integerValue({ min: 1, max: 100_000 }) },
    { flags: "--max-embed-inputs <n>", description: "embedding inputs per request", default: 256, parse: integerValue({ min: 1, max: 1_000_000 }) },
    { flags: "--max-embed-tokens <n>", description: "embedding tokens per request", default: 32768, parse: integerValue({ min: 1, max: 1 << 30 }) },
  ],
  examples: [
    "crumb serve smol.q4",
    "CRUMB_API_KEY=secret crumb serve smol.q4 --host 0.0.0.0 --port 8080 -c 2048",
    `curl localhost:8080/v1/chat/completions -H 'Content-Type: application/json' -d '{"messages":[{"role":"user","content":"Hi"}]}'`,
  ],
  notes: "Without a model it serves CRUMB_MODEL, else the newest model in the local cache (crumb pull).",
};

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
  /** Origins allowed by CORS; undefined: none without an API key, any with one. */
  readonly cors?: readonly string[];
  /** Seconds a request's headers and body may take to arrive. */
  readonly readTimeoutSeconds: number;
  readonly maxConnections: number;
  readonly maxEmbedInputs: number;
  readonly maxEmbedTokens: number;
}

/**
 * The most recent model in the local cache ($CRUMB_CACHE, else ~/.cache/crumb/models, where
 * `crumb pull` stores {org}--{name}/{commit}/ snapshots): the newest snapshot directory
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

const NO_MODEL = "no model given, CRUMB_MODEL is not set and the local cache holds none; get one: " +
  "crumb pull HuggingFaceTB/SmolLM2-135M-Instruct (prints the directory), crumb quantize <that directory> --bits 4 -o model.q4, crumb serve model.q4";

export function parseServeArgs(argv: readonly string[], env: Record<string, string | undefined> = process.env): ServeConfig & { warnings: readonly string[] } {
  const { options, args, warnings } = parseCommand(SERVE_COMMAND, argv);
  const model = modelArgument(args[0], options.model, "serve") ?? (env.CRUMB_MODEL || undefined) ?? newestCachedModel(env);
  if (model === undefined) throw new InvalidArgumentError("model", NO_MODEL);
  checkModelPath(model);
  const template = options.chatTemplate as string | undefined;
  const templateProblem = template === undefined ? undefined : pathProblem(template);
  if (templateProblem !== undefined) throw new UsageError("--chat-template", `chat template file ${template} ${templateProblem}`);
  return {
    model,
    tokenizer: options.tokenizer as string | undefined,
    chatTemplate: template,
    hostname: String(options.host),
    port: options.port as number,
    apiKey: (options.apiKey as string | undefined) ?? (env.CRUMB_API_KEY || undefined),
    threads: options.threads as number | undefined,
    kv: options.kv as string,
    kvBudget: options.kvBudget as number | undefined,
    contextLength: options.ctxSize as number | undefined,
    parallel: options.parallel as number,
    queueDepth: options.queue as number,
    pooling: options.pooling as Pooling | undefined,
    graceSeconds: options.grace as number,
    cors: corsOrigins(options.cors as string | undefined),
    readTimeoutSeconds: options.readTimeout as number,
    maxConnections: options.maxConnections as number,
    maxEmbedInputs: options.maxEmbedInputs as number,
    maxEmbedTokens: options.maxEmbedTokens as number,
    warnings,
  };
}

/** `--cors a,b`: the origins, each an http(s) origin or "*". */
function corsOrigins(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const origins = value.split(",").map((o) => o.trim()).filter((o) => o !== "");
  for (const origin of origins) {
    if (origin !== "*" && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new UsageError("--cors", `--cors takes origins such as https://app.example.com or *, separated by commas; got "${origin}"`);
    }
  }
  if (origins.length === 0) throw new UsageError("--cors", "--cors needs at least one origin (or *)");
  return origins;
}

/** Binds the port, turning the runtimes' errors into one ListenError line. */
async function listen(app: ReturnType<typeof createApp>, hostname: string, port: number, readTimeoutSeconds: number): Promise<Listener> {
  const where = `${hostname}:${port}`;
  try {
    // Bun reports a host that does not resolve as a port in use: look it up first.
    await lookup(hostname);
  } catch (cause) {
    throw new ListenError(hostname, port, `cannot listen on ${where}: host ${hostname} does not resolve; use an address of this machine such as 127.0.0.1 or 0.0.0.0 (--host)`, { cause });
  }
  try {
    if ("Deno" in globalThis) return await (await import("../server/entry-deno.ts")).listenDeno(app, { hostname, port });
    return await (await import("../server/entry-bun.ts")).listenBun(app, { hostname, port, readTimeoutSeconds });
  } catch (cause) {
    const code = (cause as { code?: string }).code;
    if (code === "EADDRINUSE") {
      throw new ListenError(hostname, port, `cannot listen on ${where}: the port is in use; stop the other server or choose another with --port (0 picks a free one)`, { cause });
    }
    if (code === "EADDRNOTAVAIL") {
      throw new ListenError(hostname, port, `cannot listen on ${where}: ${hostname} is not an address of this machine; use 127.0.0.1 or 0.0.0.0 (--host)`, { cause });
    }
    if (code === "EACCES") {
      throw new ListenError(hostname, port, `cannot listen on ${where}: permission denied (ports below 1024 need privileges); choose a port above 1023 with --port`, { cause });
    }
    throw new ListenError(hostname, port, `cannot listen on ${where}: ${(cause as Error).message}`, { cause });
  }
}

/** Serves until SIGTERM/SIGINT; resolves after a clean shutdown. */
export async function runServe(argv: readonly string[], io: CliIo): Promise<number> {
  const config = parseServeArgs(argv);
  const log = stderrLog(io, "crumb serve: ");
  for (const warning of config.warnings) log.line(warning);
  const chatTemplate = config.chatTemplate === undefined ? undefined : readFileSync(config.chatTemplate, "utf8");
  // Loading starts once the port is bound, so a port in use fails before any model work.
  let bound!: () => void;
  const loading = new Promise<void>((resolve) => (bound = resolve)).then(() => loadModelForCli(config.model, {
    chat: true,
    tokenizer: config.tokenizer,
    contextLength: config.contextLength,
    threads: config.threads ?? defaultThreads(),
    kv: config.kv as KvType,
    kvBudget: config.kvBudget,
    chatTemplate,
  }, log)).then((loaded) => loaded.engine);
  // The app reports a failure to load ("model failed to load: ..."), once; this keeps the
  // rejection from counting as unhandled meanwhile.
  loading.catch(() => {});
  const queue = createRequestQueue({ parallel: config.parallel, depth: config.queueDepth });
  const app = createApp(loading, {
    apiKey: config.apiKey,
    queue,
    pooling: config.pooling,
    // The app's lines (access log, "model failed to load") carry their own wording.
    log: (line) => io.stderr(`${line}\n`),
    cors: config.cors,
    readTimeoutMs: config.readTimeoutSeconds * 1000,
    maxConnections: config.maxConnections,
    maxEmbedInputs: config.maxEmbedInputs,
    maxEmbedTokens: config.maxEmbedTokens,
  });
  const listener = await listen(app, config.hostname, config.port, config.readTimeoutSeconds);
  log.line(`listening on ${listener.url} (GET /health answers 200 once the model is ready)${config.apiKey === undefined ? "" : ", API key required"}`);
  bound();
  const code = await new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.line(`${signal}: finishing ${queue.running} running request(s), refusing new ones (grace ${config.graceSeconds} s)`);
      queue.close();
      await queue.drain(config.graceSeconds * 1000);
      // Give cancelled streams a moment to send their last frame, then close everything.
      const timer = new AbortController();
      await Promise.race([listener.stop(false), delay(1000, undefined, { signal: timer.signal }).catch(() => {})]);
      timer.abort();
      await listener.stop(true).catch(() => {});
      resolve(0);
    };
    process.on("SIGTERM", () => void shutdown("SIGTERM"));
    process.on("SIGINT", () => void shutdown("SIGINT"));
    // A server that can never answer should not keep running (the app has said why).
    loading.catch(() => {
      stopping = true;
      listener.stop(true).finally(() => resolve(1));
    });
  });
  if (code === 0) log.line("stopped");
  return code;
}
