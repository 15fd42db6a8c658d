/**
 * Packing of the LUT encodings (bitplane and ternary) into the order the WASM kernel streams
 * them (T-MAC, arXiv 2407.00088; layout version 2 in encoding.ts): column blocks of 2048
 * columns, 16-row tiles, per group the index vectors (plane pairs interleaved in adjacent
 * bytes, a lone plane with both 8-row halves interleaved) then the scale vectors (in the
 * kernel's row order). Both encodings reduce to a "stream code" of `planes` bits per weight:
 * bitplane: the code q itself; ternary: (t1+1) | (t2+1) << 2.
 */
import { FormatError } from "../errors.ts";
import { blockOffset, type Encoding, lutPlanes, type MatrixLayout, matrixLayout, ROW_TILE, scaleType } from "./encoding.ts";
import { bf16ToF32, checkLength, f16ToF32, scaleToBf16, scaleToF16 } from "./pack-f16.ts";

export type BitplaneEncoding = Extract<Encoding, { kind: "bitplane" }>;
export type TernaryEncoding = Extract<Encoding, { kind: "ternary" }>;
export type LutEncoding = BitplaneEncoding | TernaryEncoding;

/**
 * Group parameters of a bitplane matrix, (rows, groups) row-major. zero-point: scales
 * (rows*groups) = d with either zeros z (stored as the offset m = -d*z, computed from d as
 * stored) or offsets m directly (exact, e.g. a GGUF Q4_1 min); per-plane: scales
 * (rows*groups*bits, plane fastest) = s_p with offsets (or zeros, meaning the offset itself).
 */
export type BitplaneParams =
  | { readonly scales: Float32Array; readonly zeros: Float32Array }
  | { readonly scales: Float32Array; readonly offsets: Float32Array };

/** Unpacked LUT matrix: stream codes (rowsPadded, colsPadded) and scale vectors per block. */
export interface LutUnpacked {
  readonly layout: MatrixLayout;
  readonly codes: Uint8Array;
  /** (rowsPadded, groups, vectors): the scale vectors of each block, per row, as stored. */
  readonly scales: Float32Array;
  readonly vectors: number;
}

export function isLutEncoding(e: Encoding): e is LutEncoding {
  return e.kind === "bitplane" || e.kind === "ternary";
}

/** Scale vectors per block: zero-point 2 (d, m), per-plane bits+1 (s_p.., m), ternary planes. */
export function scaleVectors(e: LutEncoding): number {
  if (e.kind === "ternary") return e.planes;
  return e.scales === "zero-point" ? 2 : e.bits + 1;
}

/** Row of the tile held by value `q` of a scale vector (and i16 lane q of the kernel). */
export function rowOfScaleValue(q: number): number {
  return 8 * (q >> 3) + ((q & 7) >> 1) + 4 * (q & 1);
}

/**
 * Where row `j` (0..15) of a tile keeps plane `p`'s bits inside the index vectors of one quad
 * pair: [vector index within the pair's vectors, byte]. Pair units (p < planes & ~1) hold
 * 8 rows per vector, the lone plane both halves.
 */
export function indexByteOf(planes: number, j: number, p: number): [number, number] {
  const h = j >> 3;
  const r = j & 7;
  const at = 4 * (r & 3) + 2 * (r >> 2);
  if (p < (planes & ~1)) return [2 * (p >> 1) + h, at + (p & 1)];
  return [planes & ~1, at + h];
}

/** Scale bits in the encoding's storage type. */
function storeScale(e: LutEncoding, value: number, what: string): number {
  return scaleType(e) === "bf16" ? scaleToBf16(value, what) : scaleToF16(value, what);
}

/** The value a stored scale holds. */
export function loadScale(e: LutEncoding, bits: number): number {
  return scaleType(e) === "bf16" ? bf16ToF32(bits) : f16ToF32(bits);
}

/** Rounds a value as storing it as a scale of this encoding does. */
export function roundScale(e: LutEncoding, value: number): number {
  return loadScale(e, storeScale(e, value, "scale"));
}

/**
 * The offset a zero-point group stores for scale d and zero point z: m = -d*z with d as stored,
 * rounded as stored, so w = d*q + m equals d*(q - z) up to one rounding of m.
 */
export function offsetFromZero(e: LutEncoding, d: number, z: number): number {
  return roundScale(e, -roundScale(e, d) * z);
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
  const where = Array.from({ length: ROW_TILE }, (_, j) => Array.from({ length: B }, (_, p) => indexByteOf(B, j, p)));
  for (let tile = 0; tile < tiles; tile++) {
    for (let g = 0; g < l.groups; g++) {
      const blk = blockOffset(l, tile, g);
      for (let j = 0; j < ROW_TILE; j++) {
        const r = tile * ROW_TILE + j;
        for (let i = 0; i < G / 8; i++) {
          const c0 = g * G + 8 * i;
          for (let p = 0; p < B; p++) {
            let lo = 0;
            let hi = 0;
            for (let b = 0; b < 4; b++) {
              lo |= ((pad(r, c0 + b) >> p) & 1) << b;
              hi |= ((pad(r, c0 + 4 + b) >> p) & 1) << b;
            }
            const [v, byte] = where[j][p];
            out[blk + 16 * (i * B + v) + byte] = lo | (hi << 4);
          }
        }
      }
      for (let q = 0; q < ROW_TILE; q++) {
        const r = tile * ROW_TILE + rowOfScaleValue(q);
        for (let k = 0; k < vectors; k++) {
          view.setUint16(blk + l.indexBytes + 32 * k + 2 * q, r < rows ? scale(r, g, k) : 0, true);
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
  const second = "offsets" in params ? params.offsets : params.zeros;
  if (params.scales.length !== rows * l.groups * perRow || second.length !== rows * l.groups) {
    throw new FormatError(
      `packBitplane: expected ${rows * l.groups * perRow} scales and ${
        rows * l.groups
      } ${"offsets" in params ? "offsets" : "zeros"} for ${rows}x${l.groups} groups, got ${params.scales.length} and ${second.length}`,
    );
  }
  const scale = (r: number, g: number, k: number): number => {
    const rg = r * l.groups + g;
    if (k < perRow) return storeScale(e, params.scales[rg * perRow + k], "bitplane scale");
    if ("offsets" in params || e.scales === "per-plane") return storeScale(e, second[rg], "bitplane offset");
    return storeScale(e, offsetFromZero(e, params.scales[rg], second[rg]), "bitplane offset");
  };
  return packBlocks(e, rows, cols, (r, c) => codes[r * cols + c], scale);
}

/** trits: (planes, rows, cols) in {-1, 0, 1}; alphas: (rows, groups, planes). */
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
  const scale = (r: number, g: number, k: number) => storeScale(e, alphas[(r * l.groups + g) * e.planes + k], "ternary scale");
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
  const where = Array.from({ length: ROW_TILE }, (_, j) => Array.from({ length: B }, (_, p) => indexByteOf(B, j, p)));
  for (let tile = 0; tile < l.rowsPadded / ROW_TILE; tile++) {
    for (let g = 0; g < l.groups; g++) {
      const blk = blockOffset(l, tile, g);
      for (let j = 0; j < ROW_TILE; j++) {
        const r = tile * ROW_TILE + j;
        for (let i = 0; i < G / 8; i++) {
          for (let p = 0; p < B; p++) {
            const [v, at] = where[j][p];
            const byte = bytes[blk + 16 * (i * B + v) + at];
            for (let b = 0; b < 8; b++) {
              codes[r * l.colsPadded + g * G + 8 * i + b] |= ((byte >> b) & 1) << p;
            }
          }
        }
      }
      for (let q = 0; q < ROW_TILE; q++) {
        const r = tile * ROW_TILE + rowOfScaleValue(q);
        for (let k = 0; k < vectors; k++) {
          scales[(r * l.groups + g) * vectors + k] = loadScale(e, view.getUint16(blk + l.indexBytes + 32 * k + 2 * q, true));
        }
      }
    }
  }
  return { layout: l, codes, scales, vectors };
}

/** The weight of stream code `q` in a group whose scale vectors' values start at `scales[s]`. */
function lutWeight(e: LutEncoding, scales: ArrayLike<number>, s: number, q: number): number {
  if (e.kind === "ternary") {
    const w = scales[s] * ((q & 3) - 1);
    return e.planes === 2 ? w + scales[s + 1] * ((q >> 2) - 1) : w;
  }
  if (e.scales === "zero-point") return Math.fround(scales[s] * q) + scales[s + 1];
  let w = scales[s + e.bits];
  for (let p = 0; p < e.bits; p++) w += scales[s + p] * ((q >> p) & 1);
  return w;
}

/** Dequantised (rows, cols) f32 weights of a LUT-encoded matrix. */
export function dequantizeLut(e: LutEncoding, bytes: Uint8Array, rows: number, cols: number): Float32Array {
  const { layout: l, codes, scales, vectors } = unpackLut(e, bytes, rows, cols);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      out[r * cols + c] = lutWeight(e, scales, (r * l.groups + Math.floor(c / e.group)) * vectors, codes[r * l.colsPadded + c]);
    }
  }
  return out;
}

/**
 * Row `r` of a LUT-encoded matrix, dequantised straight from the packed bytes (equal to that row
 * of dequantizeLut): the embedding lookup of a tied table stored in the head's LUT encoding
 * reads one row per token, not the whole matrix. `bytes` holds the whole matrix.
 */
export function lutRow(e: LutEncoding, bytes: Uint8Array, rows: number, cols: number, r: number): Float32Array {
  const l = matrixLayout(e, rows, cols);
  checkLength(bytes, l.byteLength, e.kind);
  if (!Number.isInteger(r) || r < 0 || r >= rows) throw new FormatError(`lutRow: row ${r} is outside the ${rows} rows of a ${rows}x${cols} ${e.kind} matrix`);
  const B = l.planes;
  const G = e.group;
  const vectors = scaleVectors(e);
  const tile = Math.floor(r / ROW_TILE);
  const j = r % ROW_TILE;
  // The scale-vector value holding row j (the inverse of rowOfScaleValue).
  const q = 8 * (j >> 3) + 2 * (j & 3) + ((j & 7) >> 2);
  const where = Array.from({ length: B }, (_, p) => indexByteOf(B, j, p));
  const view = new DataView(bytes.buffer, bytes.byteOffset, l.byteLength);
  const out = new Float32Array(cols);
  const codes = new Uint8Array(G);
  const scales = new Float32Array(vectors);
  for (let g = 0; g < l.groups; g++) {
    const blk = blockOffset(l, tile, g);
    codes.fill(0);
    for (let i = 0; i < G / 8; i++) {
      for (let p = 0; p < B; p++) {
        const byte = bytes[blk + 16 * (i * B + where[p][0]) + where[p][1]];
        for (let b = 0; b < 8; b++) codes[8 * i + b] |= ((byte >> b) & 1) << p;
      }
    }
    for (let k = 0; k < vectors; k++) scales[k] = loadScale(e, view.getUint16(blk + l.indexBytes + 32 * k + 2 * q, true));
    for (let c = g * G; c < Math.min(cols, (g + 1) * G); c++) out[c] = lutWeight(e, scales, 0, codes[c - g * G]);
  }
  return out;
}
