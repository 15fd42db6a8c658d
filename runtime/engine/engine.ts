/**
 * createEngine: a loaded model behind the `Engine` contract. One sequence runs at a time
 * (a FIFO lock); its KV cache is kept between requests so a prompt that extends the previous
 * one (a chat turn) only prefills the new tokens.
 */
import { basename } from "node:path";
import { InvalidArgumentError, TokenizerError } from "../errors.ts";
import type { ModelSource, TokenizerFiles } from "../models/types.ts";
import type { ModelArgs } from "../models/registry.ts";
import type { ForwardOptions } from "../ops/types.ts";
import type { KvCache } from "./kv-cache/types.ts";
import { modelKey, restoreSession, saveSession } from "./kv-cache/session-file.ts";
import { renderChat, selectChatTemplate } from "../tokenizer/chat-template.ts";
import { createTokenizer } from "../tokenizer/tokenizer.ts";
import { createReferenceEngine } from "./reference-engine.ts";
import { type CachedSequence, type SequenceBackend, startGeneration } from "./generate.ts";
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

  const applyChatTemplate: Engine["applyChatTemplate"] = (messages, chatOptions = {}) => {
    const tools = chatOptions.tools;
    const template = selectChatTemplate(source.chatTemplates, chatOptions.chatTemplate, tools !== undefined && tools.length > 0);
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
      const encoded = inputs.map((text, i) => {
        const ids = tokenizer.encode(text, { addSpecialTokens: true });
        if (ids.length === 0) throw new InvalidArgumentError(`input[${i}]`, `input ${i} is empty; embeddings need some text`);
        if (ids.length > backend.contextLength) {
          throw new InvalidArgumentError(`input[${i}]`, `input ${i} has ${ids.length} tokens, more than the context length ${backend.contextLength}`);
        }
        return ids;
      });
      const release = await lock.acquire();
      try {
        const vectors: Float32Array[] = [];
        for (const ids of encoded) {
          backend.truncate(0);
          cached.tokens.length = 0;
          const hidden = await backend.forward(ids, { allLogits: pooling === "mean", output: "hidden" });
          vectors.push(normalize(pool(hidden, pooling === "mean" ? ids.length : 1, backend.args.hiddenSize)));
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

/** Mean of `rows` hidden vectors (one row is the last token's). */
function pool(hidden: Float32Array, rows: number, width: number): Float32Array {
  const out = new Float32Array(width);
  for (let r = 0; r < rows; r++) for (let i = 0; i < width; i++) out[i] += hidden[r * width + i] / rows;
  return out;
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
