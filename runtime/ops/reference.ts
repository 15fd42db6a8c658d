/**
 * The reference backend: every op as a plain fp32 loop over Float32Arrays, written for
 * clarity. It is the oracle the WASM backend is checked against; accumulations run in
 * float64 so the oracle's own rounding stays far below any fast path's. Run-state buffers are
 * plain arrays, allocated when first touched (a calibration window may be long, and most
 * callers never use the logits buffer). `createArrayOps(linear, embedRow)` builds the same ops
 * over another matrix type (./packed-reference.ts: packed bytes through the kernels' twins).
 */
import { FormatError, ShapeError } from "../errors.ts";
import type { ModelSource } from "../models/types.ts";
import type { Activation, MatrixHandle, Ops, WeightStore } from "./types.ts";

export interface DenseMatrix extends MatrixHandle {
  /** (rows, cols) row-major. */
  readonly data: Float32Array;
}

/** A run-state buffer (or rows of one) as a plain array. */
export interface ArrayActivation extends Activation {
  /** From its first row: at least rows·width values. */
  readonly data: Float32Array;
}

/** Ops over plain arrays; `linear` and `embedRow` are what differs between matrix types. */
export type ArrayOps<M extends MatrixHandle> = Ops<M, Float32Array, ArrayActivation>;

function buffer(name: string, width: number, rows: number): ArrayActivation {
  let data: Float32Array | undefined;
  return {
    name,
    width,
    rows,
    get data() {
      return data ??= new Float32Array(rows * width);
    },
  };
}

function checkRows(op: string, x: Activation, n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > x.rows) throw new ShapeError(op, `1..${x.rows} rows of ${x.name}`, String(n));
}

/**
 * The array ops with a matrix type's own `linearInto` (out (n, w.rows) = x (n, w.cols) · wᵀ) and
 * `embedRow` (row r of a table as f32).
 */
export function createArrayOps<M extends MatrixHandle>(
  linearInto: (x: Float32Array, n: number, w: M, out: Float32Array) => void,
  embedRow: (table: M, row: number) => Float32Array,
): ArrayOps<M> {
  return {
    createState(widths, maxTokens) {
      const state = {} as Record<keyof typeof widths, ArrayActivation>;
      for (const name of Object.keys(widths) as (keyof typeof widths)[]) state[name] = buffer(String(name), widths[name], maxTokens);
      return state;
    },

    rows(x, first) {
      if (!Number.isInteger(first) || first < 0 || first >= x.rows) throw new ShapeError(`rows of ${x.name}`, `a row in [0, ${x.rows})`, String(first));
      return { name: x.name, width: x.width, rows: x.rows - first, data: x.data.subarray(first * x.width) };
    },

    embed(tokens, table, out) {
      checkRows("embed", out, tokens.length);
      if (out.width !== table.cols) throw new ShapeError("embed", `an output of width ${table.cols}`, String(out.width));
      tokens.forEach((token, i) => {
        if (!Number.isInteger(token) || token < 0 || token >= table.rows) {
          throw new ShapeError("embed", `token id in [0, ${table.rows})`, String(token));
        }
        out.data.set(embedRow(table, token), i * table.cols);
      });
    },

    linear(x, n, projections) {
      for (const { weight: w, out, bias } of projections) {
        checkRows(`linear ${w.name}`, x, n);
        checkRows(`linear ${w.name}`, out, n);
        if (x.width !== w.cols) throw new ShapeError(`linear ${w.name}`, `input of width ${w.cols}`, `${x.name} of width ${x.width}`);
        if (out.width !== w.rows) throw new ShapeError(`linear ${w.name}`, `output of width ${w.rows}`, `${out.name} of width ${out.width}`);
        if (bias !== undefined && bias.length !== w.rows) throw new ShapeError(`linear ${w.name} bias`, `${w.rows} values`, `${bias.length}`);
        const y = out.data.subarray(0, n * w.rows);
        linearInto(x.data.subarray(0, n * w.cols), n, w, y);
        if (bias !== undefined) for (let t = 0; t < n; t++) for (let r = 0; r < w.rows; r++) y[t * w.rows + r] += bias[r];
      }
    },

    rmsNorm(x, rows, weight, eps, out) {
      const dim = weight.length;
      if (!Number.isInteger(rows) || rows < 1 || rows * dim > x.rows * x.width || out.rows * out.width < rows * dim) {
        throw new ShapeError("rmsNorm", `${rows} rows of ${dim} within ${x.name} and ${out.name}`, `${x.rows}x${x.width}, ${out.rows}x${out.width}`);
      }
      rmsNormInto(out.data, x.data, rows, weight, eps);
    },

    rope(x, n, nHeads, headDim, startPos, invFreq) {
      checkRows("rope", x, n);
      if (x.width !== nHeads * headDim) throw new ShapeError("rope", `width ${nHeads}x${headDim}`, String(x.width));
      ropeInPlace(x.data, n, nHeads, headDim, startPos, invFreq);
    },

    siluMul(gate, up, n, out) {
      checkRows("siluMul", gate, n);
      if (gate.width !== up.width || out.width !== gate.width) {
        throw new ShapeError("siluMul", "equal widths", `${gate.width}, ${up.width} and ${out.width}`);
      }
      const g = gate.data;
      const u = up.data;
      const o = out.data;
      for (let i = 0; i < n * gate.width; i++) o[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
    },

    add(x, y, n) {
      checkRows("add", x, n);
      if (x.width !== y.width) throw new ShapeError("add", "equal widths", `${x.width} and ${y.width}`);
      const a = x.data;
      const b = y.data;
      for (let i = 0; i < n * x.width; i++) a[i] += b[i];
    },

    read(x, n) {
      checkRows("read", x, n);
      return x.data.slice(0, n * x.width);
    },

    write(x, n, data) {
      checkRows("write", x, n);
      if (data.length < n * x.width) throw new ShapeError("write", `${n}x${x.width} values`, String(data.length));
      x.data.set(data.subarray(0, n * x.width));
    },
  };
}

/** RMSNorm of `rows` rows of weight.length values of x into out (may be x); returns out. */
export function rmsNormInto(out: Float32Array, x: Float32Array, rows: number, weight: ArrayLike<number>, eps: number): Float32Array {
  const dim = weight.length;
  for (let t = 0; t < rows; t++) {
    let sumSquares = 0;
    for (let i = 0; i < dim; i++) sumSquares += x[t * dim + i] * x[t * dim + i];
    const inv = 1 / Math.sqrt(sumSquares / dim + eps);
    for (let i = 0; i < dim; i++) out[t * dim + i] = Math.fround(x[t * dim + i] * inv) * weight[i];
  }
  return out;
}

/** Rotate-half RoPE in place on x (n, nHeads·headDim) at positions startPos.., angles in f64. */
export function ropeInPlace(x: Float32Array, n: number, nHeads: number, headDim: number, startPos: number, invFreq: Float32Array): void {
  const half = headDim / 2;
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
}

/** out (n, w.rows) = x (n, w.cols) · wᵀ, sums in f64. */
export function denseLinearInto(x: Float32Array, n: number, w: DenseMatrix, out: Float32Array): void {
  for (let t = 0; t < n; t++) {
    const xOff = t * w.cols;
    for (let r = 0; r < w.rows; r++) {
      const wOff = r * w.cols;
      let sum = 0;
      for (let c = 0; c < w.cols; c++) sum += x[xOff + c] * w.data[wOff + c];
      out[t * w.rows + r] = sum;
    }
  }
}

export const referenceOps: ArrayOps<DenseMatrix> = createArrayOps(
  denseLinearInto,
  (table, row) => table.data.subarray(row * table.cols, (row + 1) * table.cols),
);

/** Resolves weights from an imported checkpoint, reading (dequantising) each tensor once. */
export function createReferenceWeights(source: ModelSource): WeightStore<DenseMatrix, Float32Array> {
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
