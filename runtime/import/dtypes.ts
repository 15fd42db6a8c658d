/**
 * Element encodings shared by the importers and writers: IEEE-754 binary16 and bfloat16
 * to and from fp32 (round to nearest even), and ggml's reference Q8_0 and Q4_0 quantisers
 * (ggml-quants.c: Q8_0 = f16 scale d + 32 int8, x = q*d; Q4_0 = f16 scale d + 16 bytes,
 * x = (nibble - 8)*d with low nibbles holding elements 0..15 and high nibbles 16..31). The
 * block decoders of every ggml type live in ggml-legacy.ts, ggml-kquants.ts, ggml-iquants.ts
 * and ggml-ternary.ts (decodeQ8_0 / decodeQ4_0 are re-exported from there).
 */
import { f16ToF32, f32ToF16 } from "../format/pack-f16.ts";
import { f16Lut } from "./ggml-block.ts";

export { decodeQ4_0, decodeQ8_0 } from "./ggml-legacy.ts";

// binary16 conversions are the packed format's own; re-exported for the importers.
export { f16ToF32, f32ToF16 };

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** bfloat16 bits → number. */
export function bf16ToF32(b: number): number {
  u32Scratch[0] = (b & 0xffff) << 16;
  return f32Scratch[0]!;
}

/** number → bfloat16 bits, round to nearest even (NaN stays NaN). */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0]!;
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff;
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Little-endian fp32 bytes → Float32Array (a copy). */
export function decodeF32(bytes: Uint8Array, n: number): Float32Array {
  if (LITTLE_ENDIAN) {
    const exact = bytes.byteOffset === 0 && bytes.buffer.byteLength === n * 4 && bytes.buffer instanceof ArrayBuffer;
    return new Float32Array(exact ? bytes.buffer : bytes.slice(0, n * 4).buffer);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
  return out;
}

/** Little-endian fp64 bytes → Float32Array. */
export function decodeF64(bytes: Uint8Array, n: number): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
  return out;
}

export function decodeF16(bytes: Uint8Array, n: number): Float32Array {
  const lut = f16Lut();
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lut[bytes[2 * i]! | (bytes[2 * i + 1]! << 8)]!;
  return out;
}

export function decodeBf16(bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < n; i++) bits[i] = ((bytes[2 * i]! | (bytes[2 * i + 1]! << 8)) << 16) >>> 0;
  return out;
}

export const QK = 32;
export const Q8_0_BLOCK_BYTES = 34;
export const Q4_0_BLOCK_BYTES = 18;

/** fp32 → Q8_0 blocks (ggml quantize_row_q8_0_ref: d = amax/127, q = round(x/d)). */
export function encodeQ8_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / QK) * Q8_0_BLOCK_BYTES);
  for (let b = 0; b < x.length / QK; b++) {
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[b * QK + j]!));
    const d = amax / 127;
    const id = d === 0 ? 0 : 1 / d;
    const base = b * Q8_0_BLOCK_BYTES;
    const h = f32ToF16(d);
    out[base] = h & 0xff;
    out[base + 1] = h >> 8;
    for (let j = 0; j < QK; j++) out[base + 2 + j] = Math.round(x[b * QK + j]! * id) & 0xff;
  }
  return out;
}

/** fp32 → Q4_0 blocks (ggml quantize_row_q4_0_ref: d = max/-8 of the signed absmax). */
export function encodeQ4_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / QK) * Q4_0_BLOCK_BYTES);
  for (let b = 0; b < x.length / QK; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = x[b * QK + j]!;
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = max / -8;
    const id = d === 0 ? 0 : 1 / d;
    const base = b * Q4_0_BLOCK_BYTES;
    const h = f32ToF16(d);
    out[base] = h & 0xff;
    out[base + 1] = h >> 8;
    for (let j = 0; j < QK / 2; j++) {
      const lo = Math.min(15, Math.trunc(x[b * QK + j]! * id + 8.5));
      const hi = Math.min(15, Math.trunc(x[b * QK + j + QK / 2]! * id + 8.5));
      out[base + 2 + j] = lo | (hi << 4);
    }
  }
  return out;
}

/** Float32Array → bytes in a float encoding ("F32", "F16", "BF16"), little-endian. */
export function encodeFloat(x: Float32Array, dtype: "F32" | "F16" | "BF16"): Uint8Array {
  if (dtype === "F32") {
    const out = new Uint8Array(x.length * 4);
    const dv = new DataView(out.buffer);
    for (let i = 0; i < x.length; i++) dv.setFloat32(i * 4, x[i]!, true);
    return out;
  }
  const out = new Uint8Array(x.length * 2);
  const conv = dtype === "F16" ? f32ToF16 : f32ToBf16;
  for (let i = 0; i < x.length; i++) {
    const h = conv(x[i]!);
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >> 8;
  }
  return out;
}
