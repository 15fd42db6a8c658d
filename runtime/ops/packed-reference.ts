/**
 * The reference backend for packed weights: the same plain ops as ./reference.ts, but
 * `linear` runs the TypeScript twins of the WASM matmul kernels on the packed bytes (int8
 * LUT tables included). The WASM backend must match it to float tolerance; the gap to the
 * fp32 reference on dequantised weights is the kernels' table quantisation, measured apart.
 */
import type { Encoding } from "../format/encoding.ts";
import { dequantize } from "../format/pack-dequantize.ts";
import { buildLut, gemmDense, gemmLut, gemmQ8I8, lutByteLength } from "../kernels/reference/matmul.ts";
import { type ArrayOps, createArrayOps } from "./reference.ts";
import type { MatrixHandle } from "./types.ts";

export interface PackedBytesMatrix extends MatrixHandle {
  readonly encoding: Encoding;
  /** The tensor's bytes in the kernels' native layout. */
  readonly bytes: Uint8Array;
}

const dequantized = new WeakMap<PackedBytesMatrix, Float32Array>();

function linearInto(x: Float32Array, n: number, w: PackedBytesMatrix, out: Float32Array): void {
  const e = w.encoding;
  if (e.kind === "bitplane" || e.kind === "ternary") {
    const stride = lutByteLength(w.cols, e.group);
    const luts = new Uint8Array(n * stride);
    for (let t = 0; t < n; t++) luts.set(buildLut(x.subarray(t * w.cols, (t + 1) * w.cols), w.cols, e.group), t * stride);
    out.set(gemmLut(e, w.bytes, w.rows, w.cols, luts, n));
  } else if (e.kind === "q8") {
    out.set(gemmQ8I8(e, w.bytes, w.rows, w.cols, x, n));
  } else {
    out.set(gemmDense(e, w.bytes, w.rows, w.cols, x, n));
  }
}

function embedRow(table: PackedBytesMatrix, row: number): Float32Array {
  let values = dequantized.get(table);
  if (values === undefined) {
    values = dequantize(table.encoding, table.bytes, table.rows, table.cols);
    dequantized.set(table, values);
  }
  return values.subarray(row * table.cols, (row + 1) * table.cols);
}

export const packedReferenceOps: ArrayOps<PackedBytesMatrix> = createArrayOps(linearInto, embedRow);
