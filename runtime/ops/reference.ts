/**
 * The reference backend: every op as a plain fp32 loop over Float32Arrays, written for
 * clarity. It is the oracle the WASM backend is checked against; accumulations run in
 * float64 so the oracle's own rounding stays far below any fast path's.
 */
import { FormatError, ShapeError } from "../errors.ts";
import type { ModelSource } from "../models/types.ts";
import type { MatrixHandle, Ops, WeightStore } from "./types.ts";

export interface DenseMatrix extends MatrixHandle {
  /** (rows, cols) row-major. */
  readonly data: Float32Array;
}

export const referenceOps: Ops<DenseMatrix> = {
  embed(tokens, table) {
    const out = new Float32Array(tokens.length * table.cols);
    tokens.forEach((token, i) => {
      if (!Number.isInteger(token) || token < 0 || token >= table.rows) {
        throw new ShapeError("embed", `token id in [0, ${table.rows})`, String(token));
      }
      out.set(table.data.subarray(token * table.cols, (token + 1) * table.cols), i * table.cols);
    });
    return out;
  },

  linear(x, n, w, bias) {
    if (x.length !== n * w.cols) throw new ShapeError(`linear ${w.name}`, `input of ${n}x${w.cols}`, `${x.length} values`);
    if (bias !== undefined && bias.length !== w.rows) {
      throw new ShapeError(`linear ${w.name} bias`, `${w.rows} values`, `${bias.length}`);
    }
    const out = new Float32Array(n * w.rows);
    for (let t = 0; t < n; t++) {
      const xOff = t * w.cols;
      for (let r = 0; r < w.rows; r++) {
        const wOff = r * w.cols;
        let sum = 0;
        for (let c = 0; c < w.cols; c++) sum += x[xOff + c] * w.data[wOff + c];
        out[t * w.rows + r] = sum + (bias === undefined ? 0 : bias[r]);
      }
    }
    return out;
  },

  rmsNorm(x, n, weight, eps) {
    return rmsNormInto(new Float32Array(x.length), x, n, weight, eps);
  },

  rope(x, n, nHeads, headDim, startPos, invFreq) {
    const half = headDim / 2;
    if (x.length !== n * nHeads * headDim) throw new ShapeError("rope", `${n}x${nHeads}x${headDim} values`, `${x.length}`);
    if (invFreq.length !== half) throw new ShapeError("rope", `${half} inverse frequencies`, `${invFreq.length}`);
    for (let t = 0; t < n; t++) {
      const pos = startPos + t;
      for (let i = 0; i < half; i++) {
        const angle = pos * invFreq[i];
        const cos = Math.cos(angle);
        const sin = Math.sin(angle);
        for (let h = 0; h < nHeads; h++) {
          const base = (t * nHeads + h) * headDim;
          const a = x[base + i];
          const b = x[base + i + half];
          x[base + i] = a * cos - b * sin;
          x[base + i + half] = b * cos + a * sin;
        }
      }
    }
  },

  siluMul(gate, up) {
    return siluMulInto(new Float32Array(gate.length), gate, up);
  },

  addInPlace(a, b) {
    if (a.length !== b.length) throw new ShapeError("add", `equal lengths`, `${a.length} and ${b.length}`);
    for (let i = 0; i < a.length; i++) a[i] += b[i];
  },
};

/** RMSNorm of each row of x (n, weight.length) into `out` (same length); returns out. */
export function rmsNormInto(out: Float32Array, x: Float32Array, n: number, weight: Float32Array, eps: number): Float32Array {
  const dim = weight.length;
  if (x.length !== n * dim) throw new ShapeError("rmsNorm", `${n}x${dim} values`, `${x.length}`);
  for (let t = 0; t < n; t++) {
    let sumSquares = 0;
    for (let i = 0; i < dim; i++) sumSquares += x[t * dim + i] * x[t * dim + i];
    const inv = 1 / Math.sqrt(sumSquares / dim + eps);
    for (let i = 0; i < dim; i++) out[t * dim + i] = Math.fround(x[t * dim + i] * inv) * weight[i];
  }
  return out;
}

/** silu(gate) * up into `out`; returns out. */
export function siluMulInto(out: Float32Array, gate: Float32Array, up: Float32Array): Float32Array {
  if (gate.length !== up.length) throw new ShapeError("siluMul", `equal lengths`, `${gate.length} and ${up.length}`);
  for (let i = 0; i < gate.length; i++) out[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
  return out;
}

/** Resolves weights from an imported checkpoint, reading (dequantising) each tensor once. */
export function createReferenceWeights(source: ModelSource): WeightStore<DenseMatrix> {
  const matrices = new Map<string, DenseMatrix>();
  const vectors = new Map<string, Float32Array>();
  const entry = (name: string) => {
    const tensor = source.tensors.get(name);
    if (tensor === undefined) throw new FormatError(`checkpoint has no tensor "${name}"`, { file: source.path, tensor: name });
    return tensor;
  };
  return {
    has: (name) => source.tensors.has(name),
    matrix(name) {
      let m = matrices.get(name);
      if (m === undefined) {
        const tensor = entry(name);
        if (tensor.shape.length !== 2) {
          throw new FormatError(`tensor "${name}" has shape [${tensor.shape}], expected a matrix`, { file: source.path, tensor: name });
        }
        m = { name, rows: tensor.shape[0], cols: tensor.shape[1], data: tensor.read() };
        matrices.set(name, m);
      }
      return m;
    },
    vector(name) {
      let v = vectors.get(name);
      if (v === undefined) {
        const tensor = entry(name);
        if (tensor.shape.length !== 1) {
          throw new FormatError(`tensor "${name}" has shape [${tensor.shape}], expected a vector`, { file: source.path, tensor: name });
        }
        v = tensor.read();
        vectors.set(name, v);
      }
      return v;
    },
  };
}
