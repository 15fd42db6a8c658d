/**
 * The generation loop behind `Engine.generate`: reuse the cached prefix, prefill the rest of
 * the prompt, then per step apply penalties and constraints, sample, detokenize without
 * breaking UTF-8, hold back possible stop strings, and stop on EOS, a stop string, the token
 * budget or an abort.
 *
 * The work runs in slices with a turn of the event loop between them, so a server on the same
 * thread keeps answering (/health, new requests) while a model is busy: the prefill goes in
 * blocks of PREFILL_SLICE_TOKENS tokens, the decode one token at a time, and the abort signal
 * is checked before every slice. A forward call itself stays synchronous.
 */
import { setImmediate } from "node:timers";
import { ContextLengthError, InvalidArgumentError } from "../errors.ts";
import { createDetokenizer } from "../tokenizer/detokenizer.ts";
import type { CrumbTokenizer } from "../tokenizer/tokenizer.ts";
import { applyMask, applyPenalties, checkPenalties, logSoftmax, topEntries } from "./logits-processors.ts";
import { createSampler } from "./sampler.ts";
import { createStopMatcher } from "./stop-strings.ts";
import type { FinishReason, GenerateEvent, GenerateOptions, TokenLogprob } from "./types.ts";

/** What the loop needs from a backend: a KV cache it can extend and rewind. */
export interface SequenceBackend {
  readonly contextLength: number;
  /** Feeds tokens after the cached ones; returns the logits of the last (vocab), valid until the next call. */
  forward(tokens: readonly number[]): Float32Array | Promise<Float32Array>;
  /** Drops cached positions from `pos` on. */
  truncate(pos: number): void;
}

/** Tokens currently in the backend's cache, so a new prompt can reuse their common prefix. */
export interface CachedSequence {
  tokens: number[];
}

/** Lets pending I/O and timers run between two slices of model work. */
export const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Prompt tokens per prefill slice: one kernel block of the WASM engine (its attention and
 * matmuls tile 64 tokens), so slicing costs nothing there; on stories260K's reference engine a
 * slice takes about 20 ms.
 */
export const PREFILL_SLICE_TOKENS = 64;

/** Validates eagerly (throws before any work) and returns the event stream. */
export function startGeneration(
  backend: SequenceBackend,
  cached: CachedSequence,
  tokenizer: CrumbTokenizer,
  promptIds: readonly number[],
  options: GenerateOptions,
  stopTokenIds: ReadonlySet<number>,
): AsyncGenerator<GenerateEvent> {
  if (promptIds.length === 0) {
    throw new InvalidArgumentError("prompt", "the prompt is empty after tokenization: give some text");
  }
  const room = backend.contextLength - promptIds.length;
  const maxTokens = options.maxTokens ?? Math.max(room, 0);
  if (!Number.isInteger(maxTokens) || maxTokens < 0) {
    throw new InvalidArgumentError("max_tokens", `max_tokens must be a non-negative integer, got ${maxTokens}`);
  }
  if (promptIds.length + maxTokens > backend.contextLength || room <= 0) {
    throw new ContextLengthError(promptIds.length, maxTokens, backend.contextLength);
  }
  const topLogprobs = options.topLogprobs ?? 0;
  if (!Number.isInteger(topLogprobs) || topLogprobs < 0 || topLogprobs > 20) {
    throw new InvalidArgumentError("top_logprobs", `top_logprobs must be an integer between 0 and 20, got ${topLogprobs}`);
  }
  checkPenalties(options);
  const sampler = createSampler(options);
  return run();

  async function* run(): AsyncGenerator<GenerateEvent> {
    const stopAtEos = options.stopAtEos ?? true;
    // Prime with the prompt's tail so the first token decodes in context (SentencePiece
    // drops a leading space only at the start of a text, not after a prompt).
    const detokenizer = createDetokenizer(tokenizer, { skipSpecialTokens: true });
    for (const id of promptIds.slice(-4)) detokenizer.push(id);
    const stopMatcher = createStopMatcher(options.stop ?? []);
    const counts = new Map<number, number>();
    let text = "";
    let produced = 0;
    let finishReason: FinishReason = "length";

    // Reuse the longest cached prefix, but always feed at least one token to get logits.
    let common = 0;
    const limit = Math.min(cached.tokens.length, promptIds.length - 1);
    while (common < limit && cached.tokens[common] === promptIds[common]) common++;
    backend.truncate(common);
    cached.tokens.length = common;
    let logits: Float32Array | undefined;
    for (let at = common; at < promptIds.length; at += PREFILL_SLICE_TOKENS) {
      await yieldToEventLoop();
      if (options.signal?.aborted) break;
      logits = await forwardOrForget(promptIds.slice(at, at + PREFILL_SLICE_TOKENS));
    }
    if (logits === undefined) {
      yield { type: "done", finishReason: "abort", usage: { promptTokens: promptIds.length, completionTokens: 0 }, text: "" };
      return;
    }

    while (produced < maxTokens) {
      if (options.signal?.aborted) {
        finishReason = "abort";
        break;
      }
      applyPenalties(logits, counts, options);
      const allowed = options.constrain?.(text);
      if (allowed !== undefined) applyMask(logits, allowed);
      const token = sampler.sample(logits);
      produced++;
      if (stopAtEos && stopTokenIds.has(token)) {
        finishReason = "stop";
        break;
      }
      counts.set(token, (counts.get(token) ?? 0) + 1);
      const logprob = options.logprobs ? tokenLogprob(tokenizer, logits, token, topLogprobs) : undefined;
      const { emit, stopped } = stopMatcher.push(detokenizer.push(token));
      text += emit;
      yield { type: "token", id: token, text: emit, logprob };
      if (stopped) {
        finishReason = "stop";
        break;
      }
      if (produced === maxTokens) break;
      await yieldToEventLoop();
      logits = await forwardOrForget([token]);
    }
    if (finishReason !== "stop") {
      const { emit, stopped } = stopMatcher.push(detokenizer.flush());
      const rest = stopped ? emit : emit + stopMatcher.flush();
      if (stopped) finishReason = "stop";
      if (rest.length > 0) {
        text += rest;
        yield { type: "text", text: rest };
      }
    }
    yield { type: "done", finishReason, usage: { promptTokens: promptIds.length, completionTokens: produced }, text };
  }

  /** Extends the cache; if the backend fails midway, forgets the cache rather than trust it. */
  async function forwardOrForget(tokens: readonly number[]): Promise<Float32Array> {
    try {
      const logits = await backend.forward(tokens);
      cached.tokens.push(...tokens);
      return logits;
    } catch (error) {
      cached.tokens.length = 0;
      backend.truncate(0);
      throw error;
    }
  }
}

function tokenLogprob(tokenizer: CrumbTokenizer, logits: Float32Array, id: number, top: number): TokenLogprob {
  const logprobs = logSoftmax(logits);
  const tokenText = (i: number) => tokenizer.decode([i]);
  return {
    id,
    token: tokenText(id),
    logprob: logprobs[id],
    top: topEntries(logprobs, top).map(({ id: i, value }) => ({ id: i, token: tokenText(i), logprob: value })),
  };
}
