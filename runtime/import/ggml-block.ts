/**
 * What every ggml block decoder shares: the block format record (elements and bytes per
 * block, ggml.c type_traits) and the little-endian field readers. Decoders reproduce ggml's
 * CPU dequantize_row_* arithmetic (ggml-quants.c) exactly: every product and sum is rounded
 * to binary32 (Math.fround) in the order ggml evaluates it, so a decoded weight is the very
 * float llama.cpp computes, not merely a close one.
 */
import { f16ToF32 } from "../../runtime/format/pack-f16.ts";

/** One ggml block type: `decodeBlock` writes `blockSize` floats for the block at `src[at]`. */
export interface BlockFormat {
  readonly name: string;
  readonly blockSize: number;
  readonly typeSize: number;
  decodeBlock(src: Uint8Array, at: number, out: Float32Array, o: number): void;
}

/** binary32 rounding of every intermediate, as ggml's float arithmetic does. */
export const f32 = Math.fround;

/** 65536-entry binary16 table: decoding a large tensor is a lookup per element. */
let f16Table: Float32Array | undefined;
export function f16Lut(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

/** The binary16 value stored little-endian at `at`. */
export function halfAt(src: Uint8Array, at: number): number {
  return f16Lut()[src[at]! | (src[at + 1]! << 8)]!;
}

export function u16At(src: Uint8Array, at: number): number {
  return src[at]! | (src[at + 1]! << 8);
}

export function u32At(src: Uint8Array, at: number): number {
  return (src[at]! | (src[at + 1]! << 8) | (src[at + 2]! << 16) | (src[at + 3]! << 24)) >>> 0;
}

export function i8At(src: Uint8Array, at: number): number {
  return (src[at]! << 24) >> 24;
}

/** Decodes `numel` elements (a whole number of blocks, checked by the caller) of one format. */
export function decodeBlocks(format: BlockFormat, bytes: Uint8Array, numel: number): Float32Array {
  const out = new Float32Array(numel);
  const blocks = numel / format.blockSize;
  for (let b = 0; b < blocks; b++) format.decodeBlock(bytes, b * format.typeSize, out, b * format.blockSize);
  return out;
}
