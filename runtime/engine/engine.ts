/**
 * createEngine: a loaded model behind the `Engine` contract. One sequence runs at a time
 * (a FIFO lock); its KV cache is kept between requests so a prompt that extends the previous
 * one (a chat turn) only prefills the new tokens. Embeddings run in the same slices as a
 * prefill (generate.ts), yielding between them and stopping at the next slice when their signal
 * aborts.
 */
import { basename } from "node:path";
import { CancelledError, InvalidArgumentError, TokenizerError } from "../errors.ts";
import type { ModelSource, TokenizerFiles } from "../models/types.ts";
import type { ModelArgs } from "../models/registry.ts";
import type { ForwardOptions } from "../ops/types.ts";
import type { KvCache } from "./kv-cache/types.ts";
import { modelKey, restoreSession, saveSession } from "./kv-cache/session-file.ts";
import { CHATML_TEMPLATE, renderChat, selectChatTemplate } from "../tokenizer/chat-template.ts";
import { createTokenizer } from "../tokenizer/tokenizer.ts";
import { createReferenceEngine } from "./reference-engine.ts";
import { type CachedSequence, PREFILL_SLICE_TOKENS, type SequenceBackend, startGeneration, yieldToEventLoop } from "./generate.ts";
import type { ChatMessage, Engine, GenerateEvent, GenerateOptions, Pooling } from "./types.ts";

export interface EngineOptions {
  /** Positions per sequence; default the model's maximum, capped at 4096. */
  readonly contextLength?: number;
  /** Name reported by /v1/models; default the file or directory name. */
  readonly modelId?: string;
}

/** What a backend (reference fp32, WASM over a packed file) provides to the engine. */
export interface ModelBackend extends SequenceBackend {
  readonly args: ModelArgs;
  /**
   * Feeds tokens after the cached ones. The result may be a view of the backend's run state
   * (the WASM backend's is), valid until the next call: copy what must outlive it.
   */
  forward(tokens: readonly number[], options?: ForwardOptions): Float32Array | Promise<Float32Array>;
  /** Empties the cache and frees what it holds. */
  reset(): void;
  /** Human-readable description for statistics lines. */
  readonly name: string;
  /** Stops worker threads, if any. */
  dispose?(): Promise<void>;
  /** The cache, when it can be saved to and restored from a session file. */
  readonly cache?: KvCache;
}

/** The model files that travel with the weights. */
export interface ModelMetadata {
  readonly path: string;
  readonly tokenizer: TokenizerFiles | undefined;
  readonly chatTemplates: Readonly<Record<string, string>>;
  readonly generationConfig: Readonly<Record<string, unknown>>;
  /** Embedding pooling the model declares; "mean" when it declares none. */
  readonly pooling?: Pooling;
}

/** A FIFO mutex: `acquire` resolves with the release function once the caller's turn comes. */
function createLock() {
  let tail = Promise.resolve();
  return {
    acquire(): Promise<() => void> {
      let release!: () => void;
      const turn = new Promise<void>((resolve) => (release = resolve));
      const ready = tail.then(() => release);
      tail = tail.then(() => turn);
      return ready;
    },
  };
}

/** An engine over an imported (fp32) checkpoint, on the reference backend. */
export function createEngine(source: ModelSource, options: EngineOptions = {}): Engine {
  const backend = createReferenceEngine(source, { contextLength: options.contextLength });
  return createEngineOn({ ...backend, name: "reference engine, fp32" }, source, options);
}

/** An engine over any backend. */
export function createEngineOn(backend: ModelBackend, source: ModelMetadata, options: EngineOptions = {}): Engine {
  if (source.tokenizer === undefined) {
    throw new TokenizerError(`${source.path} carries no tokenizer; pass one with --tokenizer <tokenizer.json | tokenizer.bin | tokenizer.model>`);
  }
  const tokenizer = createTokenizer(source.tokenizer);
  const cached: CachedSequence = { tokens: [] };
  const lock = createLock();
  const stopTokenIds = new Set<number>([...backend.args.eosTokenIds, ...tokenizer.eosTokenIds, ...eosFrom(source.generationConfig)]);

  const defaultPooling: Pooling = source.pooling ?? "mean";
  // Sessions only restore into the same model file: same config, same file name.
  const sessionKey = modelKey({ args: backend.args, file: basename(source.path) });
  const savableCache = (): KvCache => {
    if (backend.cache === undefined || !("exportState" in backend.cache)) {
      throw new InvalidArgumentError("session", `sessions are saved from packed models on the WASM engine; ${source.path} runs on the ${backend.name}`);
    }
    return backend.cache;
  };

  // A model that ships no chat template gets ChatML, as llama-server does; the engine says so.
  const chatTemplateFallback = Object.keys(source.chatTemplates).length === 0 ? "chatml" as const : undefined;
  const chatTemplates = chatTemplateFallback === undefined ? source.chatTemplates : { default: CHATML_TEMPLATE };
  const applyChatTemplate: Engine["applyChatTemplate"] = (messages, chatOptions = {}) => {
    const tools = chatOptions.tools;
    const template = selectChatTemplate(chatTemplates, chatOptions.chatTemplate, tools !== undefined && tools.length > 0);
    return renderChat(template, {
      messages,
      addGenerationPrompt: true,
      tools,
      bosToken: tokenizer.bosToken,
      eosToken: tokenizer.eosToken,
    });
  };

  const promptIds = (prompt: string | readonly number[] | readonly ChatMessage[], generateOptions: GenerateOptions): number[] => {
    if (typeof prompt === "string") {
      const ids = tokenizer.encode(prompt, { addSpecialTokens: true });
      const bos = tokenizer.bosTokenId ?? backend.args.bosTokenId;
      return ids.length === 0 && bos !== undefined ? [bos] : ids;
    }
    if (prompt.length > 0 && typeof prompt[0] === "number") {
      const ids = prompt as readonly number[];
      for (const id of ids) {
        if (!Number.isInteger(id) || id < 0 || id >= backend.args.vocabSize) {
          throw new InvalidArgumentError("prompt", `token id ${id} is outside the vocabulary [0, ${backend.args.vocabSize})`);
        }
      }
      return [...ids];
    }
    const text = applyChatTemplate(prompt as readonly ChatMessage[], { tools: generateOptions.tools, chatTemplate: generateOptions.chatTemplate });
    // Templates write their own BOS, as transformers' apply_chat_template(tokenize=True) assumes.
    return tokenizer.encode(text, { addSpecialTokens: false });
  };

  return {
    modelId: options.modelId ?? basename(source.path),
    args: backend.args,
    tokenizer,
    contextLength: backend.contextLength,
    applyChatTemplate,
    chatTemplateFallback,

    generate(prompt, generateOptions = {}) {
      const ids = promptIds(prompt, generateOptions);
      const events = startGeneration(backend, cached, tokenizer, ids, generateOptions, stopTokenIds);
      return (async function* locked(): AsyncGenerator<GenerateEvent> {
        const release = await lock.acquire();
        try {
          yield* events;
        } finally {
          release();
        }
      })();
    },

    async embed(inputs, embedOptions = {}) {
      const pooling: Pooling = embedOptions.pooling ?? defaultPooling;
      const signal = embedOptions.signal;
      const width = backend.args.hiddenSize;
      const encoded: number[][] = [];
      for (let i = 0; i < inputs.length; i++) {
        const input = inputs[i];
        // Text is tokenized one input per slice; token ids are taken as they are.
        if (typeof input === "string" && i > 0) await yieldToEventLoop();
        const ids = typeof input === "string" ? tokenizer.encode(input, { addSpecialTokens: true }) : [...input];
        if (ids.length === 0) throw new InvalidArgumentError(`input[${i}]`, `input ${i} is empty; embeddings need some text`);
        if (ids.length > backend.contextLength) {
          throw new InvalidArgumentError(`input[${i}]`, `input ${i} has ${ids.length} tokens, more than the context length ${backend.contextLength}`);
        }
        const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= backend.args.vocabSize);
        if (bad !== undefined) {
          throw new InvalidArgumentError(`input[${i}]`, `input ${i} holds token id ${bad}, outside the vocabulary [0, ${backend.args.vocabSize})`);
        }
        encoded.push(ids);
      }
      const release = await lock.acquire();
      try {
        const vectors: Float32Array[] = [];
        for (const [i, ids] of encoded.entries()) {
          backend.truncate(0);
          cached.tokens.length = 0;
          // Mean: the average of every position's hidden state; last: the final position's.
          const pooled = new Float32Array(width);
          for (let at = 0; at < ids.length; at += PREFILL_SLICE_TOKENS) {
            await yieldToEventLoop();
            if (signal?.aborted) {
              throw new CancelledError(`embeddings cancelled after ${i} of ${encoded.length} inputs: the request was aborted`);
            }
            const block = ids.slice(at, at + PREFILL_SLICE_TOKENS);
            const hidden = await backend.forward(block, { allLogits: pooling === "mean", output: "hidden" });
            if (pooling === "mean") addRows(pooled, hidden, block.length, ids.length);
            else if (at + PREFILL_SLICE_TOKENS >= ids.length) pooled.set(hidden.subarray(0, width));
          }
          vectors.push(normalize(pooled));
        }
        return vectors;
      } finally {
        backend.truncate(0);
        release();
      }
    },

    backendName: backend.name,
    pooling: defaultPooling,

    async saveSession(path) {
      const cache = savableCache();
      const release = await lock.acquire();
      try {
        return saveSession(path, sessionKey, cached.tokens, cache);
      } finally {
        release();
      }
    },

    async restoreSession(path) {
      const cache = savableCache();
      const release = await lock.acquire();
      try {
        cached.tokens = [];
        cached.tokens = restoreSession(path, sessionKey, cache);
        return cached.tokens.length;
      } finally {
        release();
      }
    },

    async dispose() {
      backend.reset();
      cached.tokens.length = 0;
      await backend.dispose?.();
    },
  };
}

/** Adds `rows` hidden vectors, each divided by `total`, to `sum` (a slice of a mean over `total` rows). */
function addRows(sum: Float32Array, hidden: Float32Array, rows: number, total: number): void {
  const width = sum.length;
  for (let r = 0; r < rows; r++) for (let i = 0; i < width; i++) sum[i] += hidden[r * width + i] / total;
}

function normalize(v: Float32Array): Float32Array {
  let norm = 0;
  for (const x of v) norm += x * x;
  norm = Math.sqrt(norm) || 1;
  return v.map((x) => x / norm);
}

function eosFrom(config: Readonly<Record<string, unknown>>): number[] {
  const value = config.eos_token_id;
  const list = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return list.filter((id): id is number => Number.isInteger(id));
}
