/**
 * tiktoken conversion (Llama 3): reproduces llama.cpp's llama-bpe vectors, ollama's Llama 3
 * cases and swift-transformers' Llama 3.2 encoding, including the whole-word lookup case.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { TokenizerError } from "../errors.ts";
import { tiktokenToFiles } from "./from-tiktoken.ts";
import { haveFiles, readJson, readText, readVocabVectors } from "../../test/shared-data.ts";
import { createTokenizer, type CrumbTokenizer } from "./tokenizer.ts";

const MODEL = "tiktoken/llama3/tokenizer.model";
const CONFIG = "tiktoken/llama3/tokenizer_config.json";
const BPE_VECTORS = "gguf-vocab/ggml-vocab-llama-bpe.gguf";
const OLLAMA = "tokenizer-tests/ollama-llama3/inputs.json";
const SWIFT = "tokenizer-tests/swift-transformers/llama_3.2_encoded.json";

const present = haveFiles(MODEL, CONFIG, `${BPE_VECTORS}.inp`, `${BPE_VECTORS}.out`, OLLAMA, SWIFT);

let cached: { tok: CrumbTokenizer; files: ReturnType<typeof tiktokenToFiles> } | undefined;
function llama3() {
  if (cached === undefined) {
    const files = tiktokenToFiles(readText(MODEL), readJson(CONFIG));
    cached = { tok: createTokenizer(files), files };
  }
  return cached;
}
// bun keeps finished test files in memory: let the 128K-entry vocabulary go.
afterAll(() => {
  cached = undefined;
});

describe("Llama 3 tiktoken", () => {
  test.skipIf(!present)("vocabulary, merges and special tokens", () => {
    const { tok, files } = llama3();
    expect(tok.vocabSize).toBe(128256);
    expect((files.tokenizerJson.model as { merges: unknown[] }).merges.length).toBe(280147);
    expect((files.tokenizerJson.model as { ignore_merges: boolean }).ignore_merges).toBe(true);
    expect(tok.bosTokenId).toBe(128000);
    expect(tok.eosTokenIds).toEqual([128009]);
    expect(tok.encode("<|start_header_id|>user<|end_header_id|>", { addSpecialTokens: false })).toEqual([128006, 882, 128007]);
  }, 60_000); // converts a 128000-rank vocabulary: about 2 s on a CI-class machine

  test.skipIf(!present)("llama.cpp llama-bpe vectors (47 cases)", () => {
    const { tok } = llama3();
    const vectors = readVocabVectors(BPE_VECTORS);
    expect(vectors.length).toBe(47);
    for (const { text, ids } of vectors) expect(tok.encode(text, { addSpecialTokens: false })).toEqual(ids);
  });

  test.skipIf(!present)("ollama Llama 3 cases, including the whole-word lookup of 'Cửa Việt'", () => {
    const { tok } = llama3();
    const cases = readJson<{ base64: string; ids: number[] }[]>(OLLAMA);
    expect(cases.length).toBe(46);
    const decoder = new TextDecoder();
    for (const c of cases) {
      const text = decoder.decode(Uint8Array.from(atob(c.base64), (ch) => ch.charCodeAt(0)));
      expect(tok.encode(text, { addSpecialTokens: false })).toEqual(c.ids);
    }
    expect(tok.encode("Cửa Việt", { addSpecialTokens: false })).toEqual([34, 91163, 101798]);
  });

  test.skipIf(!present)("swift-transformers Llama 3.2 encoding and decoding", () => {
    const { tok } = llama3();
    const s = readJson<{ text: string; token_ids: number[]; decoded_text: string }>(SWIFT);
    expect(tok.encode(s.text)).toEqual(s.token_ids);
    expect(tok.decode(s.token_ids)).toBe(s.decoded_text);
  });
});

describe("malformed tiktoken files", () => {
  test("bad lines, gaps and empty files are TokenizerErrors", () => {
    expect(() => tiktokenToFiles("", {})).toThrow(TokenizerError);
    expect(() => tiktokenToFiles("IQ==\n", {})).toThrow(/line 1/);
    expect(() => tiktokenToFiles("IQ== 0\nIg== 2\n", {})).toThrow(/no token of rank 1/);
    expect(() => tiktokenToFiles("IQ== 0\n", { added_tokens_decoder: { x: {} } })).toThrow(/added_tokens_decoder/);
  });
});
