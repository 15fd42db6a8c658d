/**
 * The runtime tokenizer: a thin wrapper over @huggingface/tokenizers that reads the
 * tokenizer.json / tokenizer_config.json pair of a model, exposes the ids the engine needs
 * (BOS, EOS, vocabulary size) and turns malformed files into TokenizerError.
 */

import { Tokenizer } from "@huggingface/tokenizers";
import { TokenizerError } from "../errors.ts";
import type { TokenizerFiles } from "../models/types.ts";

export interface EncodeOptions {
  /** Add the tokens the post-processor adds (BOS for Llama, [CLS]/[SEP] for BERT). Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS, EOS, chat markers) from the text. Default false. */
  skipSpecialTokens?: boolean;
}

export interface CrumbTokenizer {
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** One past the largest token id (model vocabulary plus added tokens). */
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly bosToken?: string;
  /** Every id that ends generation: the configured EOS plus known end-of-turn tokens. */
  readonly eosTokenIds: readonly number[];
  readonly eosToken?: string;
  /** Ids of tokens marked special (skipped by skipSpecialTokens). */
  readonly specialTokenIds: ReadonlySet<number>;
  idToToken(id: number): string | undefined;
  tokenToId(token: string): number | undefined;
}

/** End-of-turn markers that chat models emit in place of (or besides) their EOS. */
const END_OF_TURN_TOKENS = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|eom_id|>"];

/** BOS / EOS spellings looked up among the added tokens when tokenizer_config names none. */
const BOS_FALLBACKS = ["<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"];
const EOS_FALLBACKS = ["</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>"];

/** Reads a token string from a tokenizer_config entry: "x" or {content: "x"}. */
export function tokenContent(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return undefined;
}

function checkTokenizerJson(json: Record<string, unknown>): void {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new TokenizerError(`tokenizer.json must be a JSON object, got ${json === null ? "null" : typeof json}`);
  }
  const model = json.model as Record<string, unknown> | undefined;
  if (model === undefined || model === null || typeof model !== "object") {
    throw new TokenizerError('tokenizer.json has no "model" section; re-export it with a recent transformers version');
  }
  if (model.vocab === undefined) {
    throw new TokenizerError(`tokenizer.json model (type ${String(model.type)}) has no "vocab"`);
  }
  if (model.type === "BPE" && !Array.isArray(model.merges)) {
    throw new TokenizerError('tokenizer.json BPE model has no "merges" array');
  }
  if (json.added_tokens !== undefined && !Array.isArray(json.added_tokens)) {
    throw new TokenizerError('tokenizer.json "added_tokens" must be an array');
  }
}

/** Builds the runtime tokenizer from parsed tokenizer files. */
export function createTokenizer(files: TokenizerFiles): CrumbTokenizer {
  const json = files.tokenizerJson;
  checkTokenizerJson(json);
  // Recent transformers leave clean-up off unless the config asks for it; the library
  // would default it on, which rewrites " ." as "." and mangles code.
  const config = { ...(files.tokenizerConfig ?? {}) };
  config.clean_up_tokenization_spaces ??= false;
  // The library requires every top-level section to be present (null allowed).
  const completeJson: Record<string, unknown> = {
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    added_tokens: [],
    ...json,
  };
  let inner: Tokenizer;
  try {
    inner = new Tokenizer(completeJson, config);
  } catch (cause) {
    throw new TokenizerError(`cannot build tokenizer from tokenizer.json: ${(cause as Error).message}`, { cause });
  }

  const vocab = inner.get_vocab(true);
  let maxId = -1;
  for (const id of vocab.values()) if (id > maxId) maxId = id;
  const vocabSize = maxId + 1;

  const special = new Set<number>();
  const addedNames = new Set<string>();
  for (const [id, token] of inner.get_added_tokens_decoder()) {
    addedNames.add(token.content);
    if (token.special) special.add(id);
  }
  const knownAdded = (names: readonly string[]) => names.find((name) => addedNames.has(name));
  const bosToken = tokenContent(config.bos_token) ?? knownAdded(BOS_FALLBACKS);
  const eosToken = tokenContent(config.eos_token) ?? knownAdded(EOS_FALLBACKS);
  const bosTokenId = bosToken === undefined ? undefined : inner.token_to_id(bosToken);
  const eosIds: number[] = [];
  const addEos = (id: number | undefined) => {
    if (id !== undefined && !eosIds.includes(id)) eosIds.push(id);
  };
  if (eosToken !== undefined) addEos(inner.token_to_id(eosToken));
  for (const marker of END_OF_TURN_TOKENS) addEos(inner.token_to_id(marker));

  return {
    vocabSize,
    bosToken,
    bosTokenId,
    eosToken,
    eosTokenIds: eosIds,
    specialTokenIds: special,
    encode(text, options = {}) {
      if (typeof text !== "string") {
        throw new TokenizerError(`encode expects a string, got ${typeof text}`);
      }
      return inner.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
    },
    decode(ids, options = {}) {
      if (ids.length === 0) return "";
      for (const id of ids) {
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
          throw new TokenizerError(`cannot decode token id ${id}: ids must be integers in [0, ${vocabSize})`);
        }
      }
      return inner.decode(ids as number[], { skip_special_tokens: options.skipSpecialTokens ?? false });
    },
    idToToken: (id) => inner.id_to_token(id),
    tokenToId: (token) => inner.token_to_id(token),
  };
}
