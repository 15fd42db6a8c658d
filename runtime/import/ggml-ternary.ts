/**
 * ggml's ternary formats (ggml-common.h block_tq1_0 / block_tq2_0, from the TriLMs/BitNet
 * b1.58 work), decoded as ggml-quants.c dequantize_row_tq*: w = (t − 1)·d with t in 0..2
 * (TQ2_0 stores two bits, so a corrupt 3 decodes to 2·d as it does in ggml).
 *
 * - TQ2_0 (66 bytes: qs[64], f16 d): weight i is bits 2·((i>>5)&3) of qs[32·(i>>7) + (i&31)].
 * - TQ1_0 (54 bytes: qs[48], qh[4], f16 d): five trits per qs byte and four per qh byte, in
 *   "fixed point base 3": trit n of byte b is ((b·3^n mod 256)·3) >> 8. Weights 0..159 are
 *   trit i>>5 of qs[i&31]; 160..239 are trit (i−160)>>4 of qs[32 + (i&15)]; 240..255 are
 *   trit (i−240)>>2 of qh[i&3].
 */
import { type BlockFormat, f32, halfAt } from "./ggml-block.ts";

const POW3 = [1, 3, 9, 27, 81, 243];

/** Trit n (0..4) of a base-3 fixed-point byte. */
export function tritOf(byte: number, n: number): number {
  return (((byte * POW3[n]!) & 255) * 3) >> 8;
}

export const TQ1_0: BlockFormat = {
  name: "TQ1_0",
  blockSize: 256,
  typeSize: 54,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at + 52);
    for (let i = 0; i < 256; i++) {
      let t: number;
      if (i < 160) t = tritOf(src[at + (i & 31)]!, i >> 5);
      else if (i < 240) t = tritOf(src[at + 32 + (i & 15)]!, (i - 160) >> 4);
      else t = tritOf(src[at + 48 + (i & 3)]!, (i - 240) >> 2);
      out[o + i] = f32((t - 1) * d);
    }
  },
};

export const TQ2_0: BlockFormat = {
  name: "TQ2_0",
  blockSize: 256,
  typeSize: 66,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at + 64);
    for (let i = 0; i < 256; i++) {
      const t = (src[at + 32 * (i >> 7) + (i & 31)]! >> (2 * ((i >> 5) & 3))) & 3;
      out[o + i] = f32((t - 1) * d);
    }
  },
};

export const TERNARY_FORMATS: readonly BlockFormat[] = [TQ1_0, TQ2_0];
