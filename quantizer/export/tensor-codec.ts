/**
 * Encodes one tensor in a ggml type and says how faithful the result is. A source whose
 * storage already lies on the target's grid is transcoded block by block (blocks/*: crumb
 * q8 groups → Q8_0, crumb zero-point groups → Q4_1, ternary groups → Q4_0 or TQ2_0, a GGUF
 * block type read back → the same type); anything else, and any block that does not fit,
 * is dequantised and rounded to nearest as llama-quantize does for that type. The written
 * bytes are then decoded again and compared with the source values, so the report (exact,
 * grid kept with f16-rounded offsets, or requantised, with the largest error) describes
 * the file, not the intent. Layouts: ggml/src/ggml-common.h; GGUF-EXPORT.md.
 */
import { InvalidArgumentError } from "../../runtime/errors.ts";
import { decodeBf16, decodeF16, decodeF32, decodeQ4_0, decodeQ8_0, encodeFloat, encodeQ4_0, encodeQ8_0 } from "../../runtime/import/dtypes.ts";
import { checkBlocks } from "./blocks/common.ts";
import { decodeQ2_K, quantizeQ2_K } from "./blocks/q2-k.ts";
import { decodeQ4_1, Q4_1_BYTES, quantizeQ4_1, transcodeQ4_1Block } from "./blocks/q4-1.ts";
import { decodeQ6_K, quantizeQ6_K } from "./blocks/q6-k.ts";
import { QK, transcodeQ4_0Block, transcodeQ8_0Block } from "./blocks/symmetric-grid.ts";
import { decodeTq2_0, quantizeTq2_0, transcodeTq2_0Ternary } from "./blocks/tq2-0.ts";

export const GGUF_EXPORT_TYPES = ["F32", "F16", "BF16", "Q8_0", "Q6_K", "Q4_1", "Q4_0", "TQ2_0", "Q2_K"] as const;
export type GgufExportType = typeof GGUF_EXPORT_TYPES[number];

interface Codec {
  readonly block: number;
  readonly bytes: number;
  quantize(x: Float32Array): Uint8Array;
  decode(bytes: Uint8Array, n: number): Float32Array;
}

function encodeF16(x: Float32Array): Uint8Array {
  for (const v of x) {
    if (Math.abs(v) > 65504) {
      throw new InvalidArgumentError("type", `a weight of ${v} does not fit F16 (|w| <= 65504); export with --type BF16 or F32`);
    }
  }
  return encodeFloat(x, "F16");
}

export const CODECS: Readonly<Record<GgufExportType, Codec>> = {
  F32: { block: 1, bytes: 4, quantize: (x) => encodeFloat(x, "F32"), decode: decodeF32 },
  F16: { block: 1, bytes: 2, quantize: encodeF16, decode: decodeF16 },
  BF16: { block: 1, bytes: 2, quantize: (x) => encodeFloat(x, "BF16"), decode: decodeBf16 },
  Q8_0: { block: 32, bytes: 34, quantize: encodeQ8_0, decode: decodeQ8_0 },
  Q6_K: { block: 256, bytes: 210, quantize: quantizeQ6_K, decode: decodeQ6_K },
  Q4_1: { block: 32, bytes: Q4_1_BYTES, quantize: quantizeQ4_1, decode: decodeQ4_1 },
  Q4_0: { block: 32, bytes: 18, quantize: encodeQ4_0, decode: decodeQ4_0 },
  TQ2_0: { block: 256, bytes: 66, quantize: quantizeTq2_0, decode: decodeTq2_0 },
  Q2_K: { block: 256, bytes: 84, quantize: quantizeQ2_K, decode: decodeQ2_K },
};

export function isExportType(value: string): value is GgufExportType {
  return (GGUF_EXPORT_TYPES as readonly string[]).includes(value);
}

/** Storage types (crumb encoding names or ggml type names) whose values lie on a grid of at most 16 levels per 32. */
const ZERO_POINT = /^q[1-4]g(\d+)zp$/;
const Q8_GROUPS = /^q8g(\d+)$/;
const TERNARY = /^t1g(\d+)$/;

const whole32 = (match: RegExpExecArray | null) => match !== null && Number(match[1]) % 32 === 0;

/** Block transcoder for (source storage, target type), or undefined when only rounding applies. */
function blockTranscoder(dtype: string, type: GgufExportType): ((v: Float32Array, out: Uint8Array, at: number) => number | false) | undefined {
  const q8 = whole32(Q8_GROUPS.exec(dtype)) || dtype === "Q8_0";
  const ternary = whole32(TERNARY.exec(dtype));
  const grid16 = whole32(ZERO_POINT.exec(dtype)) || ternary || dtype === "Q4_0" || dtype === "Q4_1";
  const exact = (ok: boolean) => (ok ? 0 : false);
  // Symmetric grids (q8, ternary, Q4_0) fit Q8_0; zero-point grids do not, so they are rounded.
  if (type === "Q8_0" && (q8 || ternary || dtype === "Q4_0")) return (v, out, at) => exact(transcodeQ8_0Block(v, out, at));
  if (type === "Q4_0" && (ternary || dtype === "Q4_0")) return (v, out, at) => exact(transcodeQ4_0Block(v, out, at));
  if (type === "Q4_1" && grid16) return transcodeQ4_1Block;
  return undefined;
}

export interface EncodeResult {
  readonly bytes: Uint8Array;
  /** How the blocks were made: rounded, transcoded onto the source's grid, or ternary trits kept with a block scale. */
  readonly method: "round-to-nearest" | "grid" | "trits";
  /** Blocks written on the source's own grid, and how many of the tensor's blocks that is. */
  readonly gridBlocks: number;
  readonly blocks: number;
  /** Values the file decodes to bit-exactly, of all values. */
  readonly exactValues: number;
  readonly values: number;
  /** Largest |decoded - source|, and rms(decoded - source) / rms(source). */
  readonly maxError: number;
  readonly relRmsError: number;
}

/** Encodes `x` (the source's dequantised values, stored as `dtype`) as `type` and measures the result. */
export function encodeTensor(x: Float32Array, dtype: string, type: GgufExportType): EncodeResult {
  const codec = CODECS[type];
  checkBlocks(x.length, codec.block, type);
  const blocks = x.length / codec.block;
  let bytes: Uint8Array;
  let gridBlocks = 0;
  let method: EncodeResult["method"] = "round-to-nearest";
  const transcode = blockTranscoder(dtype, type);
  if (type === "TQ2_0" && whole32(TERNARY.exec(dtype))) {
    bytes = transcodeTq2_0Ternary(x);
    gridBlocks = blocks;
    method = "trits";
  } else if (transcode !== undefined) {
    method = "grid";
    bytes = new Uint8Array(blocks * codec.bytes);
    for (let b = 0; b < blocks; b++) {
      const v = x.subarray(b * QK, (b + 1) * QK);
      if (transcode(v, bytes, b * codec.bytes) !== false) gridBlocks++;
      else bytes.set(codec.quantize(v), b * codec.bytes);
    }
  } else {
    bytes = codec.quantize(x);
  }
  return { bytes, method, gridBlocks, blocks, values: x.length, ...compare(x, bytes, codec) };
}

/** Decodes the written bytes in chunks and compares them with the source. */
function compare(x: Float32Array, bytes: Uint8Array, codec: Codec): { exactValues: number; maxError: number; relRmsError: number } {
  const chunk = Math.max(codec.block, Math.floor(65536 / codec.block) * codec.block);
  let exactValues = 0;
  let maxError = 0;
  let errSq = 0;
  let refSq = 0;
  for (let start = 0; start < x.length; start += chunk) {
    const n = Math.min(chunk, x.length - start);
    const at = (start / codec.block) * codec.bytes;
    const decoded = codec.decode(bytes.subarray(at, at + (n / codec.block) * codec.bytes), n);
    for (let i = 0; i < n; i++) {
      const e = Math.abs(decoded[i]! - x[start + i]!);
      if (e === 0) exactValues++;
      maxError = Math.max(maxError, e);
      errSq += e * e;
      refSq += x[start + i]! * x[start + i]!;
    }
  }
  return { exactValues, maxError, relRmsError: refSq === 0 ? (errSq === 0 ? 0 : Infinity) : Math.sqrt(errSq / refSq) };
}

/** What the export did to one tensor, in a line for stderr. */
export function describeEncoding(name: string, dtype: string, type: GgufExportType, r: EncodeResult, note?: string): string {
  const head = `${name} ${dtype} -> ${type}`;
  const tail = note === undefined ? "" : ` (${note})`;
  const allOnGrid = r.method !== "round-to-nearest" && r.gridBlocks === r.blocks;
  if (r.exactValues === r.values) return `${head}: exact${allOnGrid ? " (transcoded)" : ""}${tail}`;
  const moved = `${r.values - r.exactValues} of ${r.values} values moved`;
  const err = `max |dw| ${r.maxError.toExponential(2)}, rms dw/rms w ${r.relRmsError.toExponential(2)}`;
  if (type === "F32" || type === "F16" || type === "BF16") return `${head}: rounded to ${type} (${err})${tail}`;
  if (allOnGrid && r.method === "trits") {
    return `${head}: trits kept, each 256-block's groups share one scale (their least-squares mean): ${moved} (${err})${tail}`;
  }
  if (allOnGrid) return `${head}: grid kept (step and codes), ${moved} by the f16 rounding of the block offsets (${err})${tail}`;
  const mixed = r.gridBlocks > 0 ? `; ${r.gridBlocks} of ${r.blocks} blocks kept their grid` : "";
  return `${head}: requantised by round-to-nearest${mixed} (${err})${tail}`;
}
