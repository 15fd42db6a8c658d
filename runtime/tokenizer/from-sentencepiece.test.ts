/**
 * SentencePiece .model conversion: Llama 2's model reproduces llama.cpp's llama-spm vectors,
 * tok512.model matches tok512.bin, the Mistral models round-trip text and keep their control
 * tokens special; a hand-built Unigram model and corrupt input are covered too.
 */

import { describe, expect, test } from "bun:test";
import { TokenizerError } from "../errors.ts";
import { llama2cTokenizerToFiles } from "./from-llama2c.ts";
import { readSentencePieceModel, sentencePieceModelToFiles } from "./from-sentencepiece.ts";
import { haveFiles, readBytes, readJson, readVocabVectors } from "../../test/shared-data.ts";
import { createTokenizer } from "./tokenizer.ts";

const LLAMA2 = "sentencepiece/llama2/tokenizer.model";
const MISTRAL_V1 = "sentencepiece/mistral-v1/tokenizer.model";
const MISTRAL_V3 = "sentencepiece/mistral-v3/tokenizer.model.v3";
const SPM_VECTORS = "gguf-vocab/ggml-vocab-llama-spm.gguf";

const ROUND_TRIP = [
  "Hello world! How are you?",
  "The quick brown fox jumps over the lazy dog. 1234567890",
  "  leading spaces, double  spaces and trailing ",
  "tabs\tand\nnewlines\n\nend",
  "def f(x):\n    return x ** 2  # comment",
];

describe("Llama 2 tokenizer.model", () => {
  test.skipIf(!haveFiles(LLAMA2, `${SPM_VECTORS}.inp`, `${SPM_VECTORS}.out`))("encodes llama.cpp's llama-spm vectors", () => {
    const model = readSentencePieceModel(readBytes(LLAMA2));
    expect(model.pieces.length).toBe(32000);
    expect(model.modelType).toBe(2);
    expect(model.byteFallback).toBe(true);
    expect(model.removeExtraWhitespaces).toBe(false);
    const tok = createTokenizer(sentencePieceModelToFiles(readBytes(LLAMA2)));
    const vectors = readVocabVectors(SPM_VECTORS);
    expect(vectors.length).toBe(47);
    for (const { text, ids } of vectors) expect(tok.encode(text, { addSpecialTokens: false })).toEqual(ids);
    expect(tok.encode("Hi")[0]).toBe(1);
  });
});

describe("stories260K tok512.model", () => {
  test.skipIf(!haveFiles("stories260K/tok512.model", "stories260K/tok512.bin", "stories260K/tokenizer_examples.json"))(
    "gives the same ids as tok512.bin",
    () => {
      const fromModel = createTokenizer(sentencePieceModelToFiles(readBytes("stories260K/tok512.model")));
      const fromBin = createTokenizer(llama2cTokenizerToFiles(readBytes("stories260K/tok512.bin")));
      const { examples } = readJson<{ examples: { text: string; ids: number[] }[] }>("stories260K/tokenizer_examples.json");
      for (const { text, ids } of examples) {
        expect(fromModel.encode(text)).toEqual(ids);
        expect(fromBin.encode(text)).toEqual(ids);
      }
      // tok512.model sets remove_extra_whitespaces (spaces only); llama2.c's run.c does not.
      expect(fromModel.encode("  Once   upon a time ")).toEqual(examples[0].ids);
      expect(fromModel.encode("Once\n\nupon")).not.toEqual(fromModel.encode("Once upon"));
      expect(fromBin.encode("  Once")).not.toEqual(fromBin.encode("Once"));
    },
  );
});

describe("Mistral models", () => {
  for (const path of [MISTRAL_V1, MISTRAL_V3]) {
    test.skipIf(!haveFiles(path))(`${path} round-trips text`, () => {
      const tok = createTokenizer(sentencePieceModelToFiles(readBytes(path)));
      expect(tok.bosTokenId).toBe(1);
      expect(tok.eosTokenIds).toEqual([2]);
      for (const text of ROUND_TRIP) {
        const ids = tok.encode(text);
        expect(ids[0]).toBe(1);
        expect(tok.decode(ids, { skipSpecialTokens: true })).toBe(text);
      }
    });
  }

  test.skipIf(!haveFiles(MISTRAL_V3))("v3 control tokens are special tokens", () => {
    const tok = createTokenizer(sentencePieceModelToFiles(readBytes(MISTRAL_V3)));
    expect(tok.vocabSize).toBe(32768);
    const inst = tok.tokenToId("[INST]") as number;
    const endInst = tok.tokenToId("[/INST]") as number;
    expect([inst, endInst]).toEqual([3, 4]);
    const ids = tok.encode("[INST]Hi[/INST]", { addSpecialTokens: false });
    expect(ids[0]).toBe(inst);
    expect(ids.at(-1)).toBe(endInst);
    expect(tok.specialTokenIds.has(inst)).toBe(true);
    expect(tok.decode(ids, { skipSpecialTokens: true }).trim()).toBe("Hi");
    expect(tok.decode(ids)).toContain("[INST]");
  });
});

/** Encodes a tiny ModelProto: pieces (piece, score, type), trainer_spec, normalizer_spec. */
function buildModel(pieces: [string, number, number][], modelType: number): Uint8Array {
  const out: number[] = [];
  const varint = (v: number, into: number[]) => {
    while (v >= 0x80) {
      into.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    into.push(v);
  };
  const field = (n: number, body: number[], into: number[]) => {
    varint(n * 8 + 2, into);
    varint(body.length, into);
    into.push(...body);
  };
  for (const [text, score, type] of pieces) {
    const body: number[] = [];
    field(1, [...new TextEncoder().encode(text)], body);
    const f = new Uint8Array(new Float32Array([score]).buffer);
    body.push(2 * 8 + 5, ...f);
    body.push(3 * 8, type);
    field(1, body, out);
  }
  const trainer: number[] = [3 * 8, modelType];
  varint(40 * 8, trainer);
  trainer.push(0);
  field(2, trainer, out);
  field(3, [3 * 8, 1, 4 * 8, 1], out);
  return new Uint8Array(out);
}

describe("synthetic models", () => {
  test("Unigram models become an HF Unigram that picks the best segmentation", () => {
    const bytes = buildModel(
      [
        ["<unk>", 0, 2],
        ["<s>", 0, 3],
        ["</s>", 0, 3],
        ["▁", -2, 1],
        ["a", -3, 1],
        ["b", -3, 1],
        ["▁ab", -1, 1],
        ["ab", -4, 1],
      ],
      1,
    );
    const files = sentencePieceModelToFiles(bytes);
    expect((files.tokenizerJson.model as { type: string }).type).toBe("Unigram");
    const tok = createTokenizer(files);
    expect(tok.encode("ab ab")).toEqual([6, 6]);
    expect(tok.encode("ba")).toEqual([3, 5, 4]);
    expect(tok.decode([6, 6])).toBe("ab ab");
  });

  test("corrupt and unknown models are TokenizerErrors", () => {
    expect(() => sentencePieceModelToFiles(new Uint8Array([0x0a, 0x50, 0x01]))).toThrow(TokenizerError);
    expect(() => sentencePieceModelToFiles(new Uint8Array(0))).toThrow(/no pieces/);
    expect(() => sentencePieceModelToFiles(buildModel([["<unk>", 0, 2]], 3))).toThrow(/model_type 3 is not supported/);
  });
});
