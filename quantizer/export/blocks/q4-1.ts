/**
 * ggml Q4_1 (ggml-common.h block_q4_1, 20 bytes per 32 weights): f16 d, f16 m, then 16 bytes
 * qs where weight j sits in the low nibble of qs[j] and weight 16+j in the high nibble;
 * llama.cpp decodes w = q*d + m in f32 (dequantize_row_q4_1).
 *
 * Two writers:
 * - `quantizeQ4_1`: round to nearest on the block's [min, max] (what llama-quantize does
 *   without an imatrix): d = (max-min)/15, m = min, q = round((w-min)/d).
 * - `transcodeQ4_1Block`: for values that already lie on an affine grid, crumb's zero-point
 *   groups w = d*(q-z) (quantizer/methods/grid.ts), it keeps the grid: same step d, same
 *   codes up to a shift or reflection, and offset m = the grid's lowest (or highest) level
 *   moved by a whole number of steps. crumb stores d and z as f16, so the exact offset
 *   -d*z has up to 22 significant bits and f16 holds 11: the block is bit-exact exactly when
 *   some candidate offset d*(s - z) is an f16 value, else every weight moves by the same
 *   |fl16(m) - m| <= 2^-11 |m|. The candidate with the smallest such error is kept.
 */
import { f16ToF32, f32ToF16, roundToF16 } from "../../../runtime/format/pack-f16.ts";
import { checkBlocks, getF16, putF16 } from "./common.ts";

export const Q4_1_BLOCK = 32;
export const Q4_1_BYTES = 20;

function putCodes(out: Uint8Array, at: number, code: (j: number) => number): void {
  for (let j = 0; j < 16; j++) out[at + 4 + j] = code(j) | (code(j + 16) << 4);
}

/** Round to nearest over each block's range (ggml's reference Q4_1 quantiser semantics). */
export function quantizeQ4_1(x: Float32Array): Uint8Array {
  checkBlocks(x.length, Q4_1_BLOCK, "Q4_1");
  const out = new Uint8Array((x.length / Q4_1_BLOCK) * Q4_1_BYTES);
  for (let b = 0; b < x.length / Q4_1_BLOCK; b++) {
    const base = b * Q4_1_BLOCK;
    let min = Infinity;
    let max = -Infinity;
    for (let j = 0; j < Q4_1_BLOCK; j++) {
      min = Math.min(min, x[base + j]!);
      max = Math.max(max, x[base + j]!);
    }
    // As ggml computes them in f32: the codes use the unrounded d and min.
    const d = Math.fround((max - min) / 15);
    const id = d === 0 ? 0 : Math.fround(1 / d);
    const at = b * Q4_1_BYTES;
    putF16(out, at, d);
    putF16(out, at + 2, min);
    putCodes(out, at, (j) => Math.min(15, Math.trunc(Math.fround(Math.fround(x[base + j]! - min) * id) + 0.5)));
  }
  return out;
}

/** w = q*d + m rounded to f32 once, as llama.cpp computes it (q*d is exact in f32). */
export function decodeQ4_1(bytes: Uint8Array, n: number): Float32Array {
  checkBlocks(n, Q4_1_BLOCK, "Q4_1");
  const out = new Float32Array(n);
  for (let b = 0; b < n / Q4_1_BLOCK; b++) {
    const at = b * Q4_1_BYTES;
    const d = getF16(bytes, at);
    const m = getF16(bytes, at + 2);
    for (let j = 0; j < 16; j++) {
      const byte = bytes[at + 4 + j]!;
      out[b * Q4_1_BLOCK + j] = (byte & 15) * d + m;
      out[b * Q4_1_BLOCK + j + 16] = (byte >> 4) * d + m;
    }
  }
  return out;
}

/** The f16 nearest to x and its two neighbours (f32 rounding of the inputs can cross a boundary). */
function f16Around(x: number): number[] {
  const h = f32ToF16(x);
  return [h, h + 1, h - 1].filter((c) => c > 0 && c < 0x7c00).map(f16ToF32);
}

/** Fills `rel` with codes r in [0, k] such that v = lo + d*r for every value, up to f32 rounding of v; false if none. */
function gridCodes(v: Float32Array, lo: number, d: number, k: number, rel: Uint8Array): boolean {
  for (let j = 0; j < Q4_1_BLOCK; j++) {
    const r = (v[j]! - lo) / d;
    const q = Math.round(r);
    // A value is an f32 rounding of its grid point: allow that error, measured in steps.
    if (q < 0 || q > k || Math.abs(r - q) > 1e-3 + (2 ** -23 * Math.abs(v[j]!)) / d) return false;
    rel[j] = q;
  }
  return true;
}

const rel = new Uint8Array(Q4_1_BLOCK);
const codes = new Uint8Array(Q4_1_BLOCK);
const bestCodes = new Uint8Array(Q4_1_BLOCK);

/**
 * Writes the block of 32 values `v` at `out[at..at+20)` on the affine grid it lies on and
 * returns the block's largest error (0 = bit-exact), or returns false when the values lie on
 * no grid of at most 16 levels (then the caller rounds the block with quantizeQ4_1).
 */
export function transcodeQ4_1Block(v: Float32Array, out: Uint8Array, at: number): number | false {
  let lo = Infinity;
  let hi = -Infinity;
  for (const w of v) {
    lo = Math.min(lo, w);
    hi = Math.max(hi, w);
  }
  // The step: the largest f16 d that puts every value on lo + d*r with whole r in [0, k].
  let step = 0;
  let span = 0;
  rel.fill(0);
  if (hi > lo) {
    search: for (let k = 1; k <= 15; k++) {
      for (const d of f16Around((hi - lo) / k)) {
        if (gridCodes(v, lo, d, k, rel)) {
          [step, span] = [d, k];
          break search;
        }
      }
    }
    if (step === 0) return false;
  }
  // Offsets: the lowest level moved down s steps (codes r + s), or the highest moved up s
  // steps with the grid reflected (d < 0, codes span - r + s); keep the most exact.
  let best = { err: Infinity, d: 0, m: 0 };
  for (let s = 0; s <= 15 - span && best.err > 0; s++) {
    for (const reflect of step === 0 ? [false] : [false, true]) {
      const d = reflect ? -step : step;
      const m = roundToF16(reflect ? hi + step * s : lo - step * s);
      let err = 0;
      for (let j = 0; j < Q4_1_BLOCK; j++) {
        codes[j] = (reflect ? span - rel[j]! : rel[j]!) + s;
        err = Math.max(err, Math.abs(Math.fround(codes[j]! * d + m) - v[j]!));
      }
      if (err < best.err) {
        best = { err, d, m };
        bestCodes.set(codes);
      }
    }
    if (step === 0) break;
  }
  putF16(out, at, best.d);
  putF16(out, at + 2, best.m);
  putCodes(out, at, (j) => bestCodes[j]!);
  return best.err;
}
