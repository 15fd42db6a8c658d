/**
 * llama2.c tokenizer.bin conversion: the stories260K tokenizer reproduces run.c encode()
 * ids and the verified greedy sample text; the 32000-token Llama 2 export encodes exactly
 * like Meta's tokenizer.json on llama.cpp's test vectors.
 */

import { describe, expect, test } from "bun:test";
import { TokenizerError } from "../errors.ts";
import { llama2cTokenizerToFiles, readLlama2cTokenizer } from "./from-llama2c.ts";
import { haveFiles, readBytes, readJson, readVocabVectors } from "../../test/shared-data.ts";
import { createTokenizer } from "./tokenizer.ts";

const TOK512 = "stories260K/tok512.bin";
const EXAMPLES = "stories260K/tokenizer_examples.json";
const GREEDY = "stories260K/expected_greedy_t0.json";
const LLAMA2C = "llama2c/tokenizer.bin";
const SPM_VECTORS = "gguf-vocab/ggml-vocab-llama-spm.gguf";

describe("stories260K tok512.bin", () => {
  const present = haveFiles(TOK512, EXAMPLES, GREEDY);

  test.skipIf(!present)("reader maps the special pieces back", () => {
    const { maxTokenLength, pieces } = readLlama2cTokenizer(readBytes(TOK512));
    expect(maxTokenLength).toBe(7);
    expect(pieces.length).toBe(512);
    expect(pieces[1].piece).toBe("\n<s>\n");
    const files = llama2cTokenizerToFiles(readBytes(TOK512));
    const tok = createTokenizer(files);
    expect(tok.vocabSize).toBe(512);
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenIds).toEqual([2]);
    expect(tok.idToToken(0)).toBe("<unk>");
    expect(tok.idToToken(3)).toBe("<0x00>");
    expect(tok.tokenToId("<s>")).toBe(1);
  });

  test.skipIf(!present)("encodes like run.c encode() (with BOS)", () => {
    const tok = createTokenizer(llama2cTokenizerToFiles(readBytes(TOK512)));
    const { examples } = readJson<{ examples: { text: string; ids: number[] }[] }>(EXAMPLES);
    expect(examples.length).toBe(4);
    for (const { text, ids } of examples) expect(tok.encode(text)).toEqual(ids);
    expect(tok.encode("")).toEqual([1]);
    expect(tok.encode("Once upon a time", { addSpecialTokens: false })).toEqual(examples[0].ids.slice(1));
  });

  test.skipIf(!present)("decodes the greedy sample to karpathy's text", () => {
    const tok = createTokenizer(llama2cTokenizerToFiles(readBytes(TOK512)));
    const { ids, text } = readJson<{ ids: number[]; text: string }>(GREEDY);
    expect(ids.length).toBeGreaterThan(180);
    expect(tok.decode(ids)).toBe(text);
    const prefix = tok.decode(ids.slice(0, 180));
    expect(prefix.length).toBeGreaterThan(400);
    expect(text.startsWith(prefix)).toBe(true);
    expect(tok.decode([1, ...ids.slice(0, 3)], { skipSpecialTokens: true })).toBe(tok.decode(ids.slice(0, 3)));
  });
});

describe("llama2.c 32000-token tokenizer.bin", () => {
  test.skipIf(!haveFiles(LLAMA2C, "hf-tokenizers/llama2/tokenizer.json", `${SPM_VECTORS}.inp`, `${SPM_VECTORS}.out`))(
    "encodes llama.cpp's llama-spm vectors like Meta's tokenizer.json",
    () => {
      const converted = createTokenizer(llama2cTokenizerToFiles(readBytes(LLAMA2C)));
      const reference = createTokenizer({
        tokenizerJson: readJson("hf-tokenizers/llama2/tokenizer.json"),
        tokenizerConfig: readJson("hf-tokenizers/llama2/tokenizer_config.json"),
      });
      expect(converted.vocabSize).toBe(32000);
      const vectors = readVocabVectors(SPM_VECTORS);
      expect(vectors.length).toBe(47);
      for (const { text, ids } of vectors) {
        expect(converted.encode(text, { addSpecialTokens: false })).toEqual(ids);
        expect(converted.encode(text)).toEqual(reference.encode(text));
      }
    },
  );
});

describe("malformed files", () => {
  test("empty and truncated files are TokenizerErrors", () => {
    expect(() => llama2cTokenizerToFiles(new Uint8Array(0))).toThrow(TokenizerError);
    const header = new Uint8Array(4 + 8 + 2);
    const view = new DataView(header.buffer);
    view.setInt32(0, 7, true);
    view.setFloat32(4, 0, true);
    view.setInt32(8, 5, true); // claims 5 bytes, 2 present
    expect(() => llama2cTokenizerToFiles(header)).toThrow(/truncated or corrupt/);
  });

  test("a non-llama2.c file names its header value", () => {
    const bytes = new TextEncoder().encode('{"model": {}}');
    expect(() => llama2cTokenizerToFiles(bytes)).toThrow(/max_token_length/);
  });
});
