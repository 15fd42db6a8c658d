/**
 * PTQTP (arXiv 2509.16989): two ternary trit-planes per row group, ŵ = α1·T1 + α2·T2 with
 * T ∈ {−1, 0, 1}. Starting from T1 = T2 = sign(w), alternate (1) α = (SᵀS + λI)⁻¹Sᵀw for
 * S = [T1 T2] (2×2 ridge least squares; λ = 1e-6 of the trace, raised ×100 while the system
 * is ill-conditioned) and (2) per element, the best of the 9 (t1, t2) pairs for that α.
 * Stops when α moves by less than 1e-4 (relative to mean|w| of the group, so the rule is
 * scale-free; the paper states it in absolute terms for unit-scale weights) or after 50
 * iterations. α is rounded to f16 before the final assignment. Data-free.
 */
import { roundToF16 } from "../../runtime/format/pack-f16.ts";
import { checkInput, type MatrixInput, type QuantizedMatrix } from "./types.ts";

export const PTQTP_MAX_ITERATIONS = 50;
export const PTQTP_TOLERANCE = 1e-4;

/** Ridge least squares of x ≈ a1·t1 + a2·t2 over one group. */
function solveAlpha(x: Float64Array, t1: Int8Array, t2: Int8Array, n: number): [number, number] {
  let s11 = 0, s12 = 0, s22 = 0, b1 = 0, b2 = 0;
  for (let i = 0; i < n; i++) {
    s11 += t1[i] * t1[i];
    s12 += t1[i] * t2[i];
    s22 += t2[i] * t2[i];
    b1 += t1[i] * x[i];
    b2 += t2[i] * x[i];
  }
  let lambda = 1e-6 * (s11 + s22) + 1e-12;
  for (;;) {
    const a = s11 + lambda, d = s22 + lambda;
    const det = a * d - s12 * s12;
    if (det > 1e-9 * (a * d) || lambda > 1e6) return [(d * b1 - s12 * b2) / det, (a * b2 - s12 * b1) / det];
    lambda *= 100;
  }
}

/** Best (t1, t2) of the 9 pairs for each element; returns whether any trit changed. */
function assignTrits(x: Float64Array, t1: Int8Array, t2: Int8Array, n: number, a1: number, a2: number): boolean {
  let changed = false;
  for (let i = 0; i < n; i++) {
    let best1 = 0, best2 = 0, bestErr = Infinity;
    for (let u = -1; u <= 1; u++) {
      for (let v = -1; v <= 1; v++) {
        const e = (x[i] - a1 * u - a2 * v) ** 2;
        if (e < bestErr) {
          bestErr = e;
          best1 = u;
          best2 = v;
        }
      }
    }
    if (t1[i] !== best1 || t2[i] !== best2) changed = true;
    t1[i] = best1;
    t2[i] = best2;
  }
  return changed;
}

export function quantizePtqtp(input: MatrixInput): QuantizedMatrix {
  checkInput("ptqtp", input);
  const { weights, rows, cols, group } = input;
  const groups = cols / group;
  const n = rows * cols;
  const trits = new Int8Array(2 * n);
  const alphas = new Float32Array(rows * groups * 2);
  const x = new Float64Array(group);
  const t1 = new Int8Array(group);
  const t2 = new Int8Array(group);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const base = r * cols + g * group;
      let scale = 0;
      for (let i = 0; i < group; i++) {
        x[i] = weights[base + i];
        t1[i] = t2[i] = Math.sign(x[i]);
        scale += Math.abs(x[i]);
      }
      scale /= group;
      let [a1, a2] = solveAlpha(x, t1, t2, group);
      for (let it = 0; it < PTQTP_MAX_ITERATIONS; it++) {
        const changed = assignTrits(x, t1, t2, group, a1, a2);
        const [n1, n2] = solveAlpha(x, t1, t2, group);
        const delta = Math.max(Math.abs(n1 - a1), Math.abs(n2 - a2));
        a1 = n1;
        a2 = n2;
        if (!changed || delta < PTQTP_TOLERANCE * scale) break;
      }
      a1 = roundToF16(a1);
      a2 = roundToF16(a2);
      assignTrits(x, t1, t2, group, a1, a2);
      for (let i = 0; i < group; i++) {
        trits[base + i] = t1[i];
        trits[n + base + i] = t2[i];
      }
      alphas[(r * groups + g) * 2] = a1;
      alphas[(r * groups + g) * 2 + 1] = a2;
    }
  }
  return { encoding: { kind: "ternary", group, planes: 2 }, trits, alphas };
}
