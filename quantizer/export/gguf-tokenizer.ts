/**
 * A model's own tokenizer (tokenizer.json + tokenizer_config.json, what every crumb source
 * carries) as GGUF `tokenizer.*` metadata (ggml/docs/gguf.md, llama.cpp gguf-py constants):
 * - SentencePiece-style BPE (Llama 2, Mistral, TinyLlama, llama2.c; "▁" word marks and
 *   <0xNN> byte fallback) → `tokenizer.ggml.model = "llama"` with tokens, scores and token
 *   types. llama.cpp merges the adjacent pair whose concatenation has the highest score,
 *   while tokenizer.json lists merges by rank, so a piece scores -(rank of the first merge
 *   that makes it): the merge order is the same (runtime/tokenizer/spm-bpe.ts is the
 *   inverse). Pieces no merge makes score below every merge.
 * - Byte-level BPE (GPT-2, Llama 3, Qwen2/3, SmolLM) → `"gpt2"` with tokens, token types,
 *   merges and `tokenizer.ggml.pre`, the name llama.cpp gives the pre-tokenizer split
 *   (llama-vocab.cpp): the tokenizer.json pre_tokenizer is matched against the splits
 *   crumb knows (runtime/tokenizer/byte-level.ts), anything else is refused.
 * Special ids, and whether BOS/EOS are added, come from running crumb's tokenizer on the
 * files, so llama.cpp frames a prompt as crumb does. Ids missing from the vocabulary, and
 * rows of a larger embedding, become unused "[PADn]" tokens as convert_hf_to_gguf.py writes.
 */
import { InvalidArgumentError, TokenizerError, UnsupportedModelError } from "../../runtime/errors.ts";
import type { TokenizerFiles } from "../../runtime/models/types.ts";
import { LLAMA3_PATTERN, QWEN2_PATTERN } from "../../runtime/tokenizer/byte-level.ts";
import { PieceType, SPACE_MARKER } from "../../runtime/tokenizer/spm-bpe.ts";
import { createTokenizer, tokenContent } from "../../runtime/tokenizer/tokenizer.ts";
import { readGguf } from "../../runtime/import/gguf.ts";
import { GgufValueType } from "../../runtime/import/gguf-types.ts";
import type { GgufMeta } from "./gguf-stream.ts";

type Json = Record<string, unknown>;

const PRE_TOKENIZERS = ["gpt-2 (ByteLevel with its regex)", "llama-bpe (Llama 3 split)", "qwen2 (Qwen2 split)", "smollm (digits, then ByteLevel)"];

function parts(node: unknown): Json[] {
  if (node === null || typeof node !== "object") return [];
  const n = node as Json;
  if (n.type === "Sequence") return [...((n.pretokenizers ?? n.normalizers ?? n.decoders ?? []) as unknown[])].flatMap(parts);
  return [n];
}

/** llama.cpp's `tokenizer.ggml.pre` for a byte-level tokenizer.json; throws for splits llama.cpp would not reproduce. */
export function byteLevelPreName(json: Json): string {
  const steps = parts(json.pre_tokenizer);
  const kinds = steps.map((s) => s.type).join(",");
  const regex = (s: Json | undefined) => ((s?.pattern as Json | undefined)?.Regex as string | undefined);
  if (kinds === "ByteLevel" && steps[0]!.use_regex !== false) return "gpt-2";
  if (kinds === "Digits,ByteLevel" && steps[0]!.individual_digits === true && steps[1]!.use_regex !== false) return "smollm";
  if (kinds === "Split,ByteLevel" && steps[1]!.use_regex === false) {
    if (regex(steps[0]) === LLAMA3_PATTERN) return "llama-bpe";
    if (regex(steps[0]) === QWEN2_PATTERN) return "qwen2";
  }
  throw new UnsupportedModelError(
    `the tokenizer's pre_tokenizer (${kinds || "none"}${regex(steps[0]) ? ` with split ${JSON.stringify(regex(steps[0])).slice(0, 60)}...` : ""}) ` +
      `has no llama.cpp pre-tokenizer name crumb can vouch for`,
    PRE_TOKENIZERS,
  );
}

function isSentencePiece(json: Json, vocab: Json): boolean {
  const model = json.model as Json;
  if (model.byte_fallback === true || "<0x00>" in vocab) return true;
  const marks = [...parts(json.normalizer), ...parts(json.pre_tokenizer)];
  return marks.some((s) => s.type === "Metaspace" || (s.type === "Replace" && s.content === SPACE_MARKER));
}

function addsSpacePrefix(json: Json): boolean {
  const marks = [...parts(json.normalizer), ...parts(json.pre_tokenizer)];
  return marks.some((s) =>
    (s.type === "Prepend" && s.prepend === SPACE_MARKER) ||
    (s.type === "Metaspace" && (s.prepend_scheme === undefined ? s.add_prefix_space !== false : s.prepend_scheme !== "never"))
  );
}

function mergeList(model: Json): [string, string][] {
  const merges = model.merges;
  if (!Array.isArray(merges)) throw new TokenizerError('tokenizer.json BPE model has no "merges" array');
  return merges.map((m, i): [string, string] => {
    if (Array.isArray(m) && m.length === 2) return [String(m[0]), String(m[1])];
    const text = String(m);
    const space = text.indexOf(" ", 1);
    if (space < 0) throw new TokenizerError(`tokenizer.json merges[${i}] is ${JSON.stringify(m)}; expected "left right"`);
    return [text.slice(0, space), text.slice(space + 1)];
  });
}

const array = (elementType: GgufValueType, value: unknown[]): GgufMeta => ({ type: GgufValueType.ARRAY, elementType, value });
const u32 = (value: number): GgufMeta => ({ type: GgufValueType.UINT32, value });
const bool = (value: boolean): GgufMeta => ({ type: GgufValueType.BOOL, value });
const str = (value: string): GgufMeta => ({ type: GgufValueType.STRING, value });

/** `tokenizer.*` metadata for a model whose embedding has `vocabSize` rows. */
export function tokenizerMetadata(files: TokenizerFiles, vocabSize: number, chatTemplates: Readonly<Record<string, string>>): Map<string, GgufMeta> {
  const json = files.tokenizerJson as Json;
  const model = json.model as Json | undefined;
  if (model?.type !== "BPE") {
    throw new UnsupportedModelError(`GGUF export writes BPE tokenizers; this one is ${String(model?.type ?? "unknown")}`, [
      "SentencePiece-style BPE (llama)",
      "byte-level BPE (gpt2)",
    ]);
  }
  const vocab = model.vocab as Json;
  const added = ((json.added_tokens ?? []) as Json[]).map((a) => ({ id: Number(a.id), content: String(a.content), special: a.special === true }));
  let count = 0;
  for (const id of Object.values(vocab)) count = Math.max(count, Number(id) + 1);
  for (const a of added) count = Math.max(count, a.id + 1);
  if (count > vocabSize) {
    throw new UnsupportedModelError(
      `the tokenizer has ids up to ${count - 1} but the model's embedding has ${vocabSize} rows; llama.cpp needs one row per token`,
      ["tokenizers no larger than the embedding"],
    );
  }
  const tokens: string[] = Array.from({ length: vocabSize }, (_, i) => `[PAD${i}]`);
  const types: number[] = new Array(vocabSize).fill(PieceType.UNUSED);
  for (const [token, id] of Object.entries(vocab)) {
    tokens[Number(id)] = token;
    types[Number(id)] = PieceType.NORMAL;
  }
  const spm = isSentencePiece(json, vocab);
  const unk = typeof model.unk_token === "string" ? (vocab[model.unk_token] as number | undefined) : undefined;
  if (spm) {
    tokens.forEach((t, id) => {
      if (types[id] === PieceType.NORMAL && /^<0x[0-9A-F]{2}>$/.test(t)) types[id] = PieceType.BYTE;
    });
  }
  for (const a of added) {
    tokens[a.id] = a.content;
    types[a.id] = a.special ? PieceType.CONTROL : PieceType.USER_DEFINED;
  }
  if (unk !== undefined) types[unk] = PieceType.UNKNOWN;

  const out = new Map<string, GgufMeta>();
  out.set("tokenizer.ggml.model", str(spm ? "llama" : "gpt2"));
  const merges = mergeList(model);
  if (!spm) out.set("tokenizer.ggml.pre", str(byteLevelPreName(json)));
  out.set("tokenizer.ggml.tokens", array(GgufValueType.STRING, tokens));
  if (spm) {
    const scores: number[] = types.map((t) => (t === PieceType.NORMAL ? -(merges.length + 1) : 0));
    const ids = new Map(tokens.map((t, id) => [t, id]));
    merges.forEach(([left, right], rank) => {
      const id = ids.get(left + right);
      if (id !== undefined && types[id] === PieceType.NORMAL && scores[id]! < -rank) scores[id] = -rank;
    });
    out.set("tokenizer.ggml.scores", array(GgufValueType.FLOAT32, scores));
  }
  out.set("tokenizer.ggml.token_type", array(GgufValueType.INT32, types));
  if (!spm) out.set("tokenizer.ggml.merges", array(GgufValueType.STRING, merges.map(([l, r]) => `${l} ${r}`)));

  const tokenizer = createTokenizer(files);
  const probe = tokenizer.encode("a", { addSpecialTokens: true });
  const bare = tokenizer.encode("a", { addSpecialTokens: false });
  if (tokenizer.bosTokenId !== undefined) out.set("tokenizer.ggml.bos_token_id", u32(tokenizer.bosTokenId));
  if (tokenizer.eosTokenIds[0] !== undefined) out.set("tokenizer.ggml.eos_token_id", u32(tokenizer.eosTokenIds[0]));
  if (unk !== undefined) out.set("tokenizer.ggml.unknown_token_id", u32(unk));
  const pad = tokenContent(files.tokenizerConfig.pad_token);
  const padId = pad === undefined ? undefined : tokenizer.tokenToId(pad);
  if (padId !== undefined) out.set("tokenizer.ggml.padding_token_id", u32(padId));
  out.set("tokenizer.ggml.add_bos_token", bool(probe.length > bare.length && probe[0] === tokenizer.bosTokenId));
  out.set("tokenizer.ggml.add_eos_token", bool(probe.length > bare.length && probe.at(-1) === tokenizer.eosTokenIds[0]));
  if (spm) out.set("tokenizer.ggml.add_space_prefix", bool(addsSpacePrefix(json)));
  for (const [name, template] of Object.entries(chatTemplates)) {
    out.set(name === "default" ? "tokenizer.chat_template" : `tokenizer.chat_template.${name}`, str(template));
  }
  return out;
}

/**
 * The tokenizer.* metadata of a vocab-only GGUF (llama.cpp's models/ggml-vocab-*.gguf), cut or
 * padded with unused tokens to `vocabSize`: for sources without a tokenizer, such as the
 * benchmark's random-weight models.
 */
export function vocabGgufMetadata(vocabGguf: string, vocabSize: number): Map<string, GgufMeta> {
  const gguf = readGguf(vocabGguf);
  const tokens = gguf.metadata.get("tokenizer.ggml.tokens");
  if (!Array.isArray(tokens)) {
    throw new InvalidArgumentError("vocabGguf", `${vocabGguf} has no tokenizer.ggml.tokens; pass a llama.cpp vocab GGUF such as ggml-vocab-llama-spm.gguf`);
  }
  if (tokens.length > vocabSize && vocabSize < 259) {
    throw new InvalidArgumentError("vocabGguf", `vocab_size ${vocabSize} is too small to keep the 3 special and 256 byte tokens of ${vocabGguf}; use at least 259`);
  }
  // A smaller model keeps the first vocabSize tokens (specials, bytes, then the most frequent
  // merges), still a complete byte-fallback vocabulary; a larger one gets unused padding.
  const pad = Math.max(0, vocabSize - tokens.length);
  const keep = Math.min(vocabSize, tokens.length);
  const padded = (items: unknown[], filler: (i: number) => unknown) => [...items.slice(0, keep), ...Array.from({ length: pad }, (_, i) => filler(i))];
  const out = new Map<string, GgufMeta>();
  for (const [key, value] of gguf.metadata) {
    if (!key.startsWith("tokenizer.")) continue;
    const type = gguf.metadataTypes.get(key)!;
    if (type !== GgufValueType.ARRAY) out.set(key, { type, value });
    else if (key === "tokenizer.ggml.tokens") out.set(key, array(GgufValueType.STRING, padded(value as unknown[], (i) => `[PAD${i}]`)));
    else if (key === "tokenizer.ggml.scores") out.set(key, array(GgufValueType.FLOAT32, padded(value as unknown[], () => 0)));
    else if (key === "tokenizer.ggml.token_type") out.set(key, array(GgufValueType.INT32, padded(value as unknown[], () => PieceType.UNUSED)));
    else {
      const items = value as unknown[];
      out.set(key, array(items.every((v) => typeof v === "string") ? GgufValueType.STRING : GgufValueType.INT32, items));
    }
  }
  return out;
}
