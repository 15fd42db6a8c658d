/**
 * Symmetric int8 per group (llama.cpp's Q8_0 with a configurable group): scale = max|w|/127
 * rounded to f16, q = round(w/scale). The last group of a row may be partial: the packed q8
 * layout pads rows to whole groups, so any width is accepted.
 */
import { ShapeError } from "../../runtime/errors.ts";
import { roundToF16 } from "../../runtime/format/pack-f16.ts";
import type { QuantizedMatrix } from "./types.ts";

export function quantizeQ8(weights: Float32Array, rows: number, cols: number, group: number): QuantizedMatrix {
  if (weights.length !== rows * cols) throw new ShapeError("q8", `${rows}x${cols} weights`, `${weights.length}`);
  const groups = Math.ceil(cols / group);
  const q8 = new Int8Array(rows * cols);
  const scales = new Float32Array(rows * groups);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const start = r * cols + g * group;
      const end = r * cols + Math.min(cols, (g + 1) * group);
      let max = 0;
      for (let i = start; i < end; i++) max = Math.max(max, Math.abs(weights[i]));
      const scale = roundToF16(max / 127);
      scales[r * groups + g] = scale;
      if (!(scale > 0)) continue;
      for (let i = start; i < end; i++) q8[i] = Math.max(-127, Math.min(127, Math.round(weights[i] / scale)));
    }
  }
  return { encoding: { kind: "q8", group }, q8, scales };
}
