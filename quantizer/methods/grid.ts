/**
 * Group-wise asymmetric uniform quantisation, w ≈ d·(q − z) with q in [0, 2^b − 1], and its
 * parameter search: a grid of clipping ratios applied to the group's min/max, each followed
 * by a weighted least-squares refit of (d, z) for the chosen codes (llama.cpp's
 * make_qkx-style search, simplified to one dimension). The parameters are rounded to f16
 * before the codes are picked, so the codes match what the packed file will dequantise to.
 */
import { roundToF16 } from "../../runtime/format/pack-f16.ts";

/** Clip ratios tried by the search, widest first (1 = plain min/max). */
export const CLIP_RATIOS: readonly number[] = Array.from({ length: 16 }, (_, i) => 1 - 0.03 * i);

export interface AffineParams {
  /** Step, f16-representable, > 0. */
  readonly d: number;
  /** Zero point (need not be an integer), f16-representable. */
  readonly z: number;
}

/** q = clamp(round(x/d + z), 0, levels − 1). */
export function affineCode(x: number, p: AffineParams, levels: number): number {
  const q = Math.round(x / p.d + p.z);
  return q < 0 ? 0 : q >= levels ? levels - 1 : q;
}

/** f16-rounded parameters mapping [lo, hi] onto the code range. */
export function paramsForRange(lo: number, hi: number, levels: number): AffineParams {
  // The floor on d keeps z = −lo/d inside f16 range for flat groups far from zero.
  const floor = Math.max(Math.abs(lo), Math.abs(hi)) / 30000;
  const d = Math.max(roundToF16(Math.max((hi - lo) / (levels - 1), floor)), 2 ** -24);
  return { d, z: roundToF16(-lo / d) };
}

/** Weighted squared error of coding x[0..n) with p; h = per-element weights. */
export function affineError(x: Float64Array, h: Float64Array, n: number, p: AffineParams, levels: number): number {
  let err = 0;
  for (let i = 0; i < n; i++) {
    const e = x[i] - p.d * (affineCode(x[i], p, levels) - p.z);
    err += h[i] * e * e;
  }
  return err;
}

/**
 * One pass over the group with the codes of p: their weighted squared error, and the weighted
 * least-squares refit x ≈ a·q + c for those codes (undefined when degenerate). Fused because
 * the search needs both for every candidate and the pass dominates quantisation time.
 */
function errorAndRefit(x: Float64Array, h: Float64Array, n: number, p: AffineParams, levels: number): { err: number; next: AffineParams | undefined } {
  let err = 0;
  let sw = 0, sq = 0, sqq = 0, sx = 0, sqx = 0;
  for (let i = 0; i < n; i++) {
    const q = affineCode(x[i], p, levels);
    const e = x[i] - p.d * (q - p.z);
    err += h[i] * e * e;
    sw += h[i];
    sq += h[i] * q;
    sqq += h[i] * q * q;
    sx += h[i] * x[i];
    sqx += h[i] * q * x[i];
  }
  return { err, next: solveRefit(sw, sq, sqq, sx, sqx) };
}

function solveRefit(sw: number, sq: number, sqq: number, sx: number, sqx: number): AffineParams | undefined {
  const det = sw * sqq - sq * sq;
  if (!(Math.abs(det) > 1e-30 * Math.max(1, sw * sqq))) return undefined;
  const a = (sw * sqx - sq * sx) / det;
  const c = (sqq * sx - sq * sqx) / det;
  if (!(a > 0)) return undefined;
  const d = roundToF16(a);
  if (!(d > 0) || !Number.isFinite(d)) return undefined;
  const z = roundToF16(-c / d);
  return Number.isFinite(z) ? { d, z } : undefined;
}

/**
 * Best (d, z) for one group: x[0..n) values, h[0..n) weights (all 1 for plain rtn).
 * `search` false gives plain min/max rounding (the naive baseline).
 */
export function fitAffine(x: Float64Array, h: Float64Array, n: number, bits: number, search = true): AffineParams {
  const levels = 1 << bits;
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < n; i++) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
  }
  let best = paramsForRange(lo, hi, levels);
  if (!search) return best;
  let bestErr = affineError(x, h, n, best, levels);
  for (const ratio of CLIP_RATIOS) {
    let p: AffineParams | undefined = paramsForRange(lo * ratio, hi * ratio, levels);
    for (let step = 0; step < 3 && p !== undefined; step++) {
      const { err, next } = errorAndRefit(x, h, n, p, levels);
      if (err < bestErr) {
        bestErr = err;
        best = p;
      }
      p = next;
    }
  }
  return best;
}
