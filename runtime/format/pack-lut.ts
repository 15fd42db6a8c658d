/**
 * Packing of the LUT encodings (bitplane and ternary) into the order the WASM kernel streams
 * them (T-MAC, arXiv 2407.00088; layout in encoding.ts): row tiles of 16, per group the index
 * vectors (quad pair, plane, byte: low nibble even quad, high nibble odd quad; byte 2j holds
 * row j, byte 2j+1 row 8+j) then the f16 scale vectors (natural row order). Both encodings reduce to a "stream code" of `planes` bits per weight:
 * bitplane: the code q itself; ternary: (t1+1) | (t2+1) << 2.
 */
import { FormatError } from "../errors.ts";
import { type Encoding, lutPlanes, type MatrixLayout, matrixLayout, ROW_TILE } from "./encoding.ts";
import { checkLength, f16ToF32, scaleToF16 } from "./pack-f16.ts";

export type BitplaneEncoding = Extract<Encoding, { kind: "bitplane" }>;
export type TernaryEncoding = Extract<Encoding, { kind: "ternary" }>;
export type LutEncoding = BitplaneEncoding | TernaryEncoding;

/**
 * Group parameters of a bitplane matrix, (rows, groups) row-major, stored as f16.
 * zero-point: scales (rows*groups) = d, zeros = z; per-plane: scales (rows*groups*bits,
 * plane fastest) = s_p, zeros = the offset z.
 */
export interface BitplaneParams {
  readonly scales: Float32Array;
  readonly zeros: Float32Array;
}

/** Unpacked LUT matrix: stream codes (rowsPadded, colsPadded) and scale vectors per block. */
export interface LutUnpacked {
  readonly layout: MatrixLayout;
  readonly codes: Uint8Array;
  /** (rowsPadded, groups, vectors): the f16 scale vectors of each block, per row. */
  readonly scales: Float32Array;
  readonly vectors: number;
}

/** Row (within its tile of 16) whose indices byte j of an index vector holds. */
export function rowOfByte(j: number): number {
  return (j & 1) === 0 ? j >> 1 : 8 + (j >> 1);
}

export function isLutEncoding(e: Encoding): e is LutEncoding {
  return e.kind === "bitplane" || e.kind === "ternary";
}

/** Scale vectors per block: zero-point 2 (d, z), per-plane bits+1 (s_p.., z), ternary planes. */
export function scaleVectors(e: LutEncoding): number {
  if (e.kind === "ternary") return e.planes;
  return e.scales === "zero-point" ? 2 : e.bits + 1;
}

function packBlocks(
  e: LutEncoding,
  rows: number,
  cols: number,
  code: (r: number, c: number) => number,
  scale: (r: number, g: number, k: number) => number,
): Uint8Array {
  const l = matrixLayout(e, rows, cols);
  const B = l.planes;
  const G = e.group;
  const vectors = scaleVectors(e);
  const out = new Uint8Array(l.byteLength);
  const view = new DataView(out.buffer);
  const tiles = l.rowsPadded / ROW_TILE;
  const pad = (r: number, c: number) => (r < rows && c < cols ? code(r, c) : 0);
  for (let tile = 0; tile < tiles; tile++) {
    for (let g = 0; g < l.groups; g++) {
      const blk = (tile * l.groups + g) * l.blockBytes;
      for (let j = 0; j < ROW_TILE; j++) {
        const r = tile * ROW_TILE + rowOfByte(j);
        for (let i = 0; i < G / 8; i++) {
          const c0 = g * G + 8 * i;
          for (let p = 0; p < B; p++) {
            let lo = 0;
            let hi = 0;
            for (let b = 0; b < 4; b++) {
              lo |= ((pad(r, c0 + b) >> p) & 1) << b;
              hi |= ((pad(r, c0 + 4 + b) >> p) & 1) << b;
            }
            out[blk + 16 * (i * B + p) + j] = lo | (hi << 4);
          }
        }
        const rs = tile * ROW_TILE + j;
        for (let k = 0; k < vectors; k++) {
          const h = rs < rows ? scale(rs, g, k) : 0;
          view.setUint16(blk + l.indexBytes + 32 * k + 2 * j, h, true);
        }
      }
    }
  }
  return out;
}

/** codes: (rows, cols) integers in [0, 2^bits). */
export function packBitplane(
  e: BitplaneEncoding,
  codes: Uint8Array,
  params: BitplaneParams,
  rows: number,
  cols: number,
): Uint8Array {
  const l = matrixLayout(e, rows, cols);
  if (codes.length !== rows * cols) throw new FormatError(`packBitplane: ${codes.length} codes for a ${rows}x${cols} matrix`);
  const limit = 1 << e.bits;
  for (let i = 0; i < codes.length; i++) {
    if (codes[i] >= limit) throw new FormatError(`packBitplane: code ${codes[i]} at index ${i} does not fit ${e.bits} bits`);
  }
  const perRow = e.scales === "zero-point" ? 1 : e.bits;
  if (params.scales.length !== rows * l.groups * perRow || params.zeros.length !== rows * l.groups) {
    throw new FormatError(
      `packBitplane: expected ${rows * l.groups * perRow} scales and ${
        rows * l.groups
      } zeros for ${rows}x${l.groups} groups, got ${params.scales.length} and ${params.zeros.length}`,
    );
  }
  const scale = (r: number, g: number, k: number): number => {
    const rg = r * l.groups + g;
    if (k === perRow) return scaleToF16(params.zeros[rg], "bitplane zero");
    return scaleToF16(params.scales[rg * perRow + k], "bitplane scale");
  };
  return packBlocks(e, rows, cols, (r, c) => codes[r * cols + c], scale);
}

/** trits: (planes, rows, cols) in {-1, 0, 1}; alphas: (rows, groups, planes) stored as f16. */
export function packTernary(
  e: TernaryEncoding,
  trits: Int8Array,
  alphas: Float32Array,
  rows: number,
  cols: number,
): Uint8Array {
  const l = matrixLayout(e, rows, cols);
  const n = rows * cols;
  if (trits.length !== e.planes * n) {
    throw new FormatError(`packTernary: ${trits.length} trits, expected planes*rows*cols = ${e.planes * n}`);
  }
  for (let i = 0; i < trits.length; i++) {
    if (trits[i] < -1 || trits[i] > 1) throw new FormatError(`packTernary: trit ${trits[i]} at index ${i} is not -1, 0 or 1`);
  }
  if (alphas.length !== rows * l.groups * e.planes) {
    throw new FormatError(`packTernary: ${alphas.length} scales, expected rows*groups*planes = ${rows * l.groups * e.planes}`);
  }
  const code = (r: number, c: number): number => {
    let v = trits[r * cols + c] + 1;
    if (e.planes === 2) v |= (trits[n + r * cols + c] + 1) << 2;
    return v;
  };
  const scale = (r: number, g: number, k: number) => scaleToF16(alphas[(r * l.groups + g) * e.planes + k], "ternary scale");
  return packBlocks(e, rows, cols, code, scale);
}

/** Reads stream codes and scale vectors back from the packed layout. */
export function unpackLut(e: LutEncoding, bytes: Uint8Array, rows: number, cols: number): LutUnpacked {
  const l = matrixLayout(e, rows, cols);
  checkLength(bytes, l.byteLength, e.kind);
  const B = lutPlanes(e);
  const G = e.group;
  const vectors = scaleVectors(e);
  const view = new DataView(bytes.buffer, bytes.byteOffset, l.byteLength);
  const codes = new Uint8Array(l.rowsPadded * l.colsPadded);
  const scales = new Float32Array(l.rowsPadded * l.groups * vectors);
  for (let tile = 0; tile < l.rowsPadded / ROW_TILE; tile++) {
    for (let g = 0; g < l.groups; g++) {
      const blk = (tile * l.groups + g) * l.blockBytes;
      for (let j = 0; j < ROW_TILE; j++) {
        const r = tile * ROW_TILE + rowOfByte(j);
        for (let i = 0; i < G / 8; i++) {
          for (let p = 0; p < B; p++) {
            const byte = bytes[blk + 16 * (i * B + p) + j];
            for (let b = 0; b < 8; b++) {
              codes[r * l.colsPadded + g * G + 8 * i + b] |= ((byte >> b) & 1) << p;
            }
          }
        }
        const rs = tile * ROW_TILE + j;
        for (let k = 0; k < vectors; k++) {
          scales[(rs * l.groups + g) * vectors + k] = f16ToF32(view.getUint16(blk + l.indexBytes + 32 * k + 2 * j, true));
        }
      }
    }
  }
  return { layout: l, codes, scales, vectors };
}

/** Dequantised (rows, cols) f32 weights of a LUT-encoded matrix. */
export function dequantizeLut(e: LutEncoding, bytes: Uint8Array, rows: number, cols: number): Float32Array {
  const { layout: l, codes, scales, vectors } = unpackLut(e, bytes, rows, cols);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const q = codes[r * l.colsPadded + c];
      const s = (r * l.groups + Math.floor(c / e.group)) * vectors;
      let w: number;
      if (e.kind === "ternary") {
        w = scales[s] * ((q & 3) - 1);
        if (e.planes === 2) w += scales[s + 1] * ((q >> 2) - 1);
      } else if (e.scales === "zero-point") {
        w = scales[s] * (q - scales[s + 1]);
      } else {
        w = scales[s + e.bits];
        for (let p = 0; p < e.bits; p++) w += scales[s + p] * ((q >> p) & 1);
      }
      out[r * cols + c] = w;
    }
  }
  return out;
}
