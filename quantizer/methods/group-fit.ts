/**
 * grid.ts `fitAffine(x, h, n, bits, true)` with identical results in less time and without
 * garbage, for the methods that fit every group (rtn, imatrix, GPTQ's static groups: 1.4M
 * groups per layer at 1B scale); fitAffine, kept as the plain twin, allocates a parameter
 * object per candidate (~26 per group, some 400 MB of garbage per large matrix). Same candidates, same float operations in the same
 * order; what changes: candidates are pairs of numbers (one object per group, the result), a
 * refit that returns its own input ends that candidate's steps (the remaining steps would
 * repeat it), a candidate seen before in the group (clip ratios and refits often converge on
 * the same parameters) reuses its error and refit, and Σh and Σh·x are summed once per group.
 * Parameters compare with Object.is, so ±0 zero points stay apart as in fitAffine. The parity
 * test checks equality with fitAffine on many groups.
 */
import { roundToF16 } from "../../runtime/format/pack-f16.ts";
import { type AffineParams, CLIP_RATIOS } from "./grid.ts";

/** Candidates remembered per group (the search evaluates at most 1 + 16·3). */
const MEMO = 64;

export interface GroupFitter {
  /** Same result as fitAffine(x, h, n, bits, true). */
  fit(x: Float64Array, h: Float64Array, n: number): AffineParams;
}

export function createGroupFitter(bits: number): GroupFitter {
  const levels = 1 << bits;
  const memoD = new Float64Array(MEMO);
  const memoZ = new Float64Array(MEMO);
  const memoErr = new Float64Array(MEMO);
  const memoNextD = new Float64Array(MEMO); // NaN: the refit is degenerate
  const memoNextZ = new Float64Array(MEMO);
  let memoSize = 0;
  // Results of the last `evaluate` and `range` / `refit` calls (NaN d: none).
  let lastErr = 0, nextD = 0, nextZ = 0, candD = 0, candZ = 0;
  let sw = 0, sx = 0;

  /** grid.ts paramsForRange into candD / candZ. */
  const range = (lo: number, hi: number): void => {
    const floor = Math.max(Math.abs(lo), Math.abs(hi)) / 30000;
    candD = Math.max(roundToF16(Math.max((hi - lo) / (levels - 1), floor)), 2 ** -24);
    candZ = roundToF16(-lo / candD);
  };

  /** grid.ts solveRefit into nextD / nextZ (NaN when degenerate). */
  const refit = (sq: number, sqq: number, sqx: number): void => {
    nextD = NaN;
    const det = sw * sqq - sq * sq;
    if (!(Math.abs(det) > 1e-30 * Math.max(1, sw * sqq))) return;
    const a = (sw * sqx - sq * sx) / det;
    const c = (sqq * sx - sq * sqx) / det;
    if (!(a > 0)) return;
    const d = roundToF16(a);
    if (!(d > 0) || !Number.isFinite(d)) return;
    const z = roundToF16(-c / d);
    if (!Number.isFinite(z)) return;
    nextD = d;
    nextZ = z;
  };

  /** Error and refit of (d, z) into lastErr / nextD / nextZ, memoised per group. */
  const evaluate = (x: Float64Array, h: Float64Array, n: number, d: number, z: number): void => {
    for (let m = 0; m < memoSize; m++) {
      if (memoD[m] === d && Object.is(memoZ[m], z)) {
        lastErr = memoErr[m];
        nextD = memoNextD[m];
        nextZ = memoNextZ[m];
        return;
      }
    }
    let err = 0;
    let sq = 0, sqq = 0, sqx = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[i], hi = h[i];
      let q = Math.round(xi / d + z);
      q = q < 0 ? 0 : q >= levels ? levels - 1 : q;
      const e = xi - d * (q - z);
      err += hi * e * e;
      sq += hi * q;
      sqq += hi * q * q;
      sqx += hi * q * xi;
    }
    lastErr = err;
    refit(sq, sqq, sqx);
    if (memoSize < MEMO) {
      memoD[memoSize] = d;
      memoZ[memoSize] = z;
      memoErr[memoSize] = err;
      memoNextD[memoSize] = nextD;
      memoNextZ[memoSize] = nextZ;
      memoSize++;
    }
  };

  return {
    fit(x, h, n) {
      memoSize = 0;
      let lo = Infinity, hi = -Infinity;
      sw = 0;
      sx = 0;
      for (let i = 0; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        sw += h[i];
        sx += h[i] * x[i];
      }
      range(lo, hi);
      let bestD = candD, bestZ = candZ;
      evaluate(x, h, n, bestD, bestZ);
      let bestErr = lastErr;
      for (const ratio of CLIP_RATIOS) {
        range(lo * ratio, hi * ratio);
        let d = candD, z = candZ;
        for (let step = 0; step < 3 && !Number.isNaN(d); step++) {
          evaluate(x, h, n, d, z);
          if (lastErr < bestErr) {
            bestErr = lastErr;
            bestD = d;
            bestZ = z;
          }
          if (nextD === d && Object.is(nextZ, z)) break;
          d = nextD;
          z = nextZ;
        }
      }
      return { d: bestD, z: bestZ };
    },
  };
}
