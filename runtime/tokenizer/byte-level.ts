/**
 * Byte-level BPE pieces shared by the GGUF "gpt2" and tiktoken converters: GPT-2's
 * byte-to-unicode table (each byte maps to a printable character) and the pre-tokenizer
 * split patterns of the model families crumb supports, as their tokenizer.json files
 * spell them.
 */

import { UnsupportedModelError } from "../errors.ts";

/** GPT-2 bytes_to_unicode(): printable bytes map to themselves, the rest to U+0100 onwards. */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const table: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : next++);
  }
  return table;
})();

/** Maps raw bytes to their byte-level token string. */
export function bytesToByteLevel(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += BYTE_TO_UNICODE[b];
  return out;
}

/** Llama 3 (tiktoken cl100k-style) split pattern: numbers in groups of up to three digits. */
export const LLAMA3_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** Qwen2 split pattern: as Llama 3 but every digit on its own. */
export const QWEN2_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

export interface ByteLevelSetup {
  normalizer: Record<string, unknown> | null;
  preTokenizer: Record<string, unknown>;
  /** Look the whole pre-token up before merging (tiktoken behaviour, Llama 3). */
  ignoreMerges: boolean;
}

function splitThenBytes(pattern: string): Record<string, unknown> {
  return {
    type: "Sequence",
    pretokenizers: [
      { type: "Split", pattern: { Regex: pattern }, behavior: "Isolated", invert: false },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  };
}

const GPT2_SETUP: ByteLevelSetup = {
  normalizer: null,
  preTokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
  ignoreMerges: false,
};
const LLAMA3_SETUP: ByteLevelSetup = { normalizer: null, preTokenizer: splitThenBytes(LLAMA3_PATTERN), ignoreMerges: true };
const QWEN2_SETUP: ByteLevelSetup = {
  normalizer: { type: "NFC" },
  preTokenizer: splitThenBytes(QWEN2_PATTERN),
  ignoreMerges: false,
};
const DIGITS_SETUP: ByteLevelSetup = {
  normalizer: null,
  preTokenizer: {
    type: "Sequence",
    pretokenizers: [
      { type: "Digits", individual_digits: true },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    ],
  },
  ignoreMerges: false,
};

/** llama.cpp `tokenizer.ggml.pre` names and the HF pre-tokenizer each stands for. */
const PRE_TOKENIZERS: Record<string, ByteLevelSetup> = {
  "default": GPT2_SETUP,
  "gpt-2": GPT2_SETUP,
  "phi-2": GPT2_SETUP,
  "roberta-bpe": GPT2_SETUP,
  "llama3": LLAMA3_SETUP,
  "llama-v3": LLAMA3_SETUP,
  "llama-bpe": LLAMA3_SETUP,
  "smaug-bpe": LLAMA3_SETUP,
  "dbrx": LLAMA3_SETUP,
  "qwen2": QWEN2_SETUP,
  "deepseek-r1-qwen": QWEN2_SETUP,
  "smollm": DIGITS_SETUP,
  "starcoder": DIGITS_SETUP,
};

/** The pre-tokenizer for a GGUF `tokenizer.ggml.pre` value (absent means "default"). */
export function byteLevelSetup(pre: string | undefined): ByteLevelSetup {
  const setup = PRE_TOKENIZERS[pre ?? "default"];
  if (setup === undefined) {
    throw new UnsupportedModelError(
      `GGUF tokenizer.ggml.pre "${pre}" is not supported; convert the model from its Hugging Face directory instead`,
      Object.keys(PRE_TOKENIZERS),
    );
  }
  return setup;
}

export interface ByteLevelBpeOptions {
  setup: ByteLevelSetup;
  /** Token string (byte-level alphabet) for each id. */
  tokens: readonly string[];
  merges: readonly [string, string][];
  /** Added tokens: ids whose text is matched before BPE. */
  added: readonly { id: number; content: string; special: boolean }[];
  bosToken?: string;
  bosId?: number;
  addBosToken: boolean;
}

/** Assembles a ByteLevel BPE tokenizer.json. */
export function byteLevelBpeJson(options: ByteLevelBpeOptions): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  options.tokens.forEach((t, id) => {
    if (!(t in vocab)) vocab[t] = id;
  });
  const postProcessor =
    options.addBosToken && options.bosToken !== undefined
      ? {
          type: "TemplateProcessing",
          single: [{ SpecialToken: { id: options.bosToken, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
          pair: [
            { SpecialToken: { id: options.bosToken, type_id: 0 } },
            { Sequence: { id: "A", type_id: 0 } },
            { SpecialToken: { id: options.bosToken, type_id: 1 } },
            { Sequence: { id: "B", type_id: 1 } },
          ],
          special_tokens: { [options.bosToken]: { id: options.bosToken, ids: [options.bosId], tokens: [options.bosToken] } },
        }
      : { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: true };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: options.added.map((a) => ({
      id: a.id,
      content: a.content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: a.special,
    })),
    normalizer: options.setup.normalizer,
    pre_tokenizer: options.setup.preTokenizer,
    post_processor: postProcessor,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: options.setup.ignoreMerges,
      vocab,
      merges: options.merges,
    },
  };
}
