/**
 * IEEE binary16 conversion (round-half-to-even on the way in, exact on the way out) and the
 * f32/f16 tensor packers: both are plain row-major little-endian arrays (encoding.ts).
 */
import { FormatError } from "../errors.ts";

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** f32 -> f16 bits, round-half-to-even; overflow saturates to ±Infinity, NaN stays NaN. */
export function f32ToF16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && (h & 1) === 1)) h += 1;
    return sign | h;
  }
  const rest = mant & 0x1fff;
  let h = (e << 10) | (mant >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h += 1;
  return sign | h;
}

/** f16 bits -> number (exact). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Rounds a value to the nearest f16 (what packing a scale stores). */
export function roundToF16(value: number): number {
  return f16ToF32(f32ToF16(value));
}

/** f16 bits of a finite scale; throws FormatError for values f16 cannot hold. */
export function scaleToF16(value: number, what: string): number {
  const h = f32ToF16(value);
  if (!Number.isFinite(value) || (h & 0x7c00) === 0x7c00) {
    throw new FormatError(`${what} ${value} is not a finite f16 (|x| <= 65504); rescale the weights before packing`);
  }
  return h;
}

/** f32 -> bfloat16 bits (the top half of the f32), round-half-to-even; NaN stays NaN. */
export function f32ToBf16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x40; // quiet NaN
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** bfloat16 bits -> number (exact). */
export function bf16ToF32(h: number): number {
  u32Scratch[0] = (h & 0xffff) << 16;
  return f32Scratch[0];
}

/** bf16 bits of a finite scale; throws FormatError for values bf16 cannot hold. */
export function scaleToBf16(value: number, what: string): number {
  const h = f32ToBf16(value);
  if (!Number.isFinite(value) || (h & 0x7f80) === 0x7f80) {
    throw new FormatError(`${what} ${value} is not a finite bfloat16; rescale the weights before packing`);
  }
  return h;
}

export function packF32(values: Float32Array): Uint8Array {
  return new Uint8Array(values.slice().buffer);
}

export function packF16(values: Float32Array): Uint8Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16(values[i]);
  return new Uint8Array(out.buffer);
}

export function unpackF32(bytes: Uint8Array, count: number): Float32Array {
  checkLength(bytes, count * 4, "f32");
  return new Float32Array(bytes.slice(0, count * 4).buffer);
}

export function unpackF16(bytes: Uint8Array, count: number): Float32Array {
  checkLength(bytes, count * 2, "f16");
  const view = new DataView(bytes.buffer, bytes.byteOffset, count * 2);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = f16ToF32(view.getUint16(2 * i, true));
  return out;
}

export function checkLength(bytes: Uint8Array, expected: number, what: string): void {
  if (bytes.byteLength < expected) {
    throw new FormatError(
      `${what} tensor data has ${bytes.byteLength} bytes, its shape needs ${expected}; the file is truncated or the shape is wrong`,
    );
  }
}
