/**
 * What every quantisation method takes and returns: a (rows, cols) fp32 weight matrix with
 * optional calibration statistics in, codes plus group parameters for one packed encoding
 * (runtime/format/encoding.ts) out. `packQuantized` hands the result to the format's packers;
 * `reconstruct` rebuilds the weights straight from codes and parameters (what dequantising
 * the packed bytes gives, since every method rounds its parameters to f16 before coding and a
 * zero point is stored as the offset -d*z, rounded the way the packer rounds it).
 */
import { ShapeError } from "../../runtime/errors.ts";
import type { Encoding } from "../../runtime/format/encoding.ts";
import { type BitplaneEncoding, offsetFromZero, packBitplane, packTernary, type TernaryEncoding } from "../../runtime/format/pack-lut.ts";
import { packQ8, type Q8Encoding } from "../../runtime/format/pack-q8.ts";

export type LutGroup = 32 | 64 | 128 | 256;
export type PlaneBits = 1 | 2 | 3 | 4;

/** Calibration statistics of one linear layer's input (see calibrate.ts). */
export interface LayerStats {
  /** (cols) mean x² per input channel over the calibration tokens (llama.cpp's importance matrix). */
  readonly importance?: Float64Array;
  /** (cols, cols) H = 2·XᵀX / tokens over the calibration tokens (GPTQ's Hessian). */
  readonly hessian?: Float64Array;
}

export interface MatrixInput extends LayerStats {
  /** (rows, cols) row-major: rows are output features, cols input features (PyTorch Linear). */
  readonly weights: Float32Array;
  readonly rows: number;
  readonly cols: number;
  readonly group: LutGroup;
  /** Bits per weight for bit-plane methods (ignored by the ternary ones). */
  readonly bits: PlaneBits;
}

export type QuantizedMatrix =
  | {
    readonly encoding: BitplaneEncoding;
    readonly codes: Uint8Array;
    readonly scales: Float32Array;
    readonly zeros: Float32Array;
    /** zero-point only: the stored offsets m (w = d*q + m) to use instead of -d*z (exact GGUF mins). */
    readonly offsets?: Float32Array;
  }
  | { readonly encoding: TernaryEncoding; readonly trits: Int8Array; readonly alphas: Float32Array }
  | { readonly encoding: Q8Encoding; readonly q8: Int8Array; readonly scales: Float32Array };

/** A method: pure, deterministic, never mutates `input.weights`. */
export type QuantizeMethod = (input: MatrixInput) => QuantizedMatrix;

/** Throws ShapeError unless the weights fill (rows, cols) and cols is a whole number of groups. */
export function checkInput(method: string, input: MatrixInput): void {
  const { weights, rows, cols, group } = input;
  if (weights.length !== rows * cols) {
    throw new ShapeError(method, `${rows}x${cols} = ${rows * cols} weights`, `${weights.length}`);
  }
  if (cols % group !== 0) {
    throw new ShapeError(method, `cols a multiple of the group size ${group}`, `${cols} cols; use --group 32 or keep the tensor in q8`);
  }
  if (input.importance !== undefined && input.importance.length !== cols) {
    throw new ShapeError(method, `${cols} importance values`, `${input.importance.length}`);
  }
  if (input.hessian !== undefined && input.hessian.length !== cols * cols) {
    throw new ShapeError(method, `a ${cols}x${cols} Hessian`, `${input.hessian.length} values`);
  }
}

/** Packs a method's result into the encoding's native byte layout. */
export function packQuantized(q: QuantizedMatrix, rows: number, cols: number): Uint8Array {
  const e: Encoding = q.encoding;
  if (e.kind === "bitplane" && "codes" in q) {
    const params = q.offsets !== undefined ? { scales: q.scales, offsets: q.offsets } : { scales: q.scales, zeros: q.zeros };
    return packBitplane(e, q.codes, params, rows, cols);
  }
  if (e.kind === "ternary" && "trits" in q) return packTernary(e, q.trits, q.alphas, rows, cols);
  if (e.kind === "q8" && "q8" in q) return packQ8(e, q.q8, q.scales, rows, cols);
  throw new ShapeError("packQuantized", "codes matching the encoding", JSON.stringify(e));
}

/** (rows, cols) weights the codes and parameters stand for. */
export function reconstruct(q: QuantizedMatrix, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const e = q.encoding;
  const groups = Math.ceil(cols / (e.kind === "q8" ? e.group : e.group));
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      const g = r * groups + Math.floor(c / e.group);
      if ("codes" in q && e.kind === "bitplane") {
        // Stored as d and the offset m = -d*z (runtime/format/pack-lut.ts), which dequantise as f32(d*q) + m.
        if (e.scales === "zero-point") {
          const m = q.offsets !== undefined ? q.offsets[g] : offsetFromZero(e, q.scales[g], q.zeros[g]);
          out[i] = Math.fround(q.scales[g] * q.codes[i]) + m;
        }
        else {
          let w = q.zeros[g];
          for (let p = 0; p < e.bits; p++) w += q.scales[g * e.bits + p] * ((q.codes[i] >> p) & 1);
          out[i] = w;
        }
      } else if ("trits" in q && e.kind === "ternary") {
        let w = 0;
        for (let k = 0; k < e.planes; k++) w += q.alphas[g * e.planes + k] * q.trits[k * rows * cols + i];
        out[i] = w;
      } else if ("q8" in q) {
        out[i] = q.scales[g] * q.q8[i];
      }
    }
  }
  return out;
}

/** Σ h_c (w − ŵ)² over the matrix, h = per-column weights (1 when absent). */
export function squaredError(w: Float32Array, wq: Float32Array, cols: number, h?: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < w.length; i++) {
    const d = w[i] - wq[i];
    sum += (h === undefined ? 1 : h[i % cols]) * d * d;
  }
  return sum;
}

/** Output error ‖(W − Ŵ)·Xᵀ‖² expressed through H = 2XᵀX/n: Σ_rows eᵀ H e / 2 (per token). */
export function hessianError(w: Float32Array, wq: Float32Array, rows: number, cols: number, hessian: Float64Array): number {
  let sum = 0;
  const e = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) e[c] = w[r * cols + c] - wq[r * cols + c];
    for (let i = 0; i < cols; i++) {
      let acc = 0;
      for (let j = 0; j < cols; j++) acc += hessian[i * cols + j] * e[j];
      sum += e[i] * acc;
    }
  }
  return sum / 2;
}
