/**
 * Shared loop of the data-free and importance-weighted affine methods: every (row, group)
 * gets its own (d, z) from grid.ts and codes q = clamp(round(w/d + z)); the result is a
 * bitplane "zero-point" matrix (w = d·(q − z)).
 */
import { affineCode, fitAffine } from "./grid.ts";
import { createGroupFitter } from "./group-fit.ts";
import { checkInput, type MatrixInput, type QuantizedMatrix } from "./types.ts";

/**
 * Quantises every group with error weights `h`: per column (length cols), per element (length
 * rows·cols) or undefined (all 1); `search` false = plain min/max.
 */
export function quantizeAffine(method: string, input: MatrixInput, h: ArrayLike<number> | undefined, search: boolean): QuantizedMatrix {
  checkInput(method, input);
  const { weights, rows, cols, group, bits } = input;
  const groups = cols / group;
  const levels = 1 << bits;
  const codes = new Uint8Array(rows * cols);
  const scales = new Float32Array(rows * groups);
  const zeros = new Float32Array(rows * groups);
  const x = new Float64Array(group);
  const hw = new Float64Array(group).fill(1);
  const fitter = search ? createGroupFitter(bits) : undefined; // fitAffine's search, faster
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const base = r * cols + g * group;
      for (let i = 0; i < group; i++) {
        x[i] = weights[base + i];
        if (h !== undefined) hw[i] = h.length === cols ? h[g * group + i] : h[base + i];
      }
      const p = fitter !== undefined ? fitter.fit(x, hw, group) : fitAffine(x, hw, group, bits, false);
      scales[r * groups + g] = p.d;
      zeros[r * groups + g] = p.z;
      for (let i = 0; i < group; i++) codes[base + i] = affineCode(x[i], p, levels);
    }
  }
  return { encoding: { kind: "bitplane", bits, group, scales: "zero-point" }, codes, scales, zeros };
}
