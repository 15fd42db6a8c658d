/**
 * The plain decoding loop: prefill the prompt, then sample one token at a time until a stop
 * token or the token budget. Works with any engine exposing `forward` over a KV cache.
 */
import { ContextLengthError, InvalidArgumentError } from "../errors.ts";
import type { Sampler } from "./sampler.ts";

export interface StepEngine {
  readonly contextLength: number;
  forward(tokens: readonly number[]): Float32Array;
}

export interface GenerateTokensOptions {
  readonly maxTokens: number;
  readonly sampler: Sampler;
  /** Generation ends after emitting one of these (the stop token is yielded). */
  readonly stopTokenIds?: readonly number[];
}

/** Yields generated token ids. The prompt must hold at least one token (e.g. BOS). */
export function* generateTokens(
  engine: StepEngine,
  promptIds: readonly number[],
  options: GenerateTokensOptions,
): Generator<number> {
  if (promptIds.length === 0) {
    throw new InvalidArgumentError("prompt", "the prompt is empty: give at least one token (the model's BOS token)");
  }
  if (!Number.isInteger(options.maxTokens) || options.maxTokens < 0) {
    throw new InvalidArgumentError("max_tokens", `max tokens must be a non-negative integer, got ${options.maxTokens}`);
  }
  if (promptIds.length + options.maxTokens > engine.contextLength) {
    throw new ContextLengthError(promptIds.length, options.maxTokens, engine.contextLength);
  }
  const stop = new Set(options.stopTokenIds ?? []);
  let logits = engine.forward(promptIds);
  for (let produced = 0; produced < options.maxTokens; produced++) {
    const token = options.sampler.sample(logits);
    yield token;
    if (stop.has(token) || produced + 1 === options.maxTokens) return;
    logits = engine.forward([token]);
  }
}
