/**
 * ggml's i-quant and non-linear formats (ggml-common.h block_iq*), decoded as ggml-quants.c
 * dequantize_row_iq* does. Grids and sign patterns: ggml-grids.ts, ggml-grid-iq1s.ts.
 * Weight i of a 256-block lies in sub-block ib = i>>5 and 8-weight group l = (i>>3)&3 of it,
 * at position j = i&7; "sign" is bit j of a sign byte, set = negative.
 *
 * - IQ2_XXS (66: f16 d, 8 × {4 grid indices u8, u32 w}): ls = w>>28, signs of group l =
 *   KSIGNS[(w >> 7l) & 127]; w_i = ((d·(0.5 + ls))·0.25)·grid[j]·sign.
 * - IQ2_XS (74: f16 d, u16 qs[32], scales[8]): qs[4ib + l] = grid index (9 bits) | sign
 *   pattern index << 9; scale nibble l>>1 of scales[ib]; dl = (d·(0.5 + nibble))·0.25.
 * - IQ2_S (82: f16 d, qs[32] grid low bytes, signs[32], qh[8], scales[8]): index =
 *   qs[4ib + l] | bits 2l..2l+1 of qh[ib] << 8; sign byte signs[4ib + l]; dl as IQ2_XS.
 * - IQ3_XXS (98: f16 d, qs[64] grid indices, 8 × u32 w): dl = (d·(0.5 + (w>>28)))·0.5;
 *   group l takes grid points qs[8ib + 2l] (weights 0..3) and qs[8ib + 2l + 1] (4..7),
 *   signs KSIGNS[(w >> 7l) & 127].
 * - IQ3_S (110: f16 d, qs[64], qh[8], signs[32], scales[4]): point index qs[8ib + 2l + p] |
 *   bit (2l + p) of qh[ib] << 8 (p = 0, 1 for weights 0..3, 4..7); sign byte signs[4ib + l];
 *   dl = d·(1 + 2·nibble (ib&1) of scales[ib>>1]).
 * - IQ1_S (50: f16 d, qs[32], u16 qh[8]): index = qs[4ib + l] | bits 3l..3l+2 of qh[ib] << 8,
 *   dl = d·(2·((qh>>12)&7) + 1), delta = ∓0.125 by bit 15; w = dl·(grid + delta).
 * - IQ1_M (56: qs[32], qh[16], scales[8] as u16 sc[4]): d is the f16 whose four nibbles are
 *   the top nibbles of sc[0..3]; index of group l = qs[4ib + l] | three bits of
 *   qh[2ib + (l>>1)] (low nibble for even l, high for odd) << 8, the nibble's bit 3 giving
 *   delta's sign; dl = d·(2·s + 1), s = 3 bits at 6·(ib&1) + 3·(l>>1) of sc[ib>>1].
 * - IQ4_NL (18: f16 d, qs[16]): w = d·KVALUES[nibble], nibbles as Q4_0.
 * - IQ4_XS (136: f16 d, u16 scales_h, scales_l[4], qs[128]): ls = nibble (ib&1) of
 *   scales_l[ib>>1] | two bits 2ib of scales_h << 4; dl = d·(ls − 32); sub-block ib's 32
 *   weights are nibbles of qs[16ib..16ib+15] as Q4_0.
 */
import { type BlockFormat, f16Lut, f32, halfAt, u16At, u32At } from "./ggml-block.ts";
import { IQ1S_GRID } from "./ggml-grid-iq1s.ts";
import { IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS, KVALUES_IQ4NL } from "./ggml-grids.ts";

const sign = (signs: number, j: number): number => ((signs >> j) & 1) === 1 ? -1 : 1;

/** Writes the 8 weights dl·grid[j]·sign of one group. */
function group8(out: Float32Array, o: number, dl: number, grid: Uint8Array, entry: number, signs: number): void {
  for (let j = 0; j < 8; j++) out[o + j] = f32(dl * grid[8 * entry + j]!) * sign(signs, j);
}

/** Writes 8 weights from two 4-weight grid points (IQ3). */
function group4x2(out: Float32Array, o: number, dl: number, grid: Uint8Array, a: number, b: number, signs: number): void {
  for (let j = 0; j < 4; j++) {
    out[o + j] = f32(dl * grid[4 * a + j]!) * sign(signs, j);
    out[o + 4 + j] = f32(dl * grid[4 * b + j]!) * sign(signs, 4 + j);
  }
}

export const IQ2_XXS: BlockFormat = {
  name: "IQ2_XXS",
  blockSize: 256,
  typeSize: 66,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at);
    for (let ib = 0; ib < 8; ib++) {
      const base = at + 2 + 8 * ib;
      const w = u32At(src, base + 4);
      const dl = f32(f32(d * (0.5 + (w >>> 28))) * 0.25);
      for (let l = 0; l < 4; l++) group8(out, o + 32 * ib + 8 * l, dl, IQ2XXS_GRID, src[base + l]!, KSIGNS_IQ2XS[(w >>> (7 * l)) & 127]!);
    }
  },
};

export const IQ2_XS: BlockFormat = {
  name: "IQ2_XS",
  blockSize: 256,
  typeSize: 74,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at);
    for (let ib = 0; ib < 8; ib++) {
      const scales = src[at + 66 + ib]!;
      for (let l = 0; l < 4; l++) {
        const dl = f32(f32(d * (0.5 + ((scales >> (4 * (l >> 1))) & 15))) * 0.25);
        const q = u16At(src, at + 2 + 2 * (4 * ib + l));
        group8(out, o + 32 * ib + 8 * l, dl, IQ2XS_GRID, q & 511, KSIGNS_IQ2XS[q >> 9]!);
      }
    }
  },
};

export const IQ2_S: BlockFormat = {
  name: "IQ2_S",
  blockSize: 256,
  typeSize: 82,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at);
    for (let ib = 0; ib < 8; ib++) {
      const scales = src[at + 74 + ib]!;
      const qh = src[at + 66 + ib]!;
      for (let l = 0; l < 4; l++) {
        const dl = f32(f32(d * (0.5 + ((scales >> (4 * (l >> 1))) & 15))) * 0.25);
        const index = src[at + 2 + 4 * ib + l]! | (((qh >> (2 * l)) & 3) << 8);
        group8(out, o + 32 * ib + 8 * l, dl, IQ2S_GRID, index, src[at + 34 + 4 * ib + l]!);
      }
    }
  },
};

export const IQ3_XXS: BlockFormat = {
  name: "IQ3_XXS",
  blockSize: 256,
  typeSize: 98,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at);
    for (let ib = 0; ib < 8; ib++) {
      const w = u32At(src, at + 66 + 4 * ib);
      const dl = f32(f32(d * (0.5 + (w >>> 28))) * 0.5);
      for (let l = 0; l < 4; l++) {
        const q = at + 2 + 8 * ib + 2 * l;
        group4x2(out, o + 32 * ib + 8 * l, dl, IQ3XXS_GRID, src[q]!, src[q + 1]!, KSIGNS_IQ2XS[(w >>> (7 * l)) & 127]!);
      }
    }
  },
};

export const IQ3_S: BlockFormat = {
  name: "IQ3_S",
  blockSize: 256,
  typeSize: 110,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at);
    for (let ib = 0; ib < 8; ib++) {
      const dl = f32(d * (1 + 2 * ((src[at + 106 + (ib >> 1)]! >> (4 * (ib & 1))) & 15)));
      const qh = src[at + 66 + ib]!;
      for (let l = 0; l < 4; l++) {
        const q = at + 2 + 8 * ib + 2 * l;
        const a = src[q]! | (((qh >> (2 * l)) & 1) << 8);
        const b = src[q + 1]! | (((qh >> (2 * l + 1)) & 1) << 8);
        group4x2(out, o + 32 * ib + 8 * l, dl, IQ3S_GRID, a, b, src[at + 74 + 4 * ib + l]!);
      }
    }
  },
};

/** Writes 8 weights dl·(grid + delta) of an IQ1 group. */
function group1(out: Float32Array, o: number, dl: number, entry: number, delta: number): void {
  for (let j = 0; j < 8; j++) out[o + j] = f32(dl * f32(IQ1S_GRID[8 * entry + j]! + delta));
}

export const IQ1_S: BlockFormat = {
  name: "IQ1_S",
  blockSize: 256,
  typeSize: 50,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at);
    for (let ib = 0; ib < 8; ib++) {
      const qh = u16At(src, at + 34 + 2 * ib);
      const dl = f32(d * (2 * ((qh >> 12) & 7) + 1));
      const delta = (qh & 0x8000) !== 0 ? -0.125 : 0.125;
      for (let l = 0; l < 4; l++) group1(out, o + 32 * ib + 8 * l, dl, src[at + 2 + 4 * ib + l]! | (((qh >> (3 * l)) & 7) << 8), delta);
    }
  },
};

export const IQ1_M: BlockFormat = {
  name: "IQ1_M",
  blockSize: 256,
  typeSize: 56,
  decodeBlock(src, at, out, o) {
    const sc = [0, 1, 2, 3].map((k) => u16At(src, at + 48 + 2 * k));
    const dBits = (sc[0]! >> 12) | ((sc[1]! >> 8) & 0x00f0) | ((sc[2]! >> 4) & 0x0f00) | (sc[3]! & 0xf000);
    const d = f16Lut()[dBits]!;
    for (let ib = 0; ib < 8; ib++) {
      for (let l = 0; l < 4; l++) {
        const s = (sc[ib >> 1]! >> (6 * (ib & 1) + 3 * (l >> 1))) & 7;
        const dl = f32(d * (2 * s + 1));
        const nib = (src[at + 32 + 2 * ib + (l >> 1)]! >> (4 * (l & 1))) & 15;
        const delta = (nib & 8) !== 0 ? -0.125 : 0.125;
        group1(out, o + 32 * ib + 8 * l, dl, src[at + 4 * ib + l]! | ((nib & 7) << 8), delta);
      }
    }
  },
};

export const IQ4_NL: BlockFormat = {
  name: "IQ4_NL",
  blockSize: 32,
  typeSize: 18,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at);
    for (let j = 0; j < 16; j++) {
      out[o + j] = f32(d * KVALUES_IQ4NL[src[at + 2 + j]! & 15]!);
      out[o + 16 + j] = f32(d * KVALUES_IQ4NL[src[at + 2 + j]! >> 4]!);
    }
  },
};

export const IQ4_XS: BlockFormat = {
  name: "IQ4_XS",
  blockSize: 256,
  typeSize: 136,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at);
    const high = u16At(src, at + 2);
    for (let ib = 0; ib < 8; ib++) {
      const ls = ((src[at + 4 + (ib >> 1)]! >> (4 * (ib & 1))) & 15) | (((high >> (2 * ib)) & 3) << 4);
      const dl = f32(d * (ls - 32));
      for (let j = 0; j < 16; j++) {
        const q = src[at + 8 + 16 * ib + j]!;
        out[o + 32 * ib + j] = f32(dl * KVALUES_IQ4NL[q & 15]!);
        out[o + 32 * ib + 16 + j] = f32(dl * KVALUES_IQ4NL[q >> 4]!);
      }
    }
  },
};

export const I_FORMATS: readonly BlockFormat[] = [IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M, IQ4_NL, IQ4_XS];
