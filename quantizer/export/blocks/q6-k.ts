/**
 * ggml Q6_K (ggml-common.h block_q6_K, 210 bytes per 256 weights): ql[128] low 4 bits of
 * the codes, qh[64] high 2 bits, scales[16] int8 (one per 16 weights), f16 d. A weight is
 * w = d * scale[i/16] * (L - 32) with L in 0..63 (dequantize_row_q6_K). Weight i of a block,
 * with half n = i>>7, quarter t = (i>>5)&3 and lane l = i&31, keeps its low 4 bits in byte
 * 64n + 32(t&1) + l of ql (low nibble for t < 2, high for t >= 2) and its high 2 bits at
 * bits 2t of byte 32n + l of qh.
 *
 * Quantiser (round to nearest, as llama-quantize writes Q6_K without an imatrix, with crumb's
 * own scale choice): each 16-weight sub-block tries a few symmetric scales around
 * max/-32 (the signed extreme maps to -32), refits each by least squares for its codes and
 * keeps the lowest squared error; the 16 scales are rounded to int8 against the block's
 * largest one (which maps to -128, the end of the int8 range), and the codes are rounded
 * again with the scales the file holds. ggml's make_qx_quants searches differently, so the
 * bytes differ from llama-quantize's; the layout and what llama.cpp decodes do not.
 */
import { checkBlocks, getF16, putF16, QK_K } from "./common.ts";

export const Q6_K_BYTES = 210;

/** Byte offsets of weight i's low nibble (ql), its shift, and its high bits (qh) with their shift. */
function position(i: number): { ql: number; qlShift: number; qh: number; qhShift: number } {
  const n = i >> 7;
  const t = (i >> 5) & 3;
  const l = i & 31;
  return { ql: 64 * n + 32 * (t & 1) + l, qlShift: 4 * (t >> 1), qh: 128 + 32 * n + l, qhShift: 2 * t };
}

const POSITIONS = Array.from({ length: QK_K }, (_, i) => position(i));

/**
 * Best symmetric scale for 16 values (codes in [-32, 31]); 0 for an all-zero sub-block. Each
 * candidate's codes get their least-squares scale sum(xq)/sum(q^2), whose squared error is
 * sum(x^2) - sum(xq)^2/sum(q^2); the candidate with the smallest error wins.
 */
function subBlockScale(x: Float32Array, base: number): number {
  let max = 0;
  for (let i = 0; i < 16; i++) if (Math.abs(x[base + i]!) > Math.abs(max)) max = x[base + i]!;
  if (max === 0) return 0;
  let best = 0;
  let bestGain = -Infinity;
  for (let t = 0; t <= 8; t++) {
    const inv = -(32 - 0.5 * t) / max;
    let sqx = 0;
    let sqq = 0;
    for (let i = 0; i < 16; i++) {
      const v = x[base + i]!;
      const q = Math.max(-32, Math.min(31, Math.round(v * inv)));
      sqx += q * v;
      sqq += q * q;
    }
    const gain = (sqx * sqx) / sqq; // sum(x^2) - gain is the error: maximise the gain
    if (gain > bestGain) [best, bestGain] = [sqx / sqq, gain];
  }
  return best;
}

export function quantizeQ6_K(x: Float32Array): Uint8Array {
  checkBlocks(x.length, QK_K, "Q6_K");
  const out = new Uint8Array((x.length / QK_K) * Q6_K_BYTES);
  const scales = new Float64Array(16);
  for (let b = 0; b < x.length / QK_K; b++) {
    const base = b * QK_K;
    const at = b * Q6_K_BYTES;
    let maxScale = 0;
    for (let j = 0; j < 16; j++) {
      scales[j] = subBlockScale(x, base + 16 * j);
      if (Math.abs(scales[j]!) > Math.abs(maxScale)) maxScale = scales[j]!;
    }
    const d = maxScale === 0 ? 0 : putF16(out, at + 208, maxScale / -128);
    for (let j = 0; j < 16; j++) {
      const sc = d === 0 ? 0 : Math.max(-128, Math.min(127, Math.round(scales[j]! / d)));
      out[at + 192 + j] = sc & 0xff;
      const step = d * sc;
      for (let i = 16 * j; i < 16 * j + 16; i++) {
        const q = step === 0 ? 0 : Math.max(-32, Math.min(31, Math.round(x[base + i]! / step)));
        const code = q + 32;
        const p = POSITIONS[i]!;
        out[at + p.ql] |= (code & 15) << p.qlShift;
        out[at + p.qh] |= (code >> 4) << p.qhShift;
      }
    }
  }
  return out;
}

/** w = d*scale*(L-32) rounded to f32 once, as llama.cpp computes it. */
export function decodeQ6_K(bytes: Uint8Array, n: number): Float32Array {
  checkBlocks(n, QK_K, "Q6_K");
  const out = new Float32Array(n);
  for (let b = 0; b < n / QK_K; b++) {
    const at = b * Q6_K_BYTES;
    const d = getF16(bytes, at + 208);
    for (let i = 0; i < QK_K; i++) {
      const p = POSITIONS[i]!;
      const code = ((bytes[at + p.ql]! >> p.qlShift) & 15) | (((bytes[at + p.qh]! >> p.qhShift) & 3) << 4);
      const sc = (bytes[at + 192 + (i >> 4)]! << 24) >> 24;
      out[b * QK_K + i] = d * sc * (code - 32);
    }
  }
  return out;
}
