/**
 * GGUF embedded tokenizers: llama.cpp's vocab-only GGUFs (SentencePiece, GPT-2 BPE, BERT
 * WordPiece, Phi-3) reproduce their .inp/.out vectors; metadata comes from the real GGUF reader.
 */

import { describe, expect, test } from "bun:test";
import { TokenizerError, UnsupportedModelError } from "../errors.ts";
import { tokenizerFromGguf } from "./from-gguf.ts";
import { readGguf } from "../import/gguf.ts";
import { haveFiles, modelPath, readBytes, readJson, readVocabVectors } from "../../test/shared-data.ts";
import { createTokenizer } from "./tokenizer.ts";

const vocabPath = (name: string) => `gguf-vocab/ggml-vocab-${name}.gguf`;
const present = (name: string) => haveFiles(vocabPath(name), `${vocabPath(name)}.inp`, `${vocabPath(name)}.out`);
const load = (name: string) => {
  const files = tokenizerFromGguf(readGguf(modelPath(vocabPath(name))).metadata);
  if (files === undefined) throw new Error(`${name} has no tokenizer`);
  return files;
};

describe("llama.cpp vocab GGUFs", () => {
  // The .out ids were generated with add_special_tokens=False (bert's too: no [CLS]/[SEP]).
  for (const name of ["llama-spm", "gpt-2", "bert-bge", "phi-3"]) {
    test.skipIf(!present(name))(`${name} reproduces its test vectors`, () => {
      const tok = createTokenizer(load(name));
      const vectors = readVocabVectors(vocabPath(name));
      expect(vectors.length).toBe(47);
      for (const { text, ids } of vectors) expect(tok.encode(text, { addSpecialTokens: false })).toEqual(ids);
    });
  }

  test.skipIf(!present("llama-spm"))("llama: BOS, EOS and unk come from the metadata", () => {
    const tok = createTokenizer(load("llama-spm"));
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenIds).toEqual([2]);
    expect(tok.encode("Hello")).toEqual([1, 15043]);
    expect(tok.decode([1, 15043, 2], { skipSpecialTokens: true })).toBe("Hello");
  });

  test.skipIf(!present("phi-3"))("phi-3: padded vocab, chat template and end-of-turn token", () => {
    const files = load("phi-3");
    const tok = createTokenizer(files);
    expect(tok.vocabSize).toBe(32064);
    expect(typeof files.tokenizerConfig.chat_template).toBe("string");
    expect(tok.eosTokenIds).toEqual([32000, 32007]);
    expect(tok.encode("<|user|>", { addSpecialTokens: false })).toEqual([32010]);
  });

  test.skipIf(!present("gpt-2"))("gpt-2: no BOS added, byte-level decode round-trips", () => {
    const tok = createTokenizer(load("gpt-2"));
    const text = "Hello world 🦙 — naïve\n\tcode";
    const ids = tok.encode(text);
    expect(ids[0]).not.toBe(50256);
    expect(tok.decode(ids)).toBe(text);
    expect(tok.eosTokenIds).toEqual([50256]);
  });

  test.skipIf(!present("bert-bge") || !haveFiles("hf-tokenizers/all-MiniLM-L6-v2/tokenizer.json"))(
    "bert: llama.cpp's ▁ / ## spelling is undone (vocab equals bert-base-uncased)",
    () => {
      const files = load("bert-bge");
      const vocab = (files.tokenizerJson.model as { vocab: Record<string, number> }).vocab;
      const reference = (readJson("hf-tokenizers/all-MiniLM-L6-v2/tokenizer.json").model as { vocab: Record<string, number> }).vocab;
      expect(vocab).toEqual(reference);
      const tok = createTokenizer(files);
      expect(tok.encode("Hello world")).toEqual([101, 7592, 2088, 102]);
    },
  );
});

describe("metadata edge cases", () => {
  test("no tokenizer gives undefined", () => {
    expect(tokenizerFromGguf(new Map())).toBeUndefined();
    expect(tokenizerFromGguf(new Map([["tokenizer.ggml.model", "no_vocab"]]))).toBeUndefined();
  });

  test("unknown vocab kinds and pre-tokenizers are UnsupportedModelErrors", () => {
    expect(() => tokenizerFromGguf(new Map<string, unknown>([["tokenizer.ggml.model", "rwkv"]]))).toThrow(UnsupportedModelError);
    const gpt2 = new Map<string, unknown>([
      ["tokenizer.ggml.model", "gpt2"],
      ["tokenizer.ggml.pre", "mystery"],
      ["tokenizer.ggml.tokens", ["a", "b", "ab"]],
      ["tokenizer.ggml.merges", ["a b"]],
    ]);
    expect(() => tokenizerFromGguf(gpt2)).toThrow(/tokenizer.ggml.pre "mystery" is not supported/);
  });

  test("malformed arrays are TokenizerErrors", () => {
    const bad = new Map<string, unknown>([
      ["tokenizer.ggml.model", "llama"],
      ["tokenizer.ggml.tokens", ["a", "b"]],
      ["tokenizer.ggml.scores", [0]],
    ]);
    expect(() => tokenizerFromGguf(bad)).toThrow(TokenizerError);
    expect(() => tokenizerFromGguf(bad)).toThrow(/tokenizer.ggml.scores must be 2 numbers/);
    expect(() => tokenizerFromGguf(new Map<string, unknown>([["tokenizer.ggml.model", "gpt2"], ["tokenizer.ggml.tokens", 5]]))).toThrow(
      /tokenizer.ggml.tokens must be an array of strings/,
    );
  });

  test("a small llama-bpe vocab uses the Llama 3 split and named chat templates", () => {
    const tokens = ["a", "b", "ab", "Ġ", "Ġab", "1", "<|begin_of_text|>"];
    const files = tokenizerFromGguf(
      new Map<string, unknown>([
        ["tokenizer.ggml.model", "gpt2"],
        ["tokenizer.ggml.pre", "llama-bpe"],
        ["tokenizer.ggml.tokens", tokens],
        ["tokenizer.ggml.token_type", [1, 1, 1, 1, 1, 1, 3]],
        ["tokenizer.ggml.merges", ["a b", "Ġ ab"]],
        ["tokenizer.ggml.bos_token_id", 6],
        ["tokenizer.ggml.add_bos_token", true],
        ["tokenizer.chat_template", "D"],
        ["tokenizer.chat_template.tool_use", "T"],
      ]),
    );
    if (files === undefined) throw new Error("expected a tokenizer");
    expect(files.tokenizerConfig.chat_template).toEqual([
      { name: "default", template: "D" },
      { name: "tool_use", template: "T" },
    ]);
    const tok = createTokenizer(files);
    expect(tok.encode("ab ab111")).toEqual([6, 2, 4, 5, 5, 5]);
  });
});

describe("a Llama 3 GGUF vocabulary (llama-bpe) rebuilt from the tiktoken file", () => {
  // No llama-bpe vocab GGUF is in shared/models, only its .inp/.out. llama.cpp's converter
  // writes the tokens (byte-level strings by id), "left right" merges, token types (3 for the
  // special tokens) and pre "llama-bpe"; that metadata is rebuilt here from the tiktoken
  // conversion and must reproduce the 47 vectors through the GGUF path.
  const base = "gguf-vocab/ggml-vocab-llama-bpe.gguf";
  const files = ["tiktoken/llama3/tokenizer.model", "tiktoken/llama3/tokenizer_config.json", `${base}.inp`, `${base}.out`];
  test.skipIf(!haveFiles(...files))("reproduces ggml-vocab-llama-bpe.gguf.out", async () => {
    const { tiktokenToFiles } = await import("./from-tiktoken.ts");
    const { readText } = await import("../../test/shared-data.ts");
    const hf = tiktokenToFiles(readText(files[0]!), readJson(files[1]!));
    const model = hf.tokenizerJson.model as { vocab: Record<string, number>; merges: ([string, string] | string)[] };
    const added = hf.tokenizerJson.added_tokens as { id: number; content: string }[];
    const tokens: string[] = [];
    for (const [token, id] of Object.entries(model.vocab)) tokens[id] = token;
    for (const a of added) tokens[a.id] = a.content;
    const types = tokens.map((_, id) => (added.some((a) => a.id === id) ? 3 : 1));
    const metadata = new Map<string, unknown>([
      ["tokenizer.ggml.model", "gpt2"],
      ["tokenizer.ggml.pre", "llama-bpe"],
      ["tokenizer.ggml.tokens", tokens],
      ["tokenizer.ggml.token_type", types],
      ["tokenizer.ggml.merges", model.merges.map((m) => (typeof m === "string" ? m : m.join(" ")))],
      ["tokenizer.ggml.bos_token_id", 128000],
      ["tokenizer.ggml.eos_token_id", 128009],
      ["tokenizer.ggml.add_bos_token", true],
    ]);
    const tok = createTokenizer(tokenizerFromGguf(metadata)!);
    const vectors = readVocabVectors(base);
    expect(vectors.length).toBe(47);
    for (const { text, ids } of vectors) expect(tok.encode(text, { addSpecialTokens: false })).toEqual(ids);
    expect(tok.encode("Hi")).toEqual([128000, 13347]);
  }, 60_000); // two 128K-entry vocabularies: a few seconds on a CI-class machine
});
