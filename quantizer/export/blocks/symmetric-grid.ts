/**
 * Exact transcoding into ggml's symmetric 32-weight blocks (ggml-common.h): Q8_0 (f16 d,
 * int8 q, w = q*d) and Q4_0 (f16 d, nibbles, w = (q-8)*d, weight j in the low nibble of byte
 * j and weight 16+j in the high one). When a block's values are already d*q for some f16 d
 * and codes in range (crumb's q8 groups, a ternary group's {-a, 0, a}, a Q8_0 or Q4_0 GGUF
 * read back) the block is written with that d and those codes, bit-exact; otherwise the
 * caller rounds it (import/dtypes.ts has ggml's round-to-nearest writers).
 */
import { f16ToF32, f32ToF16 } from "../../../runtime/format/pack-f16.ts";
import { putF16 } from "./common.ts";

export const QK = 32;

/** Codes of v on the grid d*q with q in [lo, hi], or undefined when some value is not exactly on it. */
function exactCodes(v: Float32Array, d: number, lo: number, hi: number): Int8Array | undefined {
  const codes = new Int8Array(QK);
  for (let j = 0; j < QK; j++) {
    const q = Math.round(v[j]! / d);
    if (q < lo || q > hi || Math.fround(q * d) !== v[j]) return undefined;
    codes[j] = q;
  }
  return codes;
}

/** f16 values whose multiples by k could be amax: the nearest f16 to amax/k and its neighbours. */
function steps(amax: number, k: number): number[] {
  const h = f32ToF16(amax / k);
  return [h, h - 1, h + 1].filter((c) => c > 0 && c < 0x7c00).map(f16ToF32);
}

/** The grid d*q (|q| <= kmax, q >= lo) of the block, trying the largest |q| first; d may be negative when `signed`. */
function findGrid(v: Float32Array, kmax: number, lo: number, hi: number, signed: boolean): { d: number; codes: Int8Array } | undefined {
  let amax = 0;
  for (const w of v) amax = Math.max(amax, Math.abs(w));
  if (amax === 0) return { d: 0, codes: new Int8Array(QK) };
  for (let k = kmax; k >= 1; k--) {
    for (const step of steps(amax, k)) {
      for (const d of signed ? [step, -step] : [step]) {
        const codes = exactCodes(v, d, lo, hi);
        if (codes !== undefined) return { d, codes };
      }
    }
  }
  return undefined;
}

/** Writes a bit-exact Q8_0 block (34 bytes) at `at`, or returns false. */
export function transcodeQ8_0Block(v: Float32Array, out: Uint8Array, at: number): boolean {
  const grid = findGrid(v, 127, -127, 127, false);
  if (grid === undefined) return false;
  putF16(out, at, grid.d);
  for (let j = 0; j < QK; j++) out[at + 2 + j] = grid.codes[j]! & 0xff;
  return true;
}

/** Writes a bit-exact Q4_0 block (18 bytes) at `at`, or returns false. */
export function transcodeQ4_0Block(v: Float32Array, out: Uint8Array, at: number): boolean {
  const grid = findGrid(v, 8, -8, 7, true);
  if (grid === undefined) return false;
  putF16(out, at, grid.d);
  for (let j = 0; j < 16; j++) out[at + 2 + j] = (grid.codes[j]! + 8) | ((grid.codes[j + 16]! + 8) << 4);
  return true;
}
