/**
 * The quantisers of the compressed attention states: asymmetric uniform b-bit codes
 * (b ∈ {2, 3, 4, 8}) with an f16 minimum and an f16 step per group, x̂ = min + code·step
 * (KIVI, Liu et al. 2024; XQuant, arXiv 2508.10395, both "asymmetric uniform"). Two group
 * shapes: along the channels of one row ("per token", values and XQuant's X) and along the
 * rows of a block for each channel ("per channel", KIVI keys). Codes are bit-packed row by
 * row, least significant bits first, so a row of w codes takes ceil(w·b/8) bytes.
 * `fakeQuantize` is the plain reference twin the packed paths are tested against.
 */
import { f16ToF32, f32ToF16 } from "../../format/pack-f16.ts";
import { InvalidArgumentError } from "../../errors.ts";

export const CODE_BITS = [2, 3, 4, 8] as const;
export type CodeBits = typeof CODE_BITS[number];

const F16_MAX = 65504;

export function checkCodeBits(bits: number, what: string): CodeBits {
  if (!(CODE_BITS as readonly number[]).includes(bits)) {
    throw new InvalidArgumentError(what, `${what} must be one of ${CODE_BITS.join(", ")} bits, got ${bits}`);
  }
  return bits as CodeBits;
}

/** Bytes of one packed row of `width` codes. */
export function packedRowBytes(width: number, bits: number): number {
  return Math.ceil((width * bits) / 8);
}

/** f16 bits of the smallest f16 ≥ value (a step rounded up still covers the range). */
function f16Ceil(value: number): number {
  let h = f32ToF16(Math.min(value, F16_MAX));
  if (f16ToF32(h) < value && value < F16_MAX) h += 1; // positive: the next f16 up
  return h;
}

interface GroupParams {
  minBits: number;
  stepBits: number;
  min: number;
  step: number;
}

/**
 * The f16 parameters of one group spanning [lo, hi], in one object reused by every call (read
 * them before the next): a fresh object per group was 1.6 million objects, about 100 MB of
 * garbage, in one 4K-token prefill of a 1.1B model with a q4 cache.
 */
const groupScratch: GroupParams = { minBits: 0, stepBits: 0, min: 0, step: 0 };
function groupParams(lo: number, hi: number, levels: number): GroupParams {
  const minBits = f32ToF16(Math.max(-F16_MAX, Math.min(F16_MAX, lo)));
  const min = f16ToF32(minBits);
  const stepBits = hi > min ? f16Ceil((hi - min) / levels) : 0;
  groupScratch.minBits = minBits;
  groupScratch.stepBits = stepBits;
  groupScratch.min = min;
  groupScratch.step = f16ToF32(stepBits);
  return groupScratch;
}

function encode(x: number, min: number, step: number, levels: number): number {
  if (!(step > 0)) return 0;
  const code = Math.round((x - min) / step);
  return code < 0 ? 0 : code > levels ? levels : code;
}

/** Writes `codes` (count values < 2^bits) bit-packed into dst from byte `at`. */
export function packCodes(codes: Uint8Array, count: number, bits: number, dst: Uint8Array, at: number): void {
  if (bits === 8) {
    dst.set(codes.subarray(0, count), at);
    return;
  }
  dst.fill(0, at, at + packedRowBytes(count, bits));
  for (let i = 0, bit = 0; i < count; i++, bit += bits) {
    const byte = at + (bit >>> 3);
    const shift = bit & 7;
    dst[byte] |= (codes[i] << shift) & 0xff;
    if (shift + bits > 8) dst[byte + 1] |= codes[i] >>> (8 - shift);
  }
}

/** Reads `count` codes packed from byte `at` into codes. */
export function unpackCodes(src: Uint8Array, at: number, count: number, bits: number, codes: Uint8Array): void {
  if (bits === 8) {
    codes.set(src.subarray(at, at + count));
    return;
  }
  const mask = (1 << bits) - 1;
  if (bits === 4) {
    for (let i = 0; i < count; i += 2) {
      const b = src[at + (i >>> 1)];
      codes[i] = b & 15;
      codes[i + 1] = b >>> 4;
    }
    return;
  }
  for (let i = 0, bit = 0; i < count; i++, bit += bits) {
    const byte = at + (bit >>> 3);
    const shift = bit & 7;
    let v = src[byte] >>> shift;
    if (shift + bits > 8) v |= src[byte + 1] << (8 - shift);
    codes[i] = v & mask;
  }
}

/** Per-token groups: quantises one row (width values, groups of `group` channels). */
export function quantizeRowGroups(
  row: Float32Array,
  rowAt: number,
  width: number,
  group: number,
  bits: number,
  codes: Uint8Array, // scratch, >= width
  dst: Uint8Array,
  dstAt: number,
  params: Uint16Array, // (groups, 2): min bits, step bits
  paramsAt: number,
): void {
  const levels = (1 << bits) - 1;
  for (let g = 0, c0 = 0; c0 < width; g++, c0 += group) {
    const c1 = Math.min(width, c0 + group);
    let lo = Infinity, hi = -Infinity;
    for (let c = c0; c < c1; c++) {
      const x = row[rowAt + c];
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    const p = groupParams(lo, hi, levels);
    params[paramsAt + 2 * g] = p.minBits;
    params[paramsAt + 2 * g + 1] = p.stepBits;
    for (let c = c0; c < c1; c++) codes[c] = encode(row[rowAt + c], p.min, p.step, levels);
  }
  packCodes(codes, width, bits, dst, dstAt);
}

/** Inverse of quantizeRowGroups into out[outAt ..]. */
export function dequantizeRowGroups(
  src: Uint8Array,
  srcAt: number,
  width: number,
  group: number,
  bits: number,
  params: Uint16Array,
  paramsAt: number,
  codes: Uint8Array,
  out: Float32Array,
  outAt: number,
): void {
  unpackCodes(src, srcAt, width, bits, codes);
  for (let g = 0, c0 = 0; c0 < width; g++, c0 += group) {
    const min = f16ToF32(params[paramsAt + 2 * g]);
    const step = f16ToF32(params[paramsAt + 2 * g + 1]);
    const c1 = Math.min(width, c0 + group);
    for (let c = c0; c < c1; c++) out[outAt + c] = min + codes[c] * step;
  }
}

/**
 * Per-channel groups: quantises `rows` rows (row-major, width values each, from rowsAt) with
 * one (min, step) per channel; writes each packed row at dstAt + r·rowBytes.
 */
export function quantizeChannelBlock(
  block: Float32Array,
  rows: number,
  width: number,
  bits: number,
  codes: Uint8Array,
  dst: Uint8Array,
  dstAt: number,
  params: Uint16Array, // (width, 2)
  paramsAt: number,
): void {
  const levels = (1 << bits) - 1;
  const mins = new Float32Array(width);
  const steps = new Float32Array(width);
  for (let c = 0; c < width; c++) {
    let lo = Infinity, hi = -Infinity;
    for (let r = 0; r < rows; r++) {
      const x = block[r * width + c];
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    const p = groupParams(lo, hi, levels);
    params[paramsAt + 2 * c] = p.minBits;
    params[paramsAt + 2 * c + 1] = p.stepBits;
    mins[c] = p.min;
    steps[c] = p.step;
  }
  const rowBytes = packedRowBytes(width, bits);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < width; c++) codes[c] = encode(block[r * width + c], mins[c], steps[c], levels);
    packCodes(codes, width, bits, dst, dstAt + r * rowBytes);
  }
}

/** Decodes a block's per-channel parameters once: (min, step) as f32 pairs. */
export function decodeChannelParams(params: Uint16Array, paramsAt: number, width: number, out: Float32Array): void {
  for (let i = 0; i < 2 * width; i++) out[i] = f16ToF32(params[paramsAt + i]);
}

/** One row of a per-channel block, with parameters decoded by decodeChannelParams. */
export function dequantizeChannelRow(
  src: Uint8Array,
  srcAt: number,
  width: number,
  bits: number,
  decoded: Float32Array,
  codes: Uint8Array,
  out: Float32Array,
  outAt: number,
): void {
  unpackCodes(src, srcAt, width, bits, codes);
  for (let c = 0; c < width; c++) out[outAt + c] = decoded[2 * c] + codes[c] * decoded[2 * c + 1];
}

/**
 * Reference twin: the dequantised values of one group quantised to `bits` (f64 arithmetic,
 * the same f16 parameters). The packed paths must reproduce it exactly.
 */
export function fakeQuantize(values: ArrayLike<number>, bits: number): Float32Array {
  const levels = 2 ** bits - 1;
  const lo = Math.min(...Array.from(values));
  const hi = Math.max(...Array.from(values));
  const { min, step } = groupParams(lo, hi, levels);
  return Float32Array.from(values, (x) => {
    const code = step > 0 ? Math.min(levels, Math.max(0, Math.round((x - min) / step))) : 0;
    return min + code * step;
  });
}
