/**
 * Hierarchical Linear Quantisation (ELUTQ, PAPERS.md): per group ŵ = Σ_p s_p·b_p + z with one
 * scale per bit-plane b_p ∈ {0,1} and an offset z, so the 2^b levels need not be evenly
 * spaced. Starts from the rtn fit (s_p = d·2^p, z = −d·z_rtn) and alternates (1) nearest-level
 * assignment of every weight and (2) a least-squares refit of [s_1..s_b, z] for the chosen
 * bits (normal equations with a tiny ridge), up to HLQ_ITERATIONS times. Parameters are
 * rounded to f16 before each assignment; the best iterate by squared error is kept, so HLQ
 * never does worse than the rtn start. Encodes as bitplane "per-plane". Data-free.
 */
import { roundToF16 } from "../../runtime/format/pack-f16.ts";
import { fitAffine } from "./grid.ts";
import { checkInput, type MatrixInput, type QuantizedMatrix } from "./types.ts";

export const HLQ_ITERATIONS = 10;

/** Solves the (n×n) system a·x = b in place by Gaussian elimination with partial pivoting. */
function solve(a: Float64Array, b: Float64Array, n: number): Float64Array | undefined {
  for (let c = 0; c < n; c++) {
    let pivot = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r * n + c]) > Math.abs(a[pivot * n + c])) pivot = r;
    if (!(Math.abs(a[pivot * n + c]) > 1e-300)) return undefined;
    if (pivot !== c) {
      for (let k = 0; k < n; k++) [a[c * n + k], a[pivot * n + k]] = [a[pivot * n + k], a[c * n + k]];
      [b[c], b[pivot]] = [b[pivot], b[c]];
    }
    for (let r = c + 1; r < n; r++) {
      const f = a[r * n + c] / a[c * n + c];
      for (let k = c; k < n; k++) a[r * n + k] -= f * a[c * n + k];
      b[r] -= f * b[c];
    }
  }
  const x = new Float64Array(n);
  for (let r = n - 1; r >= 0; r--) {
    let s = b[r];
    for (let k = r + 1; k < n; k++) s -= a[r * n + k] * x[k];
    x[r] = s / a[r * n + r];
  }
  return x;
}

/** Nearest level for every value; writes codes and returns the squared error. */
function assign(x: Float64Array, n: number, s: Float64Array, bits: number, codes: Uint8Array): number {
  const levels = 1 << bits;
  const value = new Float64Array(levels);
  for (let q = 0; q < levels; q++) {
    let v = s[bits];
    for (let p = 0; p < bits; p++) if ((q >> p) & 1) v += s[p];
    value[q] = v;
  }
  let err = 0;
  for (let i = 0; i < n; i++) {
    let best = 0, bestErr = Infinity;
    for (let q = 0; q < levels; q++) {
      const e = (x[i] - value[q]) ** 2;
      if (e < bestErr) {
        bestErr = e;
        best = q;
      }
    }
    codes[i] = best;
    err += bestErr;
  }
  return err;
}

/** Least-squares [s_1..s_b, z] for fixed codes (ridge 1e-9 of the trace); undefined if singular. */
function refit(x: Float64Array, n: number, codes: Uint8Array, bits: number): Float64Array | undefined {
  const m = bits + 1;
  const a = new Float64Array(m * m);
  const b = new Float64Array(m);
  const f = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < bits; p++) f[p] = (codes[i] >> p) & 1;
    f[bits] = 1;
    for (let j = 0; j < m; j++) {
      b[j] += f[j] * x[i];
      for (let k = 0; k < m; k++) a[j * m + k] += f[j] * f[k];
    }
  }
  let trace = 0;
  for (let j = 0; j < m; j++) trace += a[j * m + j];
  for (let j = 0; j < m; j++) a[j * m + j] += 1e-9 * trace + 1e-12;
  const s = solve(a, b, m);
  if (s === undefined) return undefined;
  for (let j = 0; j < m; j++) {
    s[j] = roundToF16(s[j]);
    if (!Number.isFinite(s[j])) return undefined;
  }
  return s;
}

export function quantizeHlq(input: MatrixInput): QuantizedMatrix {
  checkInput("hlq", input);
  const { weights, rows, cols, group, bits } = input;
  const groups = cols / group;
  const codes = new Uint8Array(rows * cols);
  const scales = new Float32Array(rows * groups * bits);
  const zeros = new Float32Array(rows * groups);
  const x = new Float64Array(group);
  const ones = new Float64Array(group).fill(1);
  const trial = new Uint8Array(group);
  const best = new Uint8Array(group);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const base = r * cols + g * group;
      for (let i = 0; i < group; i++) x[i] = weights[base + i];
      const p = fitAffine(x, ones, group, bits, true);
      let s: Float64Array | undefined = new Float64Array(bits + 1);
      for (let k = 0; k < bits; k++) s[k] = roundToF16(p.d * 2 ** k);
      s[bits] = roundToF16(-p.d * p.z);
      let bestS = s;
      let bestErr = assign(x, group, s, bits, trial);
      best.set(trial);
      for (let it = 0; it < HLQ_ITERATIONS && s !== undefined; it++) {
        s = refit(x, group, trial, bits);
        if (s === undefined) break;
        const err = assign(x, group, s, bits, trial);
        if (err < bestErr - 1e-18) {
          bestErr = err;
          bestS = s;
          best.set(trial);
        } else break;
      }
      codes.set(best, base);
      for (let k = 0; k < bits; k++) scales[(r * groups + g) * bits + k] = bestS[k];
      zeros[r * groups + g] = bestS[bits];
    }
  }
  return { encoding: { kind: "bitplane", bits, group, scales: "per-plane" }, codes, scales, zeros };
}
