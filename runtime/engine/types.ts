/**
 * The engine's public contract, shared by the CLIs and the HTTP server: a loaded model with
 * its tokenizer that generates (an async generator of token ids and text deltas) and embeds.
 * Backends (the fp32 reference engine, the WASM engine for packed files) sit behind it.
 */
import type { CrumbTokenizer } from "../tokenizer/tokenizer.ts";
import type { SamplingOptions } from "./sampler.ts";
import type { ModelArgs } from "../models/registry.ts";

import type { ChatMessage } from "../tokenizer/chat-template.ts";
export type { ChatMessage };

export interface GenerateOptions extends SamplingOptions {
  /** New tokens at most; default: what fits the context after the prompt. */
  readonly maxTokens?: number;
  /** Generation ends before any of these strings; they are not emitted. */
  readonly stop?: readonly string[];
  /** > 1 discourages repeating tokens already in prompt or output (llama.cpp repeat_penalty). */
  readonly repetitionPenalty?: number;
  /** OpenAI presence_penalty in [-2, 2]: subtracted once from every seen token's logit. */
  readonly presencePenalty?: number;
  /** OpenAI frequency_penalty in [-2, 2]: subtracted per occurrence. */
  readonly frequencyPenalty?: number;
  /** Report the sampled token's log probability (and the top N alternatives). */
  readonly logprobs?: boolean;
  readonly topLogprobs?: number;
  /** Aborting stops generation within one slice: a prefill block (PREFILL_SLICE_TOKENS) or one token. */
  readonly signal?: AbortSignal;
  /** Chat only: tool definitions handed to the chat template. */
  readonly tools?: readonly unknown[];
  /** Chat only: named template ("default", "tool_use"); default picks by tools. */
  readonly chatTemplate?: string;
  /** Ends generation on EOS/end-of-turn tokens (default true). */
  readonly stopAtEos?: boolean;
  /**
   * Restricts the next token (JSON mode): called with the text generated so far, returns
   * the ids allowed next, or undefined for no restriction.
   */
  readonly constrain?: (generatedText: string) => ((id: number) => boolean) | undefined;
}

export interface TokenLogprob {
  readonly id: number;
  readonly token: string;
  readonly logprob: number;
  readonly top: readonly { id: number; token: string; logprob: number }[];
}

export type FinishReason = "stop" | "length" | "abort";

export interface Usage {
  readonly promptTokens: number;
  readonly completionTokens: number;
}

export type GenerateEvent =
  | { readonly type: "token"; readonly id: number; readonly text: string; readonly logprob?: TokenLogprob }
  /** Text released at the end that no single token produced (held-back bytes or stop prefix). */
  | { readonly type: "text"; readonly text: string }
  | { readonly type: "done"; readonly finishReason: FinishReason; readonly usage: Usage; readonly text: string };

export type Pooling = "mean" | "last";

export interface Engine {
  /** Model id reported by /v1/models (file or directory name). */
  readonly modelId: string;
  readonly args: ModelArgs;
  readonly tokenizer: CrumbTokenizer;
  readonly contextLength: number;
  /** "chatml" when the model ships no chat template and ChatML stands in for it. */
  readonly chatTemplateFallback?: "chatml";
  /** Renders messages with the model's chat template (generation prompt appended). */
  applyChatTemplate(messages: readonly ChatMessage[], options?: { tools?: readonly unknown[]; chatTemplate?: string }): string;
  /** Text prompts are tokenized with special tokens (BOS); messages go through the chat template. */
  generate(prompt: string | readonly number[] | readonly ChatMessage[], options?: GenerateOptions): AsyncGenerator<GenerateEvent>;
  /**
   * One L2-normalised vector per input (text, tokenized with special tokens, or token ids taken
   * as they are), pooled over the final hidden states. Runs in slices of a prefill block; when
   * `signal` aborts it stops before the next slice with a CancelledError.
   */
  embed(inputs: readonly (string | readonly number[])[], options?: { pooling?: Pooling; signal?: AbortSignal }): Promise<Float32Array[]>;
  /**
   * Writes the cached conversation (tokens and KV cache in its compact form) to a file;
   * returns its size. Only backends with a savable cache (the WASM engine) support it.
   */
  saveSession(path: string): Promise<number>;
  /** Restores a saved conversation; a prompt that extends it then prefills only what is new. */
  restoreSession(path: string): Promise<number>;
  /** Embedding pooling used when a request names none (the model's own, else "mean"). */
  readonly pooling: Pooling;
  /** Which backend runs the model ("wasm, 2 threads, kv f16", "reference fp32"). */
  readonly backendName: string;
  /** Frees worker threads and caches. */
  dispose(): Promise<void>;
}
