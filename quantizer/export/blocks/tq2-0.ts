/**
 * ggml TQ2_0 (ggml-common.h block_tq2_0, 66 bytes per 256 weights): qs[64] of 2-bit codes
 * q = t + 1 for trits t in {-1, 0, 1}, then f16 d; w = (q - 1)*d (dequantize_row_tq2_0).
 * Weight i = 128h + 32n + m of a block (h < 2, n < 4, m < 32) sits in byte 32h + m at bits 2n.
 *
 * Two writers:
 * - `quantizeTq2_0`: llama-quantize's round to nearest for TQ2_0, d = max|w| of the block and
 *   t = round(w/d). It is exact for weights that are already ternary with one scale per
 *   block (a BitNet checkpoint, a TQ2_0 or TQ1_0 GGUF) and maps ordinary Gaussian weights
 *   almost all to 0, as llama-quantize does.
 * - `transcodeTq2_0Ternary`: for weights crumb stored as ternary (one trit-plane, one scale
 *   per group of 32-128, BitNet absmean), keeps every trit and gives each 256-block the
 *   least-squares scale for them, the mean |w| of its non-zero weights; exact when the
 *   groups of a block share their scale.
 */
import { checkBlocks, getF16, putF16, QK_K } from "./common.ts";

export const TQ2_0_BYTES = 66;

function byteOf(i: number): { byte: number; shift: number } {
  return { byte: 32 * (i >> 7) + (i & 31), shift: 2 * ((i >> 5) & 3) };
}

function writeBlock(out: Uint8Array, at: number, trit: (i: number) => number, d: number): void {
  for (let i = 0; i < QK_K; i++) {
    const { byte, shift } = byteOf(i);
    out[at + byte] |= (trit(i) + 1) << shift;
  }
  putF16(out, at + 64, d);
}

export function quantizeTq2_0(x: Float32Array): Uint8Array {
  checkBlocks(x.length, QK_K, "TQ2_0");
  const out = new Uint8Array((x.length / QK_K) * TQ2_0_BYTES);
  for (let b = 0; b < x.length / QK_K; b++) {
    const base = b * QK_K;
    let amax = 0;
    for (let i = 0; i < QK_K; i++) amax = Math.max(amax, Math.abs(x[base + i]!));
    const id = amax === 0 ? 0 : Math.fround(1 / amax);
    writeBlock(out, b * TQ2_0_BYTES, (i) => Math.max(-1, Math.min(1, Math.round(Math.fround(x[base + i]! * id)))), amax);
  }
  return out;
}

export function transcodeTq2_0Ternary(x: Float32Array): Uint8Array {
  checkBlocks(x.length, QK_K, "TQ2_0");
  const out = new Uint8Array((x.length / QK_K) * TQ2_0_BYTES);
  for (let b = 0; b < x.length / QK_K; b++) {
    const base = b * QK_K;
    let sum = 0;
    let count = 0;
    for (let i = 0; i < QK_K; i++) {
      if (x[base + i] !== 0) {
        sum += Math.abs(x[base + i]!);
        count++;
      }
    }
    writeBlock(out, b * TQ2_0_BYTES, (i) => Math.sign(x[base + i]!), count === 0 ? 0 : sum / count);
  }
  return out;
}

export function decodeTq2_0(bytes: Uint8Array, n: number): Float32Array {
  checkBlocks(n, QK_K, "TQ2_0");
  const out = new Float32Array(n);
  for (let b = 0; b < n / QK_K; b++) {
    const at = b * TQ2_0_BYTES;
    const d = getF16(bytes, at + 64);
    for (let i = 0; i < QK_K; i++) {
      const { byte, shift } = byteOf(i);
      out[b * QK_K + i] = (((bytes[at + byte]! >> shift) & 3) - 1) * d;
    }
  }
  return out;
}
