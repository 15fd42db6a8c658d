/**
 * The tokenizer wrapper and the streaming detokenizer: special-token handling, input checks,
 * malformed tokenizer.json, and streamed deltas that concatenate to the full decode without
 * ever emitting a broken character.
 */

import { describe, expect, test } from "bun:test";
import { TokenizerError } from "../errors.ts";
import { createDetokenizer } from "./detokenizer.ts";
import { llama2cTokenizerToFiles } from "./from-llama2c.ts";
import { haveFiles, readBytes, readJson } from "../../test/shared-data.ts";
import { createTokenizer, type CrumbTokenizer, tokenContent } from "./tokenizer.ts";

const TOK512 = "stories260K/tok512.bin";
const hfTokenizer = (dir: string) =>
  createTokenizer({
    tokenizerJson: readJson(`hf-tokenizers/${dir}/tokenizer.json`),
    tokenizerConfig: readJson(`hf-tokenizers/${dir}/tokenizer_config.json`),
  });

/** Streams ids one by one; returns the deltas (flush last). */
function stream(tok: CrumbTokenizer, ids: readonly number[], skipSpecialTokens = false): string[] {
  const detok = createDetokenizer(tok, { skipSpecialTokens });
  const deltas = ids.map((id) => detok.push(id));
  deltas.push(detok.flush());
  return deltas;
}

const MIXED = "Hi 👋🏽 naïve café — 東京タワー, Привет! 🦙\n\tend";

describe("createTokenizer", () => {
  test.skipIf(!haveFiles("hf-tokenizers/llama2/tokenizer.json", "hf-tokenizers/llama2/tokenizer_config.json"))(
    "reads BOS/EOS from {content} objects and honours the options",
    () => {
      const tok = hfTokenizer("llama2");
      expect(tok.bosToken).toBe("<s>");
      expect(tok.eosToken).toBe("</s>");
      expect(tok.bosTokenId).toBe(1);
      expect(tok.eosTokenIds).toEqual([2]);
      expect(tok.vocabSize).toBe(32000);
      expect(tok.encode("Hello")).toEqual([1, 15043]);
      expect(tok.encode("Hello", { addSpecialTokens: false })).toEqual([15043]);
      expect(tok.decode([1, 15043, 2])).toBe("<s> Hello</s>");
      expect(tok.decode([1, 15043, 2], { skipSpecialTokens: true })).toBe("Hello");
      expect(tok.decode([])).toBe("");
      expect(tok.idToToken(15043)).toBe("▁Hello");
      expect(tok.tokenToId("▁Hello")).toBe(15043);
      expect(tok.tokenToId("no such token")).toBeUndefined();
      expect([...tok.specialTokenIds].sort()).toEqual([0, 1, 2]);
    },
  );

  test.skipIf(!haveFiles("hf-tokenizers/phi-3-mini/tokenizer.json", "hf-tokenizers/phi-3-mini/tokenizer_config.json"))(
    "end-of-turn markers count as EOS",
    () => {
      const tok = hfTokenizer("phi-3-mini");
      expect(tok.eosTokenIds).toEqual([32000, 32007]);
    },
  );

  test.skipIf(!haveFiles("hf-tokenizers/llama2/tokenizer.json"))("without a config, BOS/EOS come from the added tokens", () => {
    const tok = createTokenizer({ tokenizerJson: readJson("hf-tokenizers/llama2/tokenizer.json"), tokenizerConfig: {} });
    expect([tok.bosToken, tok.bosTokenId, tok.eosToken, tok.eosTokenIds]).toEqual(["<s>", 1, "</s>", [2]]);
  });

  test("tokenContent accepts strings and {content} objects", () => {
    expect(tokenContent("<s>")).toBe("<s>");
    expect(tokenContent({ content: "</s>", lstrip: false })).toBe("</s>");
    expect(tokenContent(null)).toBeUndefined();
    expect(tokenContent(42)).toBeUndefined();
  });

  test("malformed tokenizer.json is a TokenizerError with the reason", () => {
    const config = {};
    expect(() => createTokenizer({ tokenizerJson: {}, tokenizerConfig: config })).toThrow(/no "model" section/);
    expect(() => createTokenizer({ tokenizerJson: { model: { type: "BPE" } }, tokenizerConfig: config })).toThrow(/has no "vocab"/);
    expect(() => createTokenizer({ tokenizerJson: { model: { type: "BPE", vocab: {} } }, tokenizerConfig: config })).toThrow(
      /no "merges" array/,
    );
    expect(() =>
      createTokenizer({ tokenizerJson: { model: { type: "BPE", vocab: {}, merges: [] }, decoder: { type: "Nope" } }, tokenizerConfig: config }),
    ).toThrow(TokenizerError);
    expect(() =>
      createTokenizer({ tokenizerJson: { model: { type: "BPE", vocab: {}, merges: [] }, decoder: { type: "Nope" } }, tokenizerConfig: config }),
    ).toThrow(/Unknown Decoder type: Nope/);
    expect(() => createTokenizer({ tokenizerJson: [] as unknown as Record<string, unknown>, tokenizerConfig: config })).toThrow(
      TokenizerError,
    );
  });

  test.skipIf(!haveFiles(TOK512))("out-of-range ids and non-string text are rejected", () => {
    const tok = createTokenizer(llama2cTokenizerToFiles(readBytes(TOK512)));
    expect(() => tok.decode([5, 512])).toThrow(/cannot decode token id 512: ids must be integers in \[0, 512\)/);
    expect(() => tok.decode([1.5])).toThrow(TokenizerError);
    expect(() => tok.encode(7 as unknown as string)).toThrow(/encode expects a string, got number/);
  });
});

describe("createDetokenizer", () => {
  test.skipIf(!haveFiles(TOK512, "stories260K/expected_greedy_t0.json"))("streams the greedy sample exactly", () => {
    const tok = createTokenizer(llama2cTokenizerToFiles(readBytes(TOK512)));
    const { ids, text } = readJson<{ ids: number[]; text: string }>("stories260K/expected_greedy_t0.json");
    const deltas = stream(tok, ids);
    expect(deltas.join("")).toBe(text);
    expect(deltas[0]).toBe("Once");
    expect(deltas[1]).toBe(" upon");
  });

  for (const dir of ["llama2", "gpt2"]) {
    test.skipIf(!haveFiles(`hf-tokenizers/${dir}/tokenizer.json`, `hf-tokenizers/${dir}/tokenizer_config.json`))(
      `${dir}: multi-byte characters are held back until complete`,
      () => {
        const tok = hfTokenizer(dir);
        const ids = tok.encode(MIXED, { addSpecialTokens: false });
        // Some characters span several tokens (byte fallback / byte-level pieces).
        expect(ids.length).toBeGreaterThan([...MIXED].length / 2);
        const deltas = stream(tok, ids);
        expect(deltas.join("")).toBe(tok.decode(ids));
        expect(deltas.join("")).toBe(MIXED);
        for (const delta of deltas) expect(delta.includes("\uFFFD")).toBe(false);
        expect(deltas.filter((d) => d === "").length).toBeGreaterThan(1);
      },
    );
  }

  test.skipIf(!haveFiles(TOK512))("an incomplete character at the end is flushed as U+FFFD", () => {
    const tok = createTokenizer(llama2cTokenizerToFiles(readBytes(TOK512)));
    const detok = createDetokenizer(tok);
    // "☕" is E2 98 95; byte tokens are byte + 3. Send only the first two bytes.
    expect(detok.push(0xe2 + 3)).toBe("");
    expect(detok.push(0x98 + 3)).toBe("");
    expect(detok.flush()).toBe("\uFFFD");
    expect(detok.flush()).toBe("");
    const complete = createDetokenizer(tok);
    expect([0xe2, 0x98, 0x95].map((b) => complete.push(b + 3))).toEqual(["", "", "☕"]);
  });

  test.skipIf(!haveFiles("hf-tokenizers/llama2/tokenizer.json", "hf-tokenizers/llama2/tokenizer_config.json"))(
    "skipSpecialTokens drops BOS/EOS from the stream",
    () => {
      const tok = hfTokenizer("llama2");
      const ids = tok.encode("Hello world");
      expect(stream(tok, [...ids, 2], true).join("")).toBe("Hello world");
      expect(stream(tok, [...ids, 2]).join("")).toBe(tok.decode([...ids, 2]));
    },
  );
});
