/**
 * Calibration and evaluation token streams: the built-in texts (calibration-default.txt and
 * evaluation-default.txt, different prose so the report never scores what calibration saw)
 * or a user's file, tokenised with the model's own tokenizer. A model without a tokenizer
 * (in-memory test models) gets a seeded pseudo-random token stream instead.
 */
import { readFileSync } from "node:fs";
import { createRandom } from "../runtime/engine/sampler.ts";
import type { ModelSource } from "../runtime/models/types.ts";
import { resolveModel } from "../runtime/models/registry.ts";
import { createTokenizer } from "../runtime/tokenizer/index.ts";

export function defaultCalibrationText(): string {
  return readFileSync(new URL("./calibration-default.txt", import.meta.url), "utf8");
}

export function defaultEvaluationText(): string {
  return readFileSync(new URL("./evaluation-default.txt", import.meta.url), "utf8");
}

/** At most `limit` tokens of `text` (BOS first when the tokenizer adds one), or synthetic ids. */
export function tokenStream(source: ModelSource, text: string, limit: number, seed: number): number[] {
  if (source.tokenizer !== undefined) return createTokenizer(source.tokenizer).encode(text).slice(0, limit);
  const { args } = resolveModel(source.config);
  const random = createRandom(seed);
  return Array.from({ length: limit }, () => Math.floor(random() * args.vocabSize));
}
