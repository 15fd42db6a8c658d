/**
 * Test-only decoders of the ggml block types the GGUF exporter writes, written from the
 * struct layouts in ggml/src/ggml-common.h and the dequantisation loops they document,
 * independently of quantizer/export (and of quantizer/import, whose decoders for these
 * types are being written on another branch). Each follows the C loop order: walk the
 * struct fields, emit weights in the order the loop writes them. Results are rounded to f32
 * the way ggml's float arithmetic rounds them.
 */

function f16(lo: number, hi: number): number {
  const h = lo | (hi << 8);
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1024 + frac) * 2 ** (exp - 25);
}

/** block_q4_1 {half d; half m; uint8 qs[16]}: y[j] = (qs[j] & 15)*d + m, y[j+16] = (qs[j] >> 4)*d + m. */
export function testDecodeQ4_1(bytes: Uint8Array, n: number): Float32Array {
  const y = new Float32Array(n);
  let p = 0;
  for (let block = 0; block < n / 32; block++) {
    const d = f16(bytes[p]!, bytes[p + 1]!);
    const m = f16(bytes[p + 2]!, bytes[p + 3]!);
    const qs = bytes.subarray(p + 4, p + 20);
    for (let j = 0; j < 16; j++) {
      y[block * 32 + j] = Math.fround((qs[j]! & 0x0f) * d + m);
      y[block * 32 + j + 16] = Math.fround((qs[j]! >> 4) * d + m);
    }
    p += 20;
  }
  return y;
}

/**
 * block_q6_K {uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d}: for each half of 128
 * weights, lane l < 32 gives four weights l, l+32, l+64, l+96 from ql[l], ql[l+32] (low, then
 * high nibbles) and the four 2-bit fields of qh[l]; scale index l/16 + 0, 2, 4, 6.
 */
export function testDecodeQ6_K(bytes: Uint8Array, n: number): Float32Array {
  const y = new Float32Array(n);
  for (let block = 0; block < n / 256; block++) {
    const base = block * 210;
    const d = f16(bytes[base + 208]!, bytes[base + 209]!);
    const sc = new Int8Array(bytes.buffer, bytes.byteOffset + base + 192, 16);
    for (let half = 0; half < 2; half++) {
      const ql = base + 64 * half;
      const qh = base + 128 + 32 * half;
      const out = block * 256 + 128 * half;
      for (let l = 0; l < 32; l++) {
        const is = (l >> 4) + 8 * half;
        const q1 = ((bytes[ql + l]! & 0xf) | (((bytes[qh + l]! >> 0) & 3) << 4)) - 32;
        const q2 = ((bytes[ql + l + 32]! & 0xf) | (((bytes[qh + l]! >> 2) & 3) << 4)) - 32;
        const q3 = ((bytes[ql + l]! >> 4) | (((bytes[qh + l]! >> 4) & 3) << 4)) - 32;
        const q4 = ((bytes[ql + l + 32]! >> 4) | (((bytes[qh + l]! >> 6) & 3) << 4)) - 32;
        y[out + l] = Math.fround(Math.fround(d * sc[is]!) * q1);
        y[out + l + 32] = Math.fround(Math.fround(d * sc[is + 2]!) * q2);
        y[out + l + 64] = Math.fround(Math.fround(d * sc[is + 4]!) * q3);
        y[out + l + 96] = Math.fround(Math.fround(d * sc[is + 6]!) * q4);
      }
    }
  }
  return y;
}

/** block_tq2_0 {uint8 qs[64]; half d}: for j in {0, 32}, l < 4, m < 32: ((qs[j+m] >> 2l) & 3) - 1, times d. */
export function testDecodeTq2_0(bytes: Uint8Array, n: number): Float32Array {
  const y = new Float32Array(n);
  let k = 0;
  for (let block = 0; block < n / 256; block++) {
    const base = block * 66;
    const d = f16(bytes[base + 64]!, bytes[base + 65]!);
    for (let j = 0; j < 64; j += 32) {
      for (let l = 0; l < 4; l++) {
        for (let m = 0; m < 32; m++) y[k++] = Math.fround((((bytes[base + j + m]! >> (2 * l)) & 3) - 1) * d);
      }
    }
  }
  return y;
}

/** block_q8_0 {half d; int8 qs[32]}: y = qs*d. */
export function testDecodeQ8_0(bytes: Uint8Array, n: number): Float32Array {
  const y = new Float32Array(n);
  for (let block = 0; block < n / 32; block++) {
    const d = f16(bytes[block * 34]!, bytes[block * 34 + 1]!);
    for (let j = 0; j < 32; j++) y[block * 32 + j] = Math.fround(((bytes[block * 34 + 2 + j]! << 24) >> 24) * d);
  }
  return y;
}

/** block_q4_0 {half d; uint8 qs[16]}: y[j] = ((qs[j] & 15) - 8)*d, y[j+16] = ((qs[j] >> 4) - 8)*d. */
export function testDecodeQ4_0(bytes: Uint8Array, n: number): Float32Array {
  const y = new Float32Array(n);
  for (let block = 0; block < n / 32; block++) {
    const d = f16(bytes[block * 18]!, bytes[block * 18 + 1]!);
    for (let j = 0; j < 16; j++) {
      const q = bytes[block * 18 + 2 + j]!;
      y[block * 32 + j] = Math.fround(((q & 15) - 8) * d);
      y[block * 32 + j + 16] = Math.fround(((q >> 4) - 8) * d);
    }
  }
  return y;
}

/**
 * block_q2_K {uint8 scales[16]; uint8 qs[64]; half d; half dmin}: per half of 128 weights,
 * four shifts (0, 2, 4, 6), each giving 16 weights from qs[l] and 16 from qs[l+16], each run
 * of 16 with its own scales byte (low nibble times d, high nibble times dmin subtracted).
 */
export function testDecodeQ2_K(bytes: Uint8Array, n: number): Float32Array {
  const y = new Float32Array(n);
  let k = 0;
  for (let block = 0; block < n / 256; block++) {
    const base = block * 84;
    const d = f16(bytes[base + 80]!, bytes[base + 81]!);
    const dmin = f16(bytes[base + 82]!, bytes[base + 83]!);
    let is = 0;
    for (let half = 0; half < 2; half++) {
      const q = base + 16 + 32 * half;
      for (let shift = 0; shift < 8; shift += 2) {
        for (const offset of [0, 16]) {
          const sc = bytes[base + is++]!;
          const dl = Math.fround(d * (sc & 15));
          const ml = Math.fround(dmin * (sc >> 4));
          for (let l = 0; l < 16; l++) y[k++] = Math.fround(Math.fround(dl * ((bytes[q + l + offset]! >> shift) & 3)) - ml);
        }
      }
    }
  }
  return y;
}

/** Plain f16 array. */
export function testDecodeF16(bytes: Uint8Array, n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => f16(bytes[2 * i]!, bytes[2 * i + 1]!));
}

export const TEST_DECODERS: Record<string, (bytes: Uint8Array, n: number) => Float32Array> = {
  F16: testDecodeF16,
  Q8_0: testDecodeQ8_0,
  Q4_0: testDecodeQ4_0,
  Q4_1: testDecodeQ4_1,
  Q6_K: testDecodeQ6_K,
  TQ2_0: testDecodeTq2_0,
  Q2_K: testDecodeQ2_K,
};
