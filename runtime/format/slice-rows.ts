/**
 * Rows [begin, end) of a packed matrix as a packed matrix of end-begin rows in the same
 * encoding (what a worker with a private memory holds in the row-shard pool). LUT encodings
 * store rows in tiles of ROW_TILE, so `begin` must be a multiple of ROW_TILE, and so must
 * `end` unless it is the last row; q8 stores codes then scales, both sliced.
 */
import { ShapeError } from "../errors.ts";
import { type Encoding, encodingName, matrixLayout, ROW_TILE } from "./encoding.ts";

export function sliceMatrixRows(e: Encoding, rows: number, cols: number, bytes: Uint8Array, begin: number, end: number): Uint8Array {
  const full = matrixLayout(e, rows, cols);
  if (bytes.byteLength !== full.byteLength) {
    throw new ShapeError("sliceMatrixRows", `${full.byteLength} bytes for a ${rows}x${cols} ${encodingName(e)} matrix`, `${bytes.byteLength}`);
  }
  if (!Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end > rows || begin >= end) {
    throw new ShapeError("sliceMatrixRows", `a non-empty row range inside [0, ${rows})`, `[${begin}, ${end})`);
  }
  const part = matrixLayout(e, end - begin, cols);
  switch (e.kind) {
    case "f32":
    case "f16": {
      const rowBytes = full.byteLength / rows;
      return bytes.slice(begin * rowBytes, end * rowBytes);
    }
    case "q8": {
      const out = new Uint8Array(part.byteLength);
      out.set(bytes.subarray(begin * full.colsPadded, end * full.colsPadded));
      const scaleRow = 2 * full.groups;
      out.set(bytes.subarray(full.scaleOffset + begin * scaleRow, full.scaleOffset + end * scaleRow), part.scaleOffset);
      return out;
    }
    case "bitplane":
    case "ternary": {
      if (begin % ROW_TILE !== 0 || (end % ROW_TILE !== 0 && end !== rows)) {
        throw new ShapeError("sliceMatrixRows", `row bounds on the ${ROW_TILE}-row tile of LUT matrices (or the last row)`, `[${begin}, ${end})`);
      }
      const tileBytes = full.groups * full.blockBytes;
      return bytes.slice((begin / ROW_TILE) * tileBytes, (begin / ROW_TILE) * tileBytes + part.byteLength);
    }
  }
}
