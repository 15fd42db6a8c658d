/**
 * `crumb generate <model> [--tokenizer F] [-p PROMPT] [-n N] [--temperature T] [--seed S]
 * [--top-k K] [--top-p P] [--min-p P] [--ctx N]`: prints only the generated text on stdout
 * (streamed, never broken UTF-8) and its statistics on stderr. Source checkpoints (HF
 * directory, .gguf, llama2.c .bin) run on the fp32 reference engine.
 */
import { existsSync } from "node:fs";
import { InvalidArgumentError, TokenizerError } from "../errors.ts";
import { importModel } from "../../quantizer/import/index.ts";
import { createDetokenizer, createTokenizer } from "../tokenizer/index.ts";
import { createReferenceEngine } from "../engine/reference-engine.ts";
import { generateTokens } from "../engine/generate-tokens.ts";
import { createSampler } from "../engine/sampler.ts";
import { numberOption, parseCommandLine } from "./args.ts";

export const GENERATE_USAGE =
  "usage: bun run generate <model dir | model.gguf | model.bin> [--tokenizer <file>] [-p <prompt>] [-n <max tokens>] " +
  "[--temperature <t>] [--seed <s>] [--top-k <k>] [--top-p <p>] [--min-p <p>] [--ctx <positions>]";

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
  }, GENERATE_USAGE);
  if (positionals.length !== 1) {
    throw new InvalidArgumentError("model", `give exactly one model path, got ${positionals.length}\n${GENERATE_USAGE}`);
  }
  const modelPath = positionals[0];
  if (!existsSync(modelPath)) {
    throw new InvalidArgumentError("model", `model path "${modelPath}" does not exist\n${GENERATE_USAGE}`);
  }
  const maxTokens = numberOption(values["max-tokens"], "-n", { min: 0, integer: true })!;
  const sampler = createSampler({
    temperature: numberOption(values.temperature, "--temperature", { min: 0, max: 100 }),
    seed: numberOption(values.seed, "--seed", { min: 0, max: 2 ** 32 - 1, integer: true }),
    topK: numberOption(values["top-k"], "--top-k", { min: 0, integer: true }),
    topP: numberOption(values["top-p"], "--top-p", { min: 0, max: 1 }),
    minP: numberOption(values["min-p"], "--min-p", { min: 0, max: 1 }),
  });
  const contextLength = numberOption(values.ctx, "--ctx", { min: 1, integer: true });

  const loadStart = performance.now();
  const source = await importModel(modelPath, { tokenizer: values.tokenizer as string | undefined });
  if (source.tokenizer === undefined) {
    throw new TokenizerError(`${modelPath} carries no tokenizer; pass one with --tokenizer <tokenizer.json | tokenizer.bin | tokenizer.model>`);
  }
  const tokenizer = createTokenizer(source.tokenizer);
  const engine = createReferenceEngine(source, { contextLength });
  const loadMs = performance.now() - loadStart;

  const promptText = String(values.prompt);
  let promptIds = promptText === "" ? [] : tokenizer.encode(promptText, { addSpecialTokens: true });
  const bos = tokenizer.bosTokenId ?? engine.args.bosTokenId;
  if (promptIds.length === 0) {
    if (bos === undefined) {
      throw new InvalidArgumentError("prompt", "the model has no BOS token to start from: give a prompt with -p");
    }
    promptIds = [bos];
  }
  const stopTokenIds = new Set<number>([...engine.args.eosTokenIds, ...tokenizer.eosTokenIds, ...generationEos(source.generationConfig)]);

  const detokenizer = createDetokenizer(tokenizer);
  const start = performance.now();
  let firstTokenMs = 0;
  let count = 0;
  for (const token of generateTokens(engine, promptIds, { maxTokens, sampler, stopTokenIds: [...stopTokenIds] })) {
    if (count === 0) firstTokenMs = performance.now() - start;
    count++;
    if (stopTokenIds.has(token)) break;
    io.stdout(detokenizer.push(token));
  }
  io.stdout(detokenizer.flush());
  const seconds = (performance.now() - start) / 1000;
  const decodeSeconds = seconds - firstTokenMs / 1000;
  io.stderr(
    `\n[crumb] ${count} tokens in ${seconds.toFixed(2)} s: ${(count > 1 ? (count - 1) / decodeSeconds : 0).toFixed(1)} tokens/s decode; ` +
      `prompt ${promptIds.length} tokens, first token after ${firstTokenMs.toFixed(0)} ms; load ${loadMs.toFixed(0)} ms (reference engine, fp32)\n`,
  );
}

function generationEos(config: Readonly<Record<string, unknown>>): number[] {
  const value = config.eos_token_id;
  const list = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return list.filter((id): id is number => Number.isInteger(id));
}
