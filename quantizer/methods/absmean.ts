/**
 * BitNet b1.58 absmean ternarisation (arXiv 2402.17764): γ = mean|w|, t = RoundClip(w/γ, −1, 1),
 * ŵ = γ·t. BitNet takes one γ per tensor; here γ is per (row, group) because the packed
 * ternary encoding stores one f16 scale per group, which only lowers the error. Data-free.
 */
import { roundToF16 } from "../../runtime/format/pack-f16.ts";
import { checkInput, type MatrixInput, type QuantizedMatrix } from "./types.ts";

export function quantizeAbsmean(input: MatrixInput): QuantizedMatrix {
  checkInput("absmean", input);
  const { weights, rows, cols, group } = input;
  const groups = cols / group;
  const trits = new Int8Array(rows * cols);
  const alphas = new Float32Array(rows * groups);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const base = r * cols + g * group;
      let sum = 0;
      for (let i = 0; i < group; i++) sum += Math.abs(weights[base + i]);
      const gamma = roundToF16(sum / group);
      alphas[r * groups + g] = gamma;
      if (!(gamma > 0)) continue;
      for (let i = 0; i < group; i++) {
        const t = Math.round(weights[base + i] / gamma);
        trits[base + i] = t > 1 ? 1 : t < -1 ? -1 : t;
      }
    }
  }
  return { encoding: { kind: "ternary", group, planes: 1 }, trits, alphas };
}
