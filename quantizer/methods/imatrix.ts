/**
 * Importance-weighted round-to-nearest (llama.cpp's imatrix): the rtn search of grid.ts with
 * each weight's squared error scaled by its input channel's importance, so the clip/scale
 * choice protects the channels that carry the most activation energy. The weight is
 * sqrt(mean x² + floor), a deviation from llama.cpp's plain mean x²: on stories260K the full
 * weighting let a few huge channels dominate and lost to rtn at 2 bits, the square root beat
 * it at 2, 3 and 4 bits (bench/results/quality.md). The floor (1e-3 of the mean importance)
 * keeps channels never seen in calibration from being ignored outright.
 */
import { InvalidArgumentError } from "../../runtime/errors.ts";
import { quantizeAffine } from "./affine.ts";
import type { MatrixInput, QuantizedMatrix } from "./types.ts";

export function importanceWeights(importance: ArrayLike<number>): Float64Array {
  let mean = 0;
  for (let i = 0; i < importance.length; i++) mean += importance[i];
  mean /= Math.max(1, importance.length);
  const floor = mean > 0 ? 1e-3 * mean : 1;
  const h = new Float64Array(importance.length);
  for (let i = 0; i < h.length; i++) h[i] = Math.sqrt(importance[i] + floor);
  return h;
}

export function quantizeImatrix(input: MatrixInput): QuantizedMatrix {
  if (input.importance === undefined) {
    throw new InvalidArgumentError("calibration", "imatrix needs calibration importance for every input channel; run it through quantizeModel (which calibrates) or pass importance");
  }
  return quantizeAffine("imatrix", input, importanceWeights(input.importance), true);
}
