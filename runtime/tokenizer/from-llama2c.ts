/**
 * Converts a karpathy/llama2.c `tokenizer.bin` into an equivalent Hugging Face tokenizer.json.
 *
 * File layout (llama2.c tokenizer.py export, read by run.c build_tokenizer()): int32
 * max_token_length, then per token: float32 score, int32 byte length, UTF-8 bytes; all
 * little-endian. The export replaced "▁" with " " in every piece and wrote BOS/EOS as
 * "\n<s>\n" / "\n</s>\n"; both are mapped back here. The resulting tokenizer reproduces
 * run.c encode(): dummy-prefix space, byte fallback (id = byte + 3), highest-score merges,
 * BOS id 1, EOS id 2, unk id 0.
 */

import { TokenizerError } from "../errors.ts";
import type { TokenizerFiles } from "../models/types.ts";
import { type Piece, PieceType, SPACE_MARKER, spmBpeToFiles } from "./spm-bpe.ts";

const BYTE_PIECE = /^<0x[0-9A-F]{2}>$/;

/** Reads the pieces and scores of a llama2.c tokenizer.bin. */
export function readLlama2cTokenizer(bytes: Uint8Array): { maxTokenLength: number; pieces: Piece[] } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  if (bytes.byteLength < 4) {
    throw new TokenizerError(`llama2.c tokenizer.bin is ${bytes.byteLength} bytes; expected at least a 4-byte header`);
  }
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0 || maxTokenLength > 4096) {
    throw new TokenizerError(
      `llama2.c tokenizer.bin has max_token_length ${maxTokenLength}; this is not a llama2.c tokenizer file`,
    );
  }
  const pieces: Piece[] = [];
  let offset = 4;
  while (offset < bytes.byteLength) {
    if (offset + 8 > bytes.byteLength) {
      throw new TokenizerError(`llama2.c tokenizer.bin is truncated in the header of token ${pieces.length} at byte ${offset}`);
    }
    const score = view.getFloat32(offset, true);
    const length = view.getInt32(offset + 4, true);
    offset += 8;
    if (length < 0 || length > maxTokenLength || offset + length > bytes.byteLength) {
      throw new TokenizerError(
        `llama2.c tokenizer.bin token ${pieces.length} has length ${length} at byte ${offset - 4} ` +
          `(max_token_length ${maxTokenLength}, file size ${bytes.byteLength}); the file is truncated or corrupt`,
      );
    }
    let text: string;
    try {
      text = decoder.decode(bytes.subarray(offset, offset + length));
    } catch (cause) {
      throw new TokenizerError(`llama2.c tokenizer.bin token ${pieces.length} at byte ${offset} is not valid UTF-8`, {
        cause,
      });
    }
    offset += length;
    pieces.push({ piece: text, score, type: PieceType.NORMAL });
  }
  return { maxTokenLength, pieces };
}

/** Converts llama2.c tokenizer.bin bytes into tokenizer.json / tokenizer_config.json. */
export function llama2cTokenizerToFiles(bytes: Uint8Array): TokenizerFiles {
  const { pieces } = readLlama2cTokenizer(bytes);
  if (pieces.length < 3 + 256) {
    throw new TokenizerError(
      `llama2.c tokenizer.bin has ${pieces.length} tokens; expected <unk>, <s>, </s> and 256 byte tokens at least`,
    );
  }
  const mapped = pieces.map((p, id): Piece => {
    if (id === 0) return { piece: "<unk>", score: p.score, type: PieceType.UNKNOWN };
    if (id === 1 || id === 2) return { piece: id === 1 ? "<s>" : "</s>", score: p.score, type: PieceType.CONTROL };
    if (BYTE_PIECE.test(p.piece)) return { piece: p.piece, score: p.score, type: PieceType.BYTE };
    return { piece: p.piece.replaceAll(" ", SPACE_MARKER), score: p.score, type: PieceType.NORMAL };
  });
  if (mapped[3].piece !== "<0x00>" || mapped[258].piece !== "<0xFF>") {
    throw new TokenizerError(
      `llama2.c tokenizer.bin tokens 3..258 must be the byte tokens <0x00>..<0xFF>, got ${JSON.stringify(mapped[3].piece)}`,
    );
  }
  return spmBpeToFiles({
    pieces: mapped,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    addDummyPrefix: true,
    byteFallback: true,
    addBosToken: true,
  });
}
