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
 * - bitplane{bits b, group G, scales} and ternary{group G, planes}: rows padded to a tile of
 *   16 and K to the group. For each row tile (16 rows), for each group, one block:
 *     indices: for each pair of 4-column quads (G/8 pairs), for each plane p, 16 bytes; byte
 *       2j (2j+1) holds row j's (row 8+j's) 4-bit index for the even quad in its low nibble
 *       and for the odd quad in its high nibble (index bit i = bit p of the code of column
 *       4*quad+i);
 *     scales (f16, 16 per vector, rows in order): zero-point: 16 d then 16 z (w = d*(q - z));
 *       per-plane: b planes of 16 s_p then 16 z (w = sum_p s_p*bit_p(q) + z);
 *       ternary: 16 alpha per trit-plane (w = sum_k alpha_k * t_k, t in {-1,0,1}).
 *   A trit t is stored as the 2-bit code t+1 (two bit-planes), so ternary with 1 or 2
 *   trit-planes streams 2 or 4 bit-planes through the same LUT kernel.
 */
import { FormatError } from "../errors.ts";

export type Encoding =
  | { readonly kind: "f32" }
  | { readonly kind: "f16" }
  /** int8 per group of `group` weights along a row, one f16 scale per group (symmetric). */
  | { readonly kind: "q8"; readonly group: number }
  /**
   * b one-bit planes per weight (T-MAC). `scales`: "zero-point" = one f16 scale d and one f16
   * zero point z per group (w = d*(q-z)); "per-plane" = one f16 scale per plane plus one f16
   * offset z per group (ELUTQ/HLQ: w = sum_p s_p*bit_p(q) + z).
   */
  | {
    readonly kind: "bitplane";
    readonly bits: 1 | 2 | 3 | 4;
    readonly group: 32 | 64 | 128;
    readonly scales: "zero-point" | "per-plane";
  }
  /** weights in {-1, 0, +1} with one f16 scale per group per trit-plane (BitNet absmean; PTQTP uses two). */
  | { readonly kind: "ternary"; readonly group: 32 | 64 | 128; readonly planes: 1 | 2 };

export const ENCODING_KINDS = ["f32", "f16", "q8", "bitplane", "ternary"] as const;
export const LUT_GROUPS = [32, 64, 128] as const;
export const BITPLANE_BITS = [1, 2, 3, 4] as const;
/** Rows per tile of the LUT layouts: one i8x16.swizzle looks up 16 rows. */
export const ROW_TILE = 16;
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
  /** bytes per (row tile, group) block; a row tile is `groups` consecutive blocks. */
  readonly blockBytes: number;
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
        fail(`bitplane encoding ${show}: group must be 32, 64 or 128`);
      }
      if (o.scales !== "zero-point" && o.scales !== "per-plane") {
        fail(`bitplane encoding ${show}: scales must be "zero-point" or "per-plane"`);
      }
      return {
        kind: "bitplane",
        bits: o.bits as 1 | 2 | 3 | 4,
        group: o.group as 32 | 64 | 128,
        scales: o.scales,
      };
    }
    case "ternary": {
      if (!(LUT_GROUPS as readonly unknown[]).includes(o.group)) {
        fail(`ternary encoding ${show}: group must be 32, 64 or 128`);
      }
      if (o.planes !== 1 && o.planes !== 2) fail(`ternary encoding ${show}: planes must be 1 or 2`);
      return { kind: "ternary", group: o.group as 32 | 64 | 128, planes: o.planes };
    }
    default:
      fail(`unknown tensor encoding kind ${JSON.stringify(o.kind)}; supported: ${ENCODING_KINDS.join(", ")}`);
  }
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
      return `q${e.bits}g${e.group}${e.scales === "zero-point" ? "zp" : "pp"}`;
    case "ternary":
      return `t${e.planes}g${e.group}`;
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
  const none = { indexBytes: 0, scaleBytes: 0, blockBytes: 0, scaleOffset: 0, planes: 0 };
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
      const indexBytes = 2 * planes * e.group; // G/8 quad pairs x planes x 16 bytes
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
        scaleOffset: 0,
        byteLength: (rowsPadded / ROW_TILE) * groups * blockBytes,
      };
    }
  }
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
