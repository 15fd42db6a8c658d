/**
 * Published tokenizer.json files through the wrapper: swift-transformers and multilingual
 * conformance vectors (transformers 4.57.1 references) and llama.cpp's .inp/.out pairs.
 * Qwen2/2.5 vectors are not checked: no Qwen tokenizer.json is available in shared/models.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { haveFiles, readJson, readVocabVectors } from "../../test/shared-data.ts";
import { createTokenizer, type CrumbTokenizer } from "./tokenizer.ts";

// all-MiniLM-L6-v2 ships no tokenizer_config.json here; these are its published values.
const BERT_CONFIG = {
  do_lower_case: true,
  clean_up_tokenization_spaces: true,
  cls_token: "[CLS]",
  sep_token: "[SEP]",
  pad_token: "[PAD]",
  unk_token: "[UNK]",
  mask_token: "[MASK]",
};

const TOKENIZERS: Record<string, { dir: string; config?: Record<string, unknown> }> = {
  gpt2: { dir: "gpt2" },
  llama2: { dir: "llama2" },
  phi3: { dir: "phi-3-mini" },
  bert: { dir: "all-MiniLM-L6-v2", config: BERT_CONFIG },
};

const cache = new Map<string, CrumbTokenizer>();
// bun keeps finished test files in memory: let the large vocabularies go.
afterAll(() => cache.clear());
function load(key: string, override: Record<string, unknown> = {}): CrumbTokenizer {
  const cacheKey = key + JSON.stringify(override);
  let tok = cache.get(cacheKey);
  if (tok === undefined) {
    const { dir, config } = TOKENIZERS[key];
    const tokenizerConfig = config ?? readJson(`hf-tokenizers/${dir}/tokenizer_config.json`);
    tok = createTokenizer({ tokenizerJson: readJson(`hf-tokenizers/${dir}/tokenizer.json`), tokenizerConfig: { ...tokenizerConfig, ...override } });
    cache.set(cacheKey, tok);
  }
  return tok;
}
const haveTokenizer = (key: string) =>
  haveFiles(`hf-tokenizers/${TOKENIZERS[key].dir}/tokenizer.json`, ...(TOKENIZERS[key].config ? [] : [`hf-tokenizers/${TOKENIZERS[key].dir}/tokenizer_config.json`]));

describe("llama.cpp .inp/.out vectors (ids without special tokens)", () => {
  for (const [vocab, key] of [["gpt-2", "gpt2"], ["llama-spm", "llama2"], ["phi-3", "phi3"], ["bert-bge", "bert"]]) {
    const base = `gguf-vocab/ggml-vocab-${vocab}.gguf`;
    test.skipIf(!haveTokenizer(key) || !haveFiles(`${base}.inp`, `${base}.out`))(`${vocab} with ${TOKENIZERS[key].dir}`, () => {
      const tok = load(key);
      const vectors = readVocabVectors(base);
      expect(vectors.length).toBe(47);
      for (const { text, ids } of vectors) expect(tok.encode(text, { addSpecialTokens: false })).toEqual(ids);
    });
  }
});

describe("swift-transformers vectors", () => {
  for (const [file, key] of [["gpt2_encoded_tokens", "gpt2"], ["llama_encoded", "llama2"], ["bert_uncased_encoded", "bert"]]) {
    const path = `tokenizer-tests/swift-transformers/${file}.json`;
    test.skipIf(!haveTokenizer(key) || !haveFiles(path))(file, () => {
      const tok = load(key);
      const s = readJson<{ text: string; token_ids: number[]; decoded_text: string }>(path);
      expect(tok.encode(s.text)).toEqual(s.token_ids);
      expect(tok.decode(s.token_ids)).toBe(s.decoded_text);
    });
  }
});

interface Baseline {
  entries: { id: string; input_ids: number[]; decoded_with_special: string; decoded_skip_special: string }[];
}

describe("multilingual conformance (83 inputs)", () => {
  // The references come from the Hub configs of each model. The swift-transformers copy of
  // gpt2's tokenizer_config.json sets clean_up_tokenization_spaces true, which the Hub's gpt2
  // does not (transformers 4.57 then leaves clean-up off: "x !== null" stays as is).
  const cases: [string, string, Record<string, unknown>][] = [
    ["gpt2", "gpt2", { clean_up_tokenization_spaces: false }],
    ["tinyllama", "llama2", {}],
    ["bge_small", "bert", {}],
  ];
  for (const [file, key, override] of cases) {
    const path = `tokenizer-tests/multilingual/${file}_multilingual.json`;
    test.skipIf(!haveTokenizer(key) || !haveFiles(path, "tokenizer-tests/multilingual/inputs.json"))(file, () => {
      const tok = load(key, override);
      const inputs = new Map(
        readJson<{ id: string; text: string }[]>("tokenizer-tests/multilingual/inputs.json").map((i) => [i.id, i.text]),
      );
      const { entries } = readJson<Baseline>(path);
      expect(entries.length).toBe(83);
      for (const e of entries) {
        const text = inputs.get(e.id);
        if (text === undefined) throw new Error(`no input ${e.id}`);
        expect({ id: e.id, ids: tok.encode(text) }).toEqual({ id: e.id, ids: e.input_ids });
        expect(tok.decode(e.input_ids)).toBe(e.decoded_with_special);
        expect(tok.decode(e.input_ids, { skipSpecialTokens: true })).toBe(e.decoded_skip_special);
      }
    });
  }

  test.skipIf(!haveTokenizer("gpt2") || !haveFiles("tokenizer-tests/multilingual/gpt2_multilingual.json"))(
    "gpt2 with its copied config applies clean-up, as that config asks",
    () => {
      const tok = load("gpt2");
      const { entries } = readJson<Baseline>("tokenizer-tests/multilingual/gpt2_multilingual.json");
      const code = entries.find((e) => e.id === "code-javascript-modern");
      if (code === undefined) throw new Error("missing case");
      expect(tok.decode(code.input_ids)).toBe(code.decoded_with_special.replace(" !==", "!==").replace(" ??", "??"));
    },
  );
});
