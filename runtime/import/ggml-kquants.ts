/**
 * ggml's 256-weight "K" super-block formats (ggml-common.h block_q2_K ... block_q8_K),
 * decoded as ggml-quants.c dequantize_row_* does. Weight i of a block (0..255):
 *
 * - Q2_K (84 bytes: scales[16], qs[64], f16 d, f16 dmin). Sub-block s = i>>4 has the byte
 *   scales[s]: low nibble sc, high nibble m. q = bits 2·((i>>5)&3) of qs[32·(i>>7) + (i&31)].
 *   w = (d·sc)·q − dmin·m.
 * - Q3_K (110: hmask[32], qs[64], scales[12], f16 d). 16 six-bit scales: low four bits from
 *   scales[s] (s < 8) or the high nibble of scales[s−8], top two bits at 2·(s>>2) of
 *   scales[8 + (s&3)]. q2 as in Q2_K; the high bit is bit 4·(i>>7) + ((i>>5)&3) of
 *   hmask[i&31], and a clear bit subtracts 4. w = (d·(sc − 32))·(q2 − 4·!h).
 * - Q4_K (144: f16 d, f16 dmin, scales[12], qs[128]) and Q5_K (176: the same, then qh[32]
 *   before qs[128]). Eight 32-weight sub-blocks s = i>>5, with six-bit (sc, m) packed as
 *   "get_scale_min_k4": s < 4: sc = scales[s]&63, m = scales[s+4]&63; else
 *   sc = (scales[s+4]&15) | (scales[s−4]>>6)<<4, m = (scales[s+4]>>4) | (scales[s]>>6)<<4.
 *   q = nibble (i>>5)&1 of qs[32·(i>>6) + (i&31)] (Q5_K: + 16 when bit s of qh[i&31] is set).
 *   w = (d·sc)·q − dmin·m.
 * - Q6_K (210: ql[128], qh[64], int8 scales[16], f16 d). With h = i>>7, k = (i>>5)&3,
 *   l = i&31: low nibble k>>1 of ql[64h + 32·(k&1) + l], high two bits 2k of qh[32h + l];
 *   w = (d·scales[i>>4])·(q − 32).
 * - Q8_K (292: f32 d, int8 q[256], int16 bsums[16]): w = d·q (bsums are ignored).
 */
import { type BlockFormat, f32, halfAt, i8At } from "./ggml-block.ts";

/** Six-bit scale and min of Q4_K/Q5_K sub-block s from the 12 bytes at `sc`. */
export function scaleMinK4(src: Uint8Array, sc: number, s: number): [number, number] {
  if (s < 4) return [src[sc + s]! & 63, src[sc + s + 4]! & 63];
  const scale = (src[sc + s + 4]! & 15) | ((src[sc + s - 4]! >> 6) << 4);
  const min = (src[sc + s + 4]! >> 4) | ((src[sc + s]! >> 6) << 4);
  return [scale, min];
}

/** Six-bit scale s (0..15) of Q3_K from the 12 bytes at `sc` (unsigned; the weight uses sc − 32). */
export function scaleQ3K(src: Uint8Array, sc: number, s: number): number {
  const low = s < 8 ? src[sc + s]! & 15 : src[sc + s - 8]! >> 4;
  const high = (src[sc + 8 + (s & 3)]! >> (2 * (s >> 2))) & 3;
  return low | (high << 4);
}

/** The two-bit code of weight i in Q2_K/Q3_K's qs at `qs`. */
function crumb2(src: Uint8Array, qs: number, i: number): number {
  return (src[qs + 32 * (i >> 7) + (i & 31)]! >> (2 * ((i >> 5) & 3))) & 3;
}

export const Q2_K: BlockFormat = {
  name: "Q2_K",
  blockSize: 256,
  typeSize: 84,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at + 80);
    const dmin = halfAt(src, at + 82);
    for (let s = 0; s < 16; s++) {
      const byte = src[at + s]!;
      const dl = f32(d * (byte & 15));
      const ml = f32(dmin * (byte >> 4));
      for (let i = 16 * s; i < 16 * s + 16; i++) out[o + i] = f32(f32(dl * crumb2(src, at + 16, i)) - ml);
    }
  },
};

export const Q3_K: BlockFormat = {
  name: "Q3_K",
  blockSize: 256,
  typeSize: 110,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at + 108);
    for (let s = 0; s < 16; s++) {
      const dl = f32(d * (scaleQ3K(src, at + 96, s) - 32));
      for (let i = 16 * s; i < 16 * s + 16; i++) {
        const high = (src[at + (i & 31)]! >> (4 * (i >> 7) + ((i >> 5) & 3))) & 1;
        out[o + i] = f32(dl * (crumb2(src, at + 32, i) - (high === 1 ? 0 : 4)));
      }
    }
  },
};

/** Q4_K and Q5_K share everything but the fifth bit. */
function decodeQ45K(src: Uint8Array, at: number, out: Float32Array, o: number, qh: number | undefined): void {
  const d = halfAt(src, at);
  const dmin = halfAt(src, at + 2);
  const qs = qh === undefined ? at + 16 : at + 48;
  for (let s = 0; s < 8; s++) {
    const [sc, m] = scaleMinK4(src, at + 4, s);
    const d1 = f32(d * sc);
    const m1 = f32(dmin * m);
    for (let i = 32 * s; i < 32 * s + 32; i++) {
      let q = (src[qs + 32 * (i >> 6) + (i & 31)]! >> (4 * ((i >> 5) & 1))) & 15;
      if (qh !== undefined && ((src[qh + (i & 31)]! >> s) & 1) === 1) q += 16;
      out[o + i] = f32(f32(d1 * q) - m1);
    }
  }
}

export const Q4_K: BlockFormat = {
  name: "Q4_K",
  blockSize: 256,
  typeSize: 144,
  decodeBlock(src, at, out, o) {
    decodeQ45K(src, at, out, o, undefined);
  },
};

export const Q5_K: BlockFormat = {
  name: "Q5_K",
  blockSize: 256,
  typeSize: 176,
  decodeBlock(src, at, out, o) {
    decodeQ45K(src, at, out, o, at + 16);
  },
};

export const Q6_K: BlockFormat = {
  name: "Q6_K",
  blockSize: 256,
  typeSize: 210,
  decodeBlock(src, at, out, o) {
    const d = halfAt(src, at + 208);
    for (let i = 0; i < 256; i++) {
      const h = i >> 7;
      const k = (i >> 5) & 3;
      const l = i & 31;
      const low = (src[at + 64 * h + 32 * (k & 1) + l]! >> (4 * (k >> 1))) & 15;
      const high = (src[at + 128 + 32 * h + l]! >> (2 * k)) & 3;
      const scale = f32(d * i8At(src, at + 192 + (i >> 4)));
      out[o + i] = f32(scale * ((low | (high << 4)) - 32));
    }
  },
};

export const Q8_K: BlockFormat = {
  name: "Q8_K",
  blockSize: 256,
  typeSize: 292,
  decodeBlock(src, at, out, o) {
    const d = new DataView(src.buffer, src.byteOffset + at, 4).getFloat32(0, true);
    for (let i = 0; i < 256; i++) out[o + i] = f32(d * i8At(src, at + 4 + i));
  },
};

export const K_FORMATS: readonly BlockFormat[] = [Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K];
