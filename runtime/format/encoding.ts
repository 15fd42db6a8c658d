/**
 * Tensor encodings of the packed checkpoint: the descriptor stored in the tensor table and
 * the native byte layout the WASM kernels stream (T-MAC, arXiv 2407.00088; per-plane
 * scales from ELUTQ's HLQ; two trit-planes from PTQTP, arXiv 2509.16989).
 * `packedByteLength` is the single source of truth for how many bytes a tensor occupies;
 * `matrixLayout` gives the offsets the packers, the kernels and the wrappers share.
 *
 * Layouts (all little-endian; f16 = IEEE binary16):
 * - f32 / f16: row-major, no padding (1-D or 2-D).
 * - q8{group}: int8 row-major with each row padded to K' = ceil(K/group)*group (pad 0),
 *   then, from the next 64-byte boundary, one f16 scale per (row, group), row-major.
 *   w = scale * q.
 * - bitplane{bits b, group G, scales, scaleType} and ternary{group G, planes, scaleType}
 *   (layout version 2, kernels-wasm/src/gemm.rs): rows padded to a tile of 16, K to the group.
 *   Column blocks of COL_BLOCK (2048) columns, each holding every row tile; within a block,
 *   tile by tile, one block per group of the tile: index vectors, then scale vectors.
 *     Stream planes: bitplane b; ternary 2 per trit-plane (a trit t is the 2-bit code t+1).
 *     Units: plane pairs (2u, 2u+1), then a lone plane when the count is odd.
 *     Index vectors: for each pair of 4-column quads (2i, 2i+1) (G/8 pairs), unit by unit:
 *       a pair unit is two vectors (half h = rows 8h..8h+7 of the tile) whose byte 4j+2s+p
 *       holds row 8h+j+4s, plane 2u+p; a lone unit is one vector whose byte 4j+2s+e holds
 *       row 8e+j+4s. The low nibble is the row's bits of quad 2i (bit k = column 8i+k), the
 *       high nibble those of quad 2i+1 (column 8i+4+k).
 *     Scale vectors (16 values each, f16 or bf16 by `scaleType`): value 8h+2j+s is row
 *       8h+j+4s (the order of the kernel's accumulator lanes). zero-point: d then m
 *       (w = d*q + m, m = -d*z); per-plane: s_0..s_{b-1} then m (w = sum_p s_p*bit_p(q) + m);
 *       ternary: alpha per trit-plane (w = sum_k alpha_k * t_k).
 *   Version 1 files used another LUT layout (16-row tiles, plane-major vectors, d and z);
 *   readers refuse those tensors (re-quantize).
 */
import { FormatError } from "../errors.ts";

export type Encoding =
  | { readonly kind: "f32" }
  | { readonly kind: "f16" }
  /** int8 per group of `group` weights along a row, one f16 scale per group (symmetric). */
  | { readonly kind: "q8"; readonly group: number }
  /**
   * b one-bit planes per weight (T-MAC). `scales`: "zero-point" = per group a scale d and an
   * offset m = -d*z, the zero point times the scale (w = d*(q-z) = d*q + m); "per-plane" = one
   * scale per plane plus an offset m per group (ELUTQ/HLQ: w = sum_p s_p*bit_p(q) + m).
   * Scales are f16, or bf16 with `scaleType: "bf16"` (cheaper to widen on ARM64).
   */
  | {
    readonly kind: "bitplane";
    readonly bits: 1 | 2 | 3 | 4;
    readonly group: LutGroupSize;
    readonly scales: "zero-point" | "per-plane";
    readonly scaleType?: ScaleType;
  }
  /** weights in {-1, 0, +1} with one scale per group per trit-plane (BitNet absmean; PTQTP uses two). */
  | { readonly kind: "ternary"; readonly group: LutGroupSize; readonly planes: 1 | 2; readonly scaleType?: ScaleType };

/** Storage of the LUT encodings' group scales (absent: f16). */
export type ScaleType = "f16" | "bf16";
export const SCALE_TYPES = ["f16", "bf16"] as const;

export const ENCODING_KINDS = ["f32", "f16", "q8", "bitplane", "ternary"] as const;
export const LUT_GROUPS = [32, 64, 128, 256] as const;
/** Weights per group of the LUT encodings (256 matches ggml's TQ2_0/K-quant super-blocks). */
export type LutGroupSize = typeof LUT_GROUPS[number];
export const BITPLANE_BITS = [1, 2, 3, 4] as const;
/** Rows per tile of the LUT layouts (two 8-row halves). */
export const ROW_TILE = 16;
/** Columns per column block of the LUT layouts (tables of one block stay in L1). */
export const COL_BLOCK = 2048;
/** Every tensor's data starts on this boundary in the checkpoint and in WASM memory. */
export const TENSOR_ALIGN = 64;

/** Offsets and sizes of a packed 2-D matrix; shared by packers, kernels' wrappers and tests. */
export interface MatrixLayout {
  readonly rows: number;
  readonly cols: number;
  /** rows rounded up to ROW_TILE (LUT encodings) or rows. */
  readonly rowsPadded: number;
  /** cols rounded up to the group (grouped encodings) or cols. */
  readonly colsPadded: number;
  /** group size along a row (1 for f32/f16). */
  readonly group: number;
  readonly groups: number;
  /** bit-planes streamed by the LUT kernel (0 for non-LUT encodings). */
  readonly planes: number;
  /** bytes of indices per (row tile, group) block, then `scaleBytes` of f16 scales. */
  readonly indexBytes: number;
  readonly scaleBytes: number;
  /** bytes per (row tile, group) block (LUT encodings; see blockOffset). */
  readonly blockBytes: number;
  /** LUT encodings: groups per column block (COL_BLOCK / group); 0 otherwise. */
  readonly blockGroups: number;
  /** q8: byte offset of the f16 scale region. */
  readonly scaleOffset: number;
  readonly byteLength: number;
}

function fail(message: string): never {
  throw new FormatError(message);
}

/** Checks an untrusted descriptor (from a file or a CLI) and returns it typed. */
export function validateEncoding(e: unknown): Encoding {
  if (typeof e !== "object" || e === null || Array.isArray(e)) {
    fail(`tensor encoding ${JSON.stringify(e)} is not an object; expected {kind: ${ENCODING_KINDS.join("|")}, ...}`);
  }
  const o = e as Record<string, unknown>;
  const show = JSON.stringify(e);
  switch (o.kind) {
    case "f32":
      return { kind: "f32" };
    case "f16":
      return { kind: "f16" };
    case "q8": {
      const g = o.group;
      if (typeof g !== "number" || !Number.isInteger(g) || g < 16 || g > 65536 || g % 16 !== 0) {
        fail(`q8 encoding ${show}: group must be a multiple of 16 in [16, 65536]`);
      }
      return { kind: "q8", group: g };
    }
    case "bitplane": {
      if (!(BITPLANE_BITS as readonly unknown[]).includes(o.bits)) {
        fail(`bitplane encoding ${show}: bits must be 1, 2, 3 or 4`);
      }
      if (!(LUT_GROUPS as readonly unknown[]).includes(o.group)) {
        fail(`bitplane encoding ${show}: group must be 32, 64, 128 or 256`);
      }
      if (o.scales !== "zero-point" && o.scales !== "per-plane") {
        fail(`bitplane encoding ${show}: scales must be "zero-point" or "per-plane"`);
      }
      return {
        kind: "bitplane",
        bits: o.bits as 1 | 2 | 3 | 4,
        group: o.group as LutGroupSize,
        scales: o.scales,
        ...scaleTypeField(o.scaleType, show),
      };
    }
    case "ternary": {
      if (!(LUT_GROUPS as readonly unknown[]).includes(o.group)) {
        fail(`ternary encoding ${show}: group must be 32, 64, 128 or 256`);
      }
      if (o.planes !== 1 && o.planes !== 2) fail(`ternary encoding ${show}: planes must be 1 or 2`);
      return { kind: "ternary", group: o.group as LutGroupSize, planes: o.planes, ...scaleTypeField(o.scaleType, show) };
    }
    default:
      fail(`unknown tensor encoding kind ${JSON.stringify(o.kind)}; supported: ${ENCODING_KINDS.join(", ")}`);
  }
}

/** The optional scaleType field: absent or "f16" reads as f16 (kept absent), "bf16" kept. */
function scaleTypeField(v: unknown, show: string): { scaleType?: "bf16" } {
  if (v === undefined || v === "f16") return {};
  if (v === "bf16") return { scaleType: "bf16" };
  fail(`encoding ${show}: scaleType must be "f16" or "bf16"`);
}

/** The scale storage of a LUT encoding. */
export function scaleType(e: Encoding): ScaleType {
  return "scaleType" in e && e.scaleType === "bf16" ? "bf16" : "f16";
}

/** Short name for logs and benchmarks: f32, f16, q8g32, q2g64zp, q3g128pp, t1g64, t2g128. */
export function encodingName(e: Encoding): string {
  switch (e.kind) {
    case "f32":
    case "f16":
      return e.kind;
    case "q8":
      return `q8g${e.group}`;
    case "bitplane":
      return `q${e.bits}g${e.group}${e.scales === "zero-point" ? "zp" : "pp"}${scaleType(e) === "bf16" ? "b" : ""}`;
    case "ternary":
      return `t${e.planes}g${e.group}${scaleType(e) === "bf16" ? "b" : ""}`;
  }
}

/** Bit-planes the LUT kernel streams for this encoding (0 when not a LUT encoding). */
export function lutPlanes(e: Encoding): number {
  if (e.kind === "bitplane") return e.bits;
  if (e.kind === "ternary") return 2 * e.planes;
  return 0;
}

function checkDims(e: Encoding, rows: number, cols: number): void {
  for (const [name, v] of [["rows", rows], ["cols", cols]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) {
      fail(`${encodingName(e)} matrix: ${name} ${v} is not a positive integer`);
    }
  }
}

/** Layout of a 2-D (rows, cols) tensor in encoding `e`. */
export function matrixLayout(e: Encoding, rows: number, cols: number): MatrixLayout {
  checkDims(e, rows, cols);
  const none = { indexBytes: 0, scaleBytes: 0, blockBytes: 0, blockGroups: 0, scaleOffset: 0, planes: 0 };
  switch (e.kind) {
    case "f32":
    case "f16": {
      const size = e.kind === "f32" ? 4 : 2;
      return { rows, cols, rowsPadded: rows, colsPadded: cols, group: 1, groups: cols, ...none, byteLength: rows * cols * size };
    }
    case "q8": {
      const groups = Math.ceil(cols / e.group);
      const colsPadded = groups * e.group;
      const scaleOffset = alignTo(rows * colsPadded, TENSOR_ALIGN);
      return {
        rows,
        cols,
        rowsPadded: rows,
        colsPadded,
        group: e.group,
        groups,
        ...none,
        scaleOffset,
        byteLength: scaleOffset + 2 * rows * groups,
      };
    }
    case "bitplane":
    case "ternary": {
      const planes = lutPlanes(e);
      const groups = Math.ceil(cols / e.group);
      const rowsPadded = Math.ceil(rows / ROW_TILE) * ROW_TILE;
      const indexBytes = 2 * planes * e.group; // G/8 quad pairs x planes x 16 bytes (16 rows x 8 columns x 1 bit)
      const scaleBytes = 2 * ROW_TILE * (e.kind === "ternary" ? e.planes : e.scales === "zero-point" ? 2 : e.bits + 1);
      const blockBytes = indexBytes + scaleBytes;
      return {
        rows,
        cols,
        rowsPadded,
        colsPadded: groups * e.group,
        group: e.group,
        groups,
        planes,
        indexBytes,
        scaleBytes,
        blockBytes,
        blockGroups: COL_BLOCK / e.group,
        scaleOffset: 0,
        byteLength: (rowsPadded / ROW_TILE) * groups * blockBytes,
      };
    }
  }
}

/**
 * Byte offset of the (row tile, group) block of a LUT matrix: column blocks of `blockGroups`
 * groups, each holding every tile, tiles in order, groups in order within a tile.
 */
export function blockOffset(l: MatrixLayout, tile: number, group: number): number {
  const g0 = Math.floor(group / l.blockGroups) * l.blockGroups;
  const inBlock = Math.min(l.blockGroups, l.groups - g0);
  const tiles = l.rowsPadded / ROW_TILE;
  return (g0 * tiles + tile * inBlock + (group - g0)) * l.blockBytes;
}

/**
 * Bytes a tensor of `shape` occupies in encoding `e`: 2-D (rows, cols) for every encoding,
 * 1-D only for f32/f16. Throws FormatError for other ranks or non-positive dimensions.
 */
export function packedByteLength(e: Encoding, shape: readonly number[]): number {
  if (shape.length === 1) {
    if (e.kind !== "f32" && e.kind !== "f16") {
      fail(`${encodingName(e)} needs a 2-D (rows, cols) shape, got [${shape.join(", ")}]; store 1-D tensors as f32 or f16`);
    }
    const n = shape[0];
    if (!Number.isSafeInteger(n) || n < 1) fail(`${encodingName(e)} tensor: length ${n} is not a positive integer`);
    return n * (e.kind === "f32" ? 4 : 2);
  }
  if (shape.length !== 2) {
    fail(`${encodingName(e)} tensor of shape [${shape.join(", ")}]: only 1-D (f32/f16) and 2-D shapes can be packed`);
  }
  return matrixLayout(e, shape[0], shape[1]).byteLength;
}

export function alignTo(value: number, align: number): number {
  return Math.ceil(value / align) * align;
}
