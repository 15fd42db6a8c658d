/**
 * `crumb generate <model> [-p PROMPT | -f FILE | < stdin] [flags]`: continues a raw prompt and
 * prints only the generated text on stdout (streamed, never broken UTF-8), its statistics on
 * stderr, also when Ctrl-C stops it early. Packed crumb files and .gguf files run on the WASM
 * engine; other source checkpoints (HF directory, llama2.c .bin) on the fp32 reference engine.
 */
import { existsSync, readFileSync } from "node:fs";
import { UsageError } from "../errors.ts";
import type { Engine, GenerateOptions } from "../engine/types.ts";
import type { KvType } from "../engine/wasm-backend.ts";
import { defaultThreads } from "../threads/pool.ts";
import { type CommandSpec, parseCommand } from "./command-line.ts";
import { integerValue, pathValue } from "./flag-values.ts";
import type { CliIo } from "./io.ts";
import { type CliLog, loadModelForCli } from "./load-model.ts";
import { engineFlags, MODEL_FLAG, modelArgument, SAMPLING_FLAGS, samplingOptions, TOKENIZER_FLAG } from "./model-flags.ts";
import { pathProblem } from "../format/path-problem.ts";

export const GENERATE_COMMAND: CommandSpec = {
  name: "generate",
  summary: "continue a raw prompt (no chat template): text on stdout, statistics on stderr",
  arguments: [{ name: "model", description: "model.q4 (crumb quantize), model.gguf, a Hugging Face directory or a llama2.c .bin" }],
  flags: [
    MODEL_FLAG,
    { flags: "-p, --prompt <text>", description: "the prompt", defaultLabel: "stdin when it is piped, else empty (start of text)" },
    { flags: "-f, --file <path>", description: "read the prompt from a file", parse: pathValue },
    { flags: "-n, --n-predict <n>", description: "new tokens at most (-1: until the context is full)", default: 256, aliases: ["--max-tokens"], parse: integerValue({ min: -1, max: 1 << 24 }) },
    ...SAMPLING_FLAGS,
    ...engineFlags("f16"),
    TOKENIZER_FLAG,
    { flags: "--session <file>", description: "restore the conversation saved there (if it exists) and save it again afterwards", parse: pathValue },
  ],
  examples: [
    'crumb generate smol.q4 -p "The capital of France is" -n 32',
    "crumb generate stories260K.bin --tokenizer tok512.bin -n 180 --temp 0",
    "echo 'Once upon a time' | crumb generate model.gguf",
  ],
};

export function stderrLog(io: CliIo, prefix: string): CliLog {
  return { line: (text) => io.stderr(`${prefix}${text}\n`), raw: (text) => io.stderr(text), isTTY: io.stderrIsTTY };
}

/** The prompt from -p, -f or piped stdin (usage error when more than one is given). */
export async function promptFrom(options: Record<string, unknown>, io: CliIo, command: string): Promise<string | undefined> {
  if (options.prompt !== undefined && options.file !== undefined) {
    throw new UsageError("--file", `give the prompt once, with -p or -f, not both (see crumb ${command} --help)`);
  }
  if (options.file !== undefined) {
    const file = String(options.file);
    const problem = pathProblem(file);
    if (problem !== undefined) throw new UsageError("--file", `prompt file ${file} ${problem}`);
    return readFileSync(file, "utf8");
  }
  if (options.prompt !== undefined) return String(options.prompt);
  return undefined;
}

/** Statistics of a generation so far, for stderr. */
export function statisticsLine(s: { tokens: number; promptTokens: number; seconds: number; firstTokenMs: number; interrupted: boolean }): string {
  const decodeSeconds = s.seconds - s.firstTokenMs / 1000;
  const rate = s.tokens > 1 && decodeSeconds > 0 ? (s.tokens - 1) / decodeSeconds : 0;
  return `${s.interrupted ? "interrupted: " : ""}${s.tokens} tokens in ${s.seconds.toFixed(2)} s: ${rate.toFixed(1)} tokens/s decode; ` +
    `prompt ${s.promptTokens} tokens, first token after ${s.firstTokenMs.toFixed(0)} ms`;
}

/** Streams one generation to `write`; returns its statistics. Stops early when `signal` aborts. */
export async function streamGeneration(
  engine: Engine,
  prompt: Parameters<Engine["generate"]>[0],
  options: GenerateOptions,
  write: (text: string) => void,
): Promise<{ tokens: number; promptTokens: number; seconds: number; firstTokenMs: number; interrupted: boolean; text: string }> {
  const start = performance.now();
  let firstTokenMs = 0;
  let tokens = 0;
  let promptTokens = 0;
  let interrupted = false;
  let text = "";
  for await (const event of engine.generate(prompt, options)) {
    if (event.type === "done") {
      promptTokens = event.usage.promptTokens;
      tokens = event.usage.completionTokens;
      interrupted = event.finishReason === "abort";
      break;
    }
    if (event.type === "token" && firstTokenMs === 0) firstTokenMs = performance.now() - start;
    text += event.text;
    write(event.text);
  }
  return { tokens, promptTokens, seconds: (performance.now() - start) / 1000, firstTokenMs, interrupted, text };
}

/** Runs `crumb generate`; resolves with 130 when Ctrl-C stopped it, else 0. */
export async function runGenerate(argv: readonly string[], io: CliIo): Promise<number> {
  const { options, args, warnings } = parseCommand(GENERATE_COMMAND, argv);
  const log = stderrLog(io, "crumb generate: ");
  for (const warning of warnings) log.line(warning);
  const modelPath = modelArgument(args[0], options.model, "generate");
  if (modelPath === undefined) throw new UsageError("model", "give a model: crumb generate <model> (see crumb generate --help)");
  let prompt = await promptFrom(options, io, "generate");
  if (prompt === undefined && !io.stdinIsTTY) prompt = await io.readStdin();
  const predict = options.nPredict as number;

  const { engine, loadMs } = await loadModelForCli(modelPath, {
    chat: false,
    tokenizer: options.tokenizer as string | undefined,
    contextLength: options.ctxSize as number | undefined,
    threads: (options.threads as number | undefined) ?? defaultThreads(),
    kv: options.kv as KvType,
    kvBudget: options.kvBudget as number | undefined,
  }, log);
  try {
    const session = options.session as string | undefined;
    const restored = session !== undefined && existsSync(session) ? await engine.restoreSession(session) : 0;
    const interrupt = new AbortController();
    const stopListening = io.onInterrupt(() => interrupt.abort());
    const stats = await streamGeneration(
      engine,
      prompt ?? "",
      { ...samplingOptions(options), maxTokens: predict < 0 ? undefined : predict, signal: interrupt.signal },
      (text) => io.stdout(text),
    ).finally(stopListening);
    io.stderr(`\n`);
    log.line(`${statisticsLine(stats)}; load ${loadMs.toFixed(0)} ms (${engine.backendName})`);
    if (session !== undefined && !stats.interrupted) {
      const bytes = await engine.saveSession(session);
      log.line(`session ${session}: restored ${restored} tokens, saved ${bytes} bytes`);
    }
    return stats.interrupted ? 130 : 0;
  } finally {
    await engine.dispose();
  }
}
