/**
 * The reference backend for packed weights: the same plain ops as ./reference.ts, but
 * `linear` runs the TypeScript twins of the WASM matmul kernels on the packed bytes (int8
 * LUT tables included). The WASM backend must match it to float tolerance; the gap to the
 * fp32 reference on dequantised weights is the kernels' table quantisation, measured apart.
 */
import { ShapeError } from "../errors.ts";
import type { Encoding } from "../format/encoding.ts";
import { dequantize } from "../format/pack-dequantize.ts";
import { buildLut, gemmDense, gemmLut, gemmQ8I8, lutByteLength } from "../kernels/reference/matmul.ts";
import { referenceOps } from "./reference.ts";
import type { MatrixHandle, Ops } from "./types.ts";

export interface PackedBytesMatrix extends MatrixHandle {
  readonly encoding: Encoding;
  /** The tensor's bytes in the kernels' native layout. */
  readonly bytes: Uint8Array;
}

const dequantized = new WeakMap<PackedBytesMatrix, Float32Array>();

export const packedReferenceOps: Ops<PackedBytesMatrix> = {
  ...(referenceOps as unknown as Ops<PackedBytesMatrix>),

  embed(tokens, table) {
    let values = dequantized.get(table);
    if (values === undefined) {
      values = dequantize(table.encoding, table.bytes, table.rows, table.cols);
      dequantized.set(table, values);
    }
    return referenceOps.embed(tokens, { name: table.name, rows: table.rows, cols: table.cols, data: values });
  },

  linear(x, n, w, bias) {
    if (x.length !== n * w.cols) throw new ShapeError(`linear ${w.name}`, `input of ${n}x${w.cols}`, `${x.length} values`);
    const e = w.encoding;
    let out: Float32Array;
    if (e.kind === "bitplane" || e.kind === "ternary") {
      const stride = lutByteLength(w.cols, e.group);
      const luts = new Uint8Array(n * stride);
      for (let t = 0; t < n; t++) luts.set(buildLut(x.subarray(t * w.cols, (t + 1) * w.cols), w.cols, e.group), t * stride);
      out = gemmLut(e, w.bytes, w.rows, w.cols, luts, n);
    } else if (e.kind === "q8") {
      out = gemmQ8I8(e, w.bytes, w.rows, w.cols, x, n);
    } else {
      out = gemmDense(e, w.bytes, w.rows, w.cols, x, n);
    }
    if (bias !== undefined) for (let t = 0; t < n; t++) for (let r = 0; r < w.rows; r++) out[t * w.rows + r] += bias[r];
    return out;
  },
};
