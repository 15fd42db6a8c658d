/**
 * Converts a SentencePiece `.model` file (a serialized ModelProto, sentencepiece_model.proto)
 * into a Hugging Face tokenizer.json. BPE models become an HF BPE with merges ordered by
 * score (see spm-bpe.ts); Unigram models become an HF Unigram with the piece scores.
 *
 * Only the fields conversion needs are read: pieces (1: piece, score, type), trainer_spec
 * (2: model_type 3, byte_fallback 35, unk/bos/eos/pad ids 40-43) and normalizer_spec
 * (3: precompiled_charsmap 2, add_dummy_prefix 3, remove_extra_whitespaces 4).
 */

import { TokenizerError } from "../errors.ts";
import type { TokenizerFiles } from "../models/types.ts";
import { type Piece, PieceType, removeExtraWhitespaces, SPACE_MARKER, spmBpeToFiles } from "./spm-bpe.ts";

const MODEL_UNIGRAM = 1;
const MODEL_BPE = 2;

/** Minimal protobuf wire-format reader over a byte range. */
class ProtoReader {
  private readonly view: DataView;
  pos: number;
  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
  }
  private fail(what: string): never {
    throw new TokenizerError(`SentencePiece model is corrupt: ${what} at byte ${this.pos}; is this a tokenizer.model file?`);
  }
  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail("truncated varint");
      const b = this.bytes[this.pos++];
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return result;
      scale *= 128;
    }
    this.fail("varint longer than 10 bytes");
  }
  float32(): number {
    if (this.pos + 4 > this.end) this.fail("truncated float");
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }
  /** Returns [start, end) of a length-delimited field. */
  span(): [number, number] {
    const length = this.varint();
    const start = this.pos;
    if (start + length > this.end) this.fail(`length ${length} past the end of the message`);
    this.pos += length;
    return [start, start + length];
  }
  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 2) this.span();
    else if (wireType === 5) this.pos += 4;
    else this.fail(`unsupported wire type ${wireType}`);
    if (this.pos > this.end) this.fail("field past the end of the message");
  }
  /** Iterates over (field number, wire type) until the end of the message. */
  *fields(): Generator<[number, number]> {
    while (this.pos < this.end) {
      const key = this.varint();
      yield [Math.floor(key / 8), key & 7];
    }
  }
  sub(span: [number, number]): ProtoReader {
    return new ProtoReader(this.bytes, span[0], span[1]);
  }
  text(span: [number, number]): string {
    return new TextDecoder().decode(this.bytes.subarray(span[0], span[1]));
  }
}

export interface SentencePieceModel {
  pieces: Piece[];
  modelType: number;
  byteFallback: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  precompiledCharsmap?: Uint8Array;
}

/** Parses the parts of a SentencePiece ModelProto that tokenization depends on. */
export function readSentencePieceModel(bytes: Uint8Array): SentencePieceModel {
  const model: SentencePieceModel = {
    pieces: [],
    modelType: MODEL_UNIGRAM,
    byteFallback: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
  };
  const top = new ProtoReader(bytes, 0, bytes.byteLength);
  for (const [field, wire] of top.fields()) {
    if (field === 1 && wire === 2) {
      const r = top.sub(top.span());
      const piece: Piece = { piece: "", score: 0, type: PieceType.NORMAL };
      for (const [f, w] of r.fields()) {
        if (f === 1 && w === 2) piece.piece = r.text(r.span());
        else if (f === 2 && w === 5) piece.score = r.float32();
        else if (f === 3 && w === 0) piece.type = r.varint();
        else r.skip(w);
      }
      model.pieces.push(piece);
    } else if (field === 2 && wire === 2) {
      const r = top.sub(top.span());
      for (const [f, w] of r.fields()) {
        if (f === 3 && w === 0) model.modelType = r.varint();
        else if (f === 35 && w === 0) model.byteFallback = r.varint() !== 0;
        else if (f >= 40 && f <= 43 && w === 0) {
          // int32 fields: negative values arrive as 64-bit two's complement varints.
          let v = r.varint();
          if (v >= 2 ** 63) v -= 2 ** 64;
          if (f === 40) model.unkId = v;
          else if (f === 41) model.bosId = v;
          else if (f === 42) model.eosId = v;
          else model.padId = v;
        } else r.skip(w);
      }
    } else if (field === 3 && wire === 2) {
      const r = top.sub(top.span());
      for (const [f, w] of r.fields()) {
        if (f === 2 && w === 2) {
          const [s, e] = r.span();
          model.precompiledCharsmap = bytes.subarray(s, e);
        } else if (f === 3 && w === 0) model.addDummyPrefix = r.varint() !== 0;
        else if (f === 4 && w === 0) model.removeExtraWhitespaces = r.varint() !== 0;
        else r.skip(w);
      }
    } else {
      top.skip(wire);
    }
  }
  if (model.pieces.length === 0) {
    throw new TokenizerError("SentencePiece model has no pieces; is this a tokenizer.model file?");
  }
  return model;
}

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function unigramToFiles(model: SentencePieceModel): TokenizerFiles {
  const added = model.pieces.flatMap((p, id) =>
    p.type === PieceType.CONTROL || p.type === PieceType.UNKNOWN || p.type === PieceType.USER_DEFINED
      ? [{ id, content: p.piece, single_word: false, lstrip: false, rstrip: false, normalized: false, special: p.type !== PieceType.USER_DEFINED }]
      : [],
  );
  const normalizers: Record<string, unknown>[] = [];
  if (model.precompiledCharsmap !== undefined && model.precompiledCharsmap.length > 0) {
    normalizers.push({ type: "Precompiled", precompiled_charsmap: base64(model.precompiledCharsmap) });
  }
  if (model.removeExtraWhitespaces) normalizers.push(...removeExtraWhitespaces());
  const piece = (id: number) => (id >= 0 && id < model.pieces.length ? model.pieces[id].piece : undefined);
  const bos = piece(model.bosId);
  const eos = piece(model.eosId);
  const tokenizerJson: Record<string, unknown> = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: normalizers.length === 0 ? null : { type: "Sequence", normalizers },
    pre_tokenizer: {
      type: "Metaspace",
      replacement: SPACE_MARKER,
      prepend_scheme: model.addDummyPrefix ? "always" : "never",
      split: true,
    },
    post_processor: null,
    decoder: { type: "Metaspace", replacement: SPACE_MARKER, prepend_scheme: model.addDummyPrefix ? "always" : "never", split: true },
    model: {
      type: "Unigram",
      unk_id: model.unkId >= 0 ? model.unkId : null,
      vocab: model.pieces.map((p) => [p.piece, p.score]),
      byte_fallback: model.byteFallback,
    },
  };
  const tokenizerConfig: Record<string, unknown> = { clean_up_tokenization_spaces: false, add_bos_token: false };
  if (bos !== undefined) tokenizerConfig.bos_token = bos;
  if (eos !== undefined) tokenizerConfig.eos_token = eos;
  if (piece(model.unkId) !== undefined) tokenizerConfig.unk_token = piece(model.unkId);
  if (piece(model.padId) !== undefined) tokenizerConfig.pad_token = piece(model.padId);
  return { tokenizerJson, tokenizerConfig };
}

/**
 * Converts SentencePiece model bytes into tokenizer.json / tokenizer_config.json.
 * BPE models add BOS like LlamaTokenizer does; Unigram models (T5-style) add nothing.
 */
export function sentencePieceModelToFiles(bytes: Uint8Array): TokenizerFiles {
  const model = readSentencePieceModel(bytes);
  if (model.modelType === MODEL_UNIGRAM) return unigramToFiles(model);
  if (model.modelType !== MODEL_BPE) {
    throw new TokenizerError(
      `SentencePiece model_type ${model.modelType} is not supported; supported: UNIGRAM (1), BPE (2)`,
    );
  }
  const id = (v: number) => (v >= 0 && v < model.pieces.length ? v : undefined);
  return spmBpeToFiles({
    pieces: model.pieces,
    unkId: id(model.unkId),
    bosId: id(model.bosId),
    eosId: id(model.eosId),
    padId: id(model.padId),
    addDummyPrefix: model.addDummyPrefix,
    removeExtraWhitespaces: model.removeExtraWhitespaces,
    byteFallback: model.byteFallback,
    addBosToken: id(model.bosId) !== undefined,
  });
}
