/**
 * ggml's 32-weight block formats (ggml-common.h block_q4_0 ... block_q8_0; GGUF spec
 * ggml/docs/gguf.md), decoded as ggml-quants.c dequantize_row_* does. In every 4/5-bit
 * format byte j of `qs` holds weight j in its low nibble and weight j + 16 in its high
 * nibble; Q5's fifth bits are one little-endian u32 `qh`, bit k for weight k.
 *
 * | type | bytes | layout                               | weight            |
 * |------|-------|--------------------------------------|-------------------|
 * | Q4_0 | 18    | f16 d, qs[16]                        | (q - 8)·d         |
 * | Q4_1 | 20    | f16 d, f16 m, qs[16]                 | q·d + m           |
 * | Q5_0 | 22    | f16 d, u32 qh, qs[16]                | (q - 16)·d        |
 * | Q5_1 | 24    | f16 d, f16 m, u32 qh, qs[16]         | q·d + m           |
 * | Q8_0 | 34    | f16 d, int8 q[32]                    | q·d               |
 */
import { type BlockFormat, decodeBlocks, f32, halfAt, i8At, u32At } from "./ggml-block.ts";

const HALF = 16;

/** The 4-bit code of weight k (0..31) of a block whose nibbles start at `qs`. */
function nibble(src: Uint8Array, qs: number, k: number): number {
  return k < HALF ? src[qs + k]! & 15 : src[qs + k - HALF]! >> 4;
}

export const Q4_0: BlockFormat = {
  name: "Q4_0",
  blockSize: 32,
  typeSize: 18,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at);
    for (let k = 0; k < 32; k++) out[o + k] = f32((nibble(src, at + 2, k) - 8) * d);
  },
};

export const Q4_1: BlockFormat = {
  name: "Q4_1",
  blockSize: 32,
  typeSize: 20,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at);
    const m = halfAt(src, at + 2);
    for (let k = 0; k < 32; k++) out[o + k] = f32(f32(nibble(src, at + 4, k) * d) + m);
  },
};

export const Q5_0: BlockFormat = {
  name: "Q5_0",
  blockSize: 32,
  typeSize: 22,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at);
    const qh = u32At(src, at + 2);
    for (let k = 0; k < 32; k++) {
      const q = nibble(src, at + 6, k) | (((qh >>> k) & 1) << 4);
      out[o + k] = f32((q - 16) * d);
    }
  },
};

export const Q5_1: BlockFormat = {
  name: "Q5_1",
  blockSize: 32,
  typeSize: 24,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at);
    const m = halfAt(src, at + 2);
    const qh = u32At(src, at + 4);
    for (let k = 0; k < 32; k++) {
      const q = nibble(src, at + 8, k) | (((qh >>> k) & 1) << 4);
      out[o + k] = f32(f32(q * d) + m);
    }
  },
};

export const Q8_0: BlockFormat = {
  name: "Q8_0",
  blockSize: 32,
  typeSize: 34,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at);
    for (let k = 0; k < 32; k++) out[o + k] = f32(i8At(src, at + 2 + k) * d);
  },
};

export const LEGACY_FORMATS: readonly BlockFormat[] = [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0];

/** Q8_0 blocks → fp32; `n` is a multiple of 32 (checked by the caller). */
export function decodeQ8_0(bytes: Uint8Array, n: number): Float32Array {
  return decodeBlocks(Q8_0, bytes, n);
}

/** Q4_0 blocks → fp32; `n` is a multiple of 32 (checked by the caller). */
export function decodeQ4_0(bytes: Uint8Array, n: number): Float32Array {
  return decodeBlocks(Q4_0, bytes, n);
}
