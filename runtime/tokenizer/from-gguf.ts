/**
 * Rebuilds tokenizer.json / tokenizer_config.json from the tokenizer a GGUF file embeds
 * (llama.cpp gguf-py constants: tokenizer.ggml.*). Three vocab kinds are supported:
 * "llama" (SentencePiece BPE: tokens, scores, token_type), "gpt2" (byte-level BPE: tokens,
 * merges, token_type, split pattern named by tokenizer.ggml.pre) and "bert" (WordPiece,
 * stored by llama.cpp with a "▁" on word-initial tokens and without the "##" of
 * continuations; both are undone here).
 */

import { TokenizerError, UnsupportedModelError } from "../errors.ts";
import type { TokenizerFiles } from "../models/types.ts";
import { byteLevelBpeJson, byteLevelSetup } from "./byte-level.ts";
import { type Piece, PieceType, SPACE_MARKER, spmBpeToFiles } from "./spm-bpe.ts";

const SUPPORTED = ["llama", "gpt2", "bert"];

function stringArray(metadata: Map<string, unknown>, key: string, required: boolean): string[] | undefined {
  const value = metadata.get(key);
  if (value === undefined && !required) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new TokenizerError(`GGUF metadata ${key} must be an array of strings, got ${describe(value)}`);
  }
  return value as string[];
}

function numberArray(metadata: Map<string, unknown>, key: string, length: number): number[] | undefined {
  const value = metadata.get(key);
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length !== length || value.some((v) => typeof v !== "number")) {
    throw new TokenizerError(`GGUF metadata ${key} must be ${length} numbers (one per token), got ${describe(value)}`);
  }
  return value as number[];
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return value === undefined ? "nothing" : typeof value;
}

function optionalId(metadata: Map<string, unknown>, key: string, vocabSize: number): number | undefined {
  const value = metadata.get(key);
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new TokenizerError(`GGUF metadata ${key} must be an integer token id, got ${describe(value)}`);
  }
  // llama.cpp writes -1 (or an out-of-range id) for "none".
  return value >= 0 && value < vocabSize ? value : undefined;
}

function optionalBool(metadata: Map<string, unknown>, key: string): boolean | undefined {
  const value = metadata.get(key);
  return typeof value === "boolean" ? value : undefined;
}

/** Copies chat templates: the default one and any named ones (tokenizer.chat_template.<name>). */
function addChatTemplates(metadata: Map<string, unknown>, config: Record<string, unknown>): void {
  const named: { name: string; template: string }[] = [];
  const main = metadata.get("tokenizer.chat_template");
  if (typeof main === "string") named.push({ name: "default", template: main });
  for (const [key, value] of metadata) {
    if (key.startsWith("tokenizer.chat_template.") && typeof value === "string") {
      named.push({ name: key.slice("tokenizer.chat_template.".length), template: value });
    }
  }
  if (named.length === 1 && named[0].name === "default") config.chat_template = named[0].template;
  else if (named.length > 0) config.chat_template = named;
}

function fromLlama(metadata: Map<string, unknown>, tokens: string[]): TokenizerFiles {
  const n = tokens.length;
  const scores = numberArray(metadata, "tokenizer.ggml.scores", n) ?? tokens.map((_, i) => -i);
  const types =
    numberArray(metadata, "tokenizer.ggml.token_type", n) ??
    tokens.map((t) => (/^<0x[0-9A-F]{2}>$/.test(t) ? PieceType.BYTE : PieceType.NORMAL));
  const pieces: Piece[] = tokens.map((piece, i) => ({ piece, score: scores[i], type: types[i] }));
  const byteFallback = pieces.some((p) => p.type === PieceType.BYTE);
  const addDummyPrefix = optionalBool(metadata, "tokenizer.ggml.add_space_prefix") ?? true;
  return spmBpeToFiles({
    pieces,
    unkId: optionalId(metadata, "tokenizer.ggml.unknown_token_id", n),
    bosId: optionalId(metadata, "tokenizer.ggml.bos_token_id", n),
    eosId: optionalId(metadata, "tokenizer.ggml.eos_token_id", n),
    padId: optionalId(metadata, "tokenizer.ggml.padding_token_id", n),
    addDummyPrefix,
    removeExtraWhitespaces: optionalBool(metadata, "tokenizer.ggml.remove_extra_whitespaces") ?? false,
    byteFallback,
    addBosToken: optionalBool(metadata, "tokenizer.ggml.add_bos_token") ?? true,
    addEosToken: optionalBool(metadata, "tokenizer.ggml.add_eos_token") ?? false,
  });
}

function fromGpt2(metadata: Map<string, unknown>, tokens: string[]): TokenizerFiles {
  const n = tokens.length;
  const types = numberArray(metadata, "tokenizer.ggml.token_type", n) ?? tokens.map(() => PieceType.NORMAL);
  const mergeStrings = stringArray(metadata, "tokenizer.ggml.merges", true) as string[];
  const merges = mergeStrings.map((m, i): [string, string] => {
    const space = m.indexOf(" ");
    if (space <= 0 || space === m.length - 1) {
      throw new TokenizerError(`GGUF tokenizer.ggml.merges[${i}] is ${JSON.stringify(m)}; expected "left right"`);
    }
    return [m.slice(0, space), m.slice(space + 1)];
  });
  const pre = metadata.get("tokenizer.ggml.pre");
  const setup = byteLevelSetup(typeof pre === "string" ? pre : undefined);
  const added = tokens.flatMap((content, id) =>
    types[id] === PieceType.CONTROL || types[id] === PieceType.USER_DEFINED
      ? [{ id, content, special: types[id] === PieceType.CONTROL }]
      : [],
  );
  const bosId = optionalId(metadata, "tokenizer.ggml.bos_token_id", n);
  const eosId = optionalId(metadata, "tokenizer.ggml.eos_token_id", n);
  const addBosToken = optionalBool(metadata, "tokenizer.ggml.add_bos_token") ?? false;
  const tokenizerJson = byteLevelBpeJson({
    setup,
    tokens,
    merges,
    added,
    bosToken: bosId === undefined ? undefined : tokens[bosId],
    bosId,
    addBosToken,
  });
  const tokenizerConfig: Record<string, unknown> = { add_bos_token: addBosToken, clean_up_tokenization_spaces: false };
  if (bosId !== undefined) tokenizerConfig.bos_token = tokens[bosId];
  if (eosId !== undefined) tokenizerConfig.eos_token = tokens[eosId];
  const padId = optionalId(metadata, "tokenizer.ggml.padding_token_id", n);
  if (padId !== undefined) tokenizerConfig.pad_token = tokens[padId];
  return { tokenizerJson, tokenizerConfig };
}

/** Undoes llama.cpp's WordPiece spelling: "▁word" → "word", "piece" → "##piece". */
function wordPieceToken(token: string, type: number): string {
  if (type === PieceType.CONTROL || (token.startsWith("[") && token.endsWith("]"))) return token;
  if (token.startsWith(SPACE_MARKER)) return token.slice(SPACE_MARKER.length);
  return `##${token}`;
}

function fromBert(metadata: Map<string, unknown>, ggufTokens: string[]): TokenizerFiles {
  const n = ggufTokens.length;
  const types = numberArray(metadata, "tokenizer.ggml.token_type", n) ?? ggufTokens.map(() => PieceType.NORMAL);
  const tokens = ggufTokens.map((t, i) => wordPieceToken(t, types[i]));
  const vocab: Record<string, number> = {};
  tokens.forEach((t, id) => {
    if (!(t in vocab)) vocab[t] = id;
  });
  const id = (key: string) => optionalId(metadata, key, n);
  const unkId = id("tokenizer.ggml.unknown_token_id");
  const clsId = id("tokenizer.ggml.cls_token_id") ?? id("tokenizer.ggml.bos_token_id");
  const sepId = id("tokenizer.ggml.seperator_token_id") ?? id("tokenizer.ggml.eos_token_id");
  const padId = id("tokenizer.ggml.padding_token_id");
  const maskId = id("tokenizer.ggml.mask_token_id");
  if (unkId === undefined || clsId === undefined || sepId === undefined) {
    throw new TokenizerError(
      "GGUF BERT vocabulary needs tokenizer.ggml.unknown_token_id, cls_token_id and seperator_token_id; " +
        "convert the model from its Hugging Face directory instead",
    );
  }
  const cls = tokens[clsId];
  const sep = tokens[sepId];
  const added = tokens.flatMap((content, i) =>
    types[i] === PieceType.CONTROL
      ? [{ id: i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }]
      : [],
  );
  const tokenizerJson: Record<string, unknown> = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    // llama.cpp's WordPiece tokenizer always lowercases.
    normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }],
      pair: [
        { SpecialToken: { id: cls, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: sep, type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } },
        { SpecialToken: { id: sep, type_id: 1 } },
      ],
      special_tokens: {
        [cls]: { id: cls, ids: [clsId], tokens: [cls] },
        [sep]: { id: sep, ids: [sepId], tokens: [sep] },
      },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: { type: "WordPiece", unk_token: tokens[unkId], continuing_subword_prefix: "##", max_input_chars_per_word: 100, vocab },
  };
  const tokenizerConfig: Record<string, unknown> = {
    do_lower_case: true,
    clean_up_tokenization_spaces: true,
    unk_token: tokens[unkId],
    cls_token: cls,
    sep_token: sep,
  };
  if (padId !== undefined) tokenizerConfig.pad_token = tokens[padId];
  if (maskId !== undefined) tokenizerConfig.mask_token = tokens[maskId];
  return { tokenizerJson, tokenizerConfig };
}

/**
 * Converts the tokenizer embedded in GGUF metadata (already parsed into a key → value map,
 * arrays as JS arrays). Returns undefined when the file carries no tokenizer.
 */
export function tokenizerFromGguf(metadata: Map<string, unknown>): TokenizerFiles | undefined {
  const model = metadata.get("tokenizer.ggml.model");
  if (model === undefined || model === "none" || model === "no_vocab") return undefined;
  if (typeof model !== "string" || !SUPPORTED.includes(model)) {
    throw new UnsupportedModelError(`GGUF tokenizer.ggml.model "${String(model)}" is not supported`, SUPPORTED);
  }
  const tokens = stringArray(metadata, "tokenizer.ggml.tokens", true) as string[];
  if (tokens.length === 0) throw new TokenizerError("GGUF tokenizer.ggml.tokens is empty");
  const files = model === "llama" ? fromLlama(metadata, tokens) : model === "gpt2" ? fromGpt2(metadata, tokens) : fromBert(metadata, tokens);
  addChatTemplates(metadata, files.tokenizerConfig);
  return files;
}
