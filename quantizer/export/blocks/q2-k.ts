/**
 * ggml Q2_K (ggml-common.h block_q2_K, 84 bytes per 256 weights), written for the benchmark's
 * llama.cpp rows: scales[16] (low nibble: sub-block scale index, high nibble: min index),
 * qs[64], f16 d, f16 dmin; 16 sub-blocks of 16 weights, w = d*sc*q - dmin*m, q in 0..3.
 * Weight i sits in byte 32*(i>>7) + (i&31) of qs at bits 2*((i>>5)&3); its sub-block is i>>4.
 * Quantiser: min/max per sub-block, scales and mins rounded to 4 bits against the block's
 * largest (a simplified quantize_row_q2_K_ref without its iterative refinement).
 */
import { checkBlocks, getF16, putF16, QK_K } from "./common.ts";

export const Q2_K_BYTES = 84;

export function quantizeQ2_K(x: Float32Array): Uint8Array {
  checkBlocks(x.length, QK_K, "Q2_K");
  const blocks = x.length / QK_K;
  const out = new Uint8Array(blocks * Q2_K_BYTES);
  const subScale = new Float32Array(16);
  const subMin = new Float32Array(16);
  for (let b = 0; b < blocks; b++) {
    const base = b * QK_K;
    const at = b * Q2_K_BYTES;
    let maxScale = 0;
    let maxMin = 0;
    for (let s = 0; s < 16; s++) {
      let lo = 0; // mins are stored as non-negative offsets, so the range always includes 0
      let hi = -Infinity;
      for (let i = 0; i < 16; i++) {
        const v = x[base + 16 * s + i];
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      subScale[s] = Math.max(0, hi - lo) / 3;
      subMin[s] = -lo;
      maxScale = Math.max(maxScale, subScale[s]);
      maxMin = Math.max(maxMin, subMin[s]);
    }
    const d = putF16(out, at + 80, maxScale / 15);
    const dmin = putF16(out, at + 82, maxMin / 15);
    for (let s = 0; s < 16; s++) {
      const ls = d === 0 ? 0 : Math.min(15, Math.round(subScale[s] / d));
      const lm = dmin === 0 ? 0 : Math.min(15, Math.round(subMin[s] / dmin));
      out[at + s] = ls | (lm << 4);
      const dl = d * ls;
      const ml = dmin * lm;
      for (let i = 0; i < 16; i++) {
        const e = 16 * s + i;
        const q = dl === 0 ? 0 : Math.max(0, Math.min(3, Math.round((x[base + e] + ml) / dl)));
        out[at + 16 + 32 * (e >> 7) + (e & 31)] |= q << (2 * ((e >> 5) & 3));
      }
    }
  }
  return out;
}

export function decodeQ2_K(bytes: Uint8Array, n: number): Float32Array {
  checkBlocks(n, QK_K, "Q2_K");
  const out = new Float32Array(n);
  for (let b = 0; b < n / QK_K; b++) {
    const at = b * Q2_K_BYTES;
    const d = getF16(bytes, at + 80);
    const dmin = getF16(bytes, at + 82);
    for (let e = 0; e < QK_K; e++) {
      const sc = bytes[at + (e >> 4)];
      const q = (bytes[at + 16 + 32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3;
      out[b * QK_K + e] = d * (sc & 15) * q - dmin * (sc >> 4);
    }
  }
  return out;
}
