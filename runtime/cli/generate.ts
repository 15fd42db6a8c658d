/**
 * `crumb generate <model> [--tokenizer F] [-p PROMPT] [-n N] [--temperature T] [--seed S]
 * [--top-k K] [--top-p P] [--min-p P] [--ctx N] [--threads N] [--kv f32|f16|q8|q4|xquant|xquant-cl|auto] [--kv-budget BYTES] [--session FILE]`: prints only the
 * generated text on stdout (streamed, never broken UTF-8) and its statistics on stderr.
 * Packed crumb files run on the WASM engine; source checkpoints (HF directory, .gguf,
 * llama2.c .bin) on the fp32 reference engine.
 */
import { existsSync } from "node:fs";
import { InvalidArgumentError } from "../errors.ts";
import { loadEngine } from "../engine/load-engine.ts";
import { KV_TYPES, type KvType } from "../engine/wasm-backend.ts";
import { parseBytes } from "../engine/kv-cache/auto.ts";
import { defaultThreads } from "../threads/pool.ts";
import { numberOption, parseCommandLine } from "./args.ts";

export const GENERATE_USAGE =
  "usage: bun run generate <model.q4 | model dir | model.gguf | model.bin> [--tokenizer <file>] [-p <prompt>] [-n <max tokens>] " +
  "[--temperature <t>] [--seed <s>] [--top-k <k>] [--top-p <p>] [--min-p <p>] [--ctx <positions>] [--threads <n>] " +
  "[--kv f32|f16|q8|q4|xquant|xquant-cl|auto] [--kv-budget <bytes, e.g. 64MB>] [--session <file>]";

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

export async function runGenerate(argv: string[], io: CliIo): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, {
    tokenizer: { type: "string" },
    prompt: { type: "string", short: "p", default: "" },
    "max-tokens": { type: "string", short: "n", default: "256" },
    temperature: { type: "string", short: "t", default: "0.8" },
    seed: { type: "string", short: "s" },
    "top-k": { type: "string", default: "40" },
    "top-p": { type: "string", default: "0.95" },
    "min-p": { type: "string", default: "0.05" },
    ctx: { type: "string" },
    threads: { type: "string" },
    kv: { type: "string", default: "f16" },
    "kv-budget": { type: "string" },
    session: { type: "string" },
  }, GENERATE_USAGE);
  if (positionals.length !== 1) {
    throw new InvalidArgumentError("model", `give exactly one model path, got ${positionals.length}\n${GENERATE_USAGE}`);
  }
  const modelPath = positionals[0];
  if (!existsSync(modelPath)) {
    throw new InvalidArgumentError("model", `model path "${modelPath}" does not exist\n${GENERATE_USAGE}`);
  }
  const maxTokens = numberOption(values["max-tokens"], "-n", { min: 0, integer: true })!;
  const sampling = {
    temperature: numberOption(values.temperature, "--temperature", { min: 0, max: 100 }),
    seed: numberOption(values.seed, "--seed", { min: 0, max: 2 ** 32 - 1, integer: true }),
    topK: numberOption(values["top-k"], "--top-k", { min: 0, integer: true }),
    topP: numberOption(values["top-p"], "--top-p", { min: 0, max: 1 }),
    minP: numberOption(values["min-p"], "--min-p", { min: 0, max: 1 }),
  };
  const contextLength = numberOption(values.ctx, "--ctx", { min: 1, integer: true });
  const threads = numberOption(values.threads, "--threads", { min: 1, max: 256, integer: true }) ?? defaultThreads();
  const kv = String(values.kv);
  if (!(KV_TYPES as readonly string[]).includes(kv)) {
    throw new InvalidArgumentError("kv", `--kv must be one of ${KV_TYPES.join(", ")}, got "${kv}"`);
  }

  const loadStart = performance.now();
  const engine = await loadEngine(modelPath, {
    tokenizer: values.tokenizer as string | undefined,
    contextLength,
    threads,
    kv: kv as KvType,
    kvBudget: values["kv-budget"] === undefined ? undefined : parseBytes(String(values["kv-budget"])),
  });
  const session = values.session as string | undefined;
  const restored = session !== undefined && existsSync(session) ? await engine.restoreSession(session) : 0;
  const loadMs = performance.now() - loadStart;

  const start = performance.now();
  let firstTokenMs = 0;
  let promptTokens = 0;
  let count = 0;
  for await (const event of engine.generate(String(values.prompt), { ...sampling, maxTokens })) {
    if (event.type === "done") {
      promptTokens = event.usage.promptTokens;
      count = event.usage.completionTokens;
      break;
    }
    if (event.type === "token" && firstTokenMs === 0) firstTokenMs = performance.now() - start;
    io.stdout(event.text);
  }
  const seconds = (performance.now() - start) / 1000;
  const decodeSeconds = seconds - firstTokenMs / 1000;
  io.stderr(
    `\n[crumb] ${count} tokens in ${seconds.toFixed(2)} s: ${(count > 1 ? (count - 1) / decodeSeconds : 0).toFixed(1)} tokens/s decode; ` +
      `prompt ${promptTokens} tokens, first token after ${firstTokenMs.toFixed(0)} ms; load ${loadMs.toFixed(0)} ms (${engine.backendName})\n`,
  );
  if (session !== undefined) {
    const bytes = await engine.saveSession(session);
    io.stderr(`[crumb] session ${session}: restored ${restored} tokens, saved ${bytes} bytes\n`);
  }
  await engine.dispose();
}
