/**
 * Round-to-nearest, group-wise asymmetric (w = d·(q − z)), with a clipping-ratio grid and a
 * least-squares refit per group that minimise the squared error (grid.ts). Data-free.
 */
import { quantizeAffine } from "./affine.ts";
import type { MatrixInput, QuantizedMatrix } from "./types.ts";

export function quantizeRtn(input: MatrixInput): QuantizedMatrix {
  return quantizeAffine("rtn", input, undefined, true);
}

/** Plain min/max rounding with no search: the baseline the other methods are measured against. */
export function quantizeMinMax(input: MatrixInput): QuantizedMatrix {
  return quantizeAffine("minmax", input, undefined, false);
}
