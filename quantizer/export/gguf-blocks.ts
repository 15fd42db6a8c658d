/**
 * ggml's 256-weight super-block formats written by the GGUF exporter, with decoders for tests
 * (layouts from ggml-common.h / ggml-quants.c; see GGUF-EXPORT.md for the byte maps):
 * - TQ2_0 (66 bytes): qs[64] of 2-bit codes q = t + 1 (t in {-1, 0, 1}), then f16 d; w = d*t.
 *   Weight i = 128h + 32n + m of a block sits in byte 32h + m at bits 2n.
 *   Quantiser: BitNet b1.58 absmean per block (d = mean |w|, t = clamp(round(w/d))), not
 *   ggml's reference (d = max |w|, which rounds nearly every Gaussian weight to 0).
 * - Q2_K (84 bytes): scales[16] (low nibble: sub-block scale index, high nibble: min index),
 *   qs[64], f16 d, f16 dmin; 16 sub-blocks of 16 weights, w = d*sc*q - dmin*m, q in 0..3.
 *   Weight i sits in byte 32*(i>>7) + (i&31) at bits 2*((i>>5)&3); its sub-block is i>>4.
 *   Quantiser: min/max per sub-block, scales and mins rounded to 4 bits against the block's
 *   largest (a simplified quantize_row_q2_K_ref without its iterative refinement).
 */
import { InvalidArgumentError } from "../../runtime/errors.ts";
import { f16ToF32, f32ToF16 } from "../../runtime/import/dtypes.ts";

export const QK_K = 256;
export const TQ2_0_BLOCK_BYTES = 66;
export const Q2_K_BLOCK_BYTES = 84;

function checkLength(n: number, what: string): void {
  if (n % QK_K !== 0) {
    throw new InvalidArgumentError("tensors", `${what}: ${n} values is not a multiple of the ${QK_K}-weight super-block; use Q4_0 or F16 for this tensor`);
  }
}

function putF16(out: Uint8Array, at: number, value: number): number {
  const h = f32ToF16(value);
  out[at] = h & 0xff;
  out[at + 1] = h >> 8;
  return f16ToF32(h);
}

function getF16(bytes: Uint8Array, at: number): number {
  return f16ToF32(bytes[at] | (bytes[at + 1] << 8));
}

/** The ternarisation TQ2_0 stores: per 256-block absmean scale d and trits t. */
export function ternarizeBlocks(x: Float32Array): { trits: Int8Array; scales: Float32Array } {
  checkLength(x.length, "TQ2_0");
  const blocks = x.length / QK_K;
  const trits = new Int8Array(x.length);
  const scales = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const base = b * QK_K;
    let sum = 0;
    for (let i = 0; i < QK_K; i++) sum += Math.abs(x[base + i]);
    const d = sum / QK_K;
    scales[b] = d;
    const inv = d === 0 ? 0 : 1 / d;
    for (let i = 0; i < QK_K; i++) trits[base + i] = Math.max(-1, Math.min(1, Math.round(x[base + i] * inv)));
  }
  return { trits, scales };
}

export function encodeTq2_0(x: Float32Array): Uint8Array {
  const { trits, scales } = ternarizeBlocks(x);
  const out = new Uint8Array(scales.length * TQ2_0_BLOCK_BYTES);
  for (let b = 0; b < scales.length; b++) {
    const at = b * TQ2_0_BLOCK_BYTES;
    for (let i = 0; i < QK_K; i++) {
      const byte = 32 * (i >> 7) + (i & 31);
      out[at + byte] |= (trits[b * QK_K + i] + 1) << (2 * ((i >> 5) & 3));
    }
    putF16(out, at + 64, scales[b]);
  }
  return out;
}

export function decodeTq2_0(bytes: Uint8Array, n: number): Float32Array {
  checkLength(n, "TQ2_0");
  const out = new Float32Array(n);
  for (let b = 0; b < n / QK_K; b++) {
    const at = b * TQ2_0_BLOCK_BYTES;
    const d = getF16(bytes, at + 64);
    for (let i = 0; i < QK_K; i++) {
      const q = (bytes[at + 32 * (i >> 7) + (i & 31)] >> (2 * ((i >> 5) & 3))) & 3;
      out[b * QK_K + i] = (q - 1) * d;
    }
  }
  return out;
}

export function encodeQ2_K(x: Float32Array): Uint8Array {
  checkLength(x.length, "Q2_K");
  const blocks = x.length / QK_K;
  const out = new Uint8Array(blocks * Q2_K_BLOCK_BYTES);
  const subScale = new Float32Array(16);
  const subMin = new Float32Array(16);
  for (let b = 0; b < blocks; b++) {
    const base = b * QK_K;
    const at = b * Q2_K_BLOCK_BYTES;
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
  checkLength(n, "Q2_K");
  const out = new Float32Array(n);
  for (let b = 0; b < n / QK_K; b++) {
    const at = b * Q2_K_BLOCK_BYTES;
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
