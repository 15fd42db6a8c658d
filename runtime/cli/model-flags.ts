/**
 * The flags several commands share, spelled as llama.cpp spells them where the meaning is the
 * same (`-m/--model`, `-c/--ctx-size`, `-t/--threads`, `--temp`, `-n/--n-predict`, `-s/--seed`),
 * with crumb's earlier spellings kept as aliases (`--ctx`, `--temperature`, `--max-tokens`).
 */
import { UsageError } from "../errors.ts";
import { KV_TYPES } from "../engine/wasm-backend.ts";
import type { FlagSpec } from "./command-line.ts";
import { bytesValue, choiceValue, integerValue, numberValue, pathValue } from "./flag-values.ts";
import { userPath } from "./user-path.ts";

export const MODEL_FLAG: FlagSpec = {
  flags: "-m, --model <path>",
  description: "the model, instead of the positional argument",
  parse: pathValue,
};

export const TOKENIZER_FLAG: FlagSpec = {
  flags: "--tokenizer <file>",
  description: "tokenizer for a llama2.c .bin (tokenizer.bin), or to replace the model's (tokenizer.json, tokenizer.model)",
  parse: pathValue,
};

export const CHAT_TEMPLATE_FLAG: FlagSpec = {
  flags: "--chat-template <file>",
  description: "Jinja chat template file replacing the model's own (models without one fall back to ChatML)",
  parse: pathValue,
};

export function engineFlags(kvDefault: "f16" | "auto"): FlagSpec[] {
  return [
    { flags: "-c, --ctx-size <n>", description: "context length in positions", defaultLabel: "the model's, at most 4096", aliases: ["--ctx"], parse: integerValue({ min: 1, max: 1 << 20 }) },
    { flags: "-t, --threads <n>", description: "worker threads for the kernels", defaultLabel: "all cores", parse: integerValue({ min: 1, max: 256 }) },
    { flags: "--kv <mode>", description: `attention cache: ${KV_TYPES.join(", ")}`, default: kvDefault, parse: choiceValue(KV_TYPES) },
    { flags: "--kv-budget <bytes>", description: "memory the cache may take (with --kv auto), e.g. 64MB", parse: bytesValue },
  ];
}

export const SAMPLING_FLAGS: readonly FlagSpec[] = [
  { flags: "--temp <t>", description: "sampling temperature, 0 for greedy", default: 0.8, aliases: ["--temperature"], parse: numberValue({ min: 0, max: 100 }) },
  { flags: "--top-k <k>", description: "keep the k most likely tokens (0: all)", default: 40, parse: integerValue({ min: 0, max: 1 << 24 }) },
  { flags: "--top-p <p>", description: "nucleus sampling threshold", default: 0.95, parse: numberValue({ min: 0, max: 1 }) },
  { flags: "--min-p <p>", description: "drop tokens below p times the top probability", default: 0.05, parse: numberValue({ min: 0, max: 1 }) },
  { flags: "-s, --seed <n>", description: "sampling seed, for a reproducible run", defaultLabel: "random", parse: integerValue({ min: 0, max: 2 ** 32 - 1 }) },
];

/** The model path from the positional argument or -m (not both). */
export function modelArgument(positional: string | undefined, flag: unknown, command: string): string | undefined {
  if (positional !== undefined && flag !== undefined) {
    throw new UsageError("--model", `give the model once, as an argument or with -m, not both (see crumb ${command} --help)`);
  }
  return (flag as string | undefined) ?? (positional === undefined ? undefined : userPath(positional));
}

/** Sampling options for Engine.generate from the parsed flags. */
export function samplingOptions(options: Record<string, unknown>) {
  return {
    temperature: options.temp as number,
    topK: options.topK as number,
    topP: options.topP as number,
    minP: options.minP as number,
    seed: options.seed as number | undefined,
  };
}
