/**
 * Dequantisation of every ggml tensor type crumb imports (GGUF spec ggml/docs/gguf.md; block
 * layouts ggml-common.h): the float types, the 32-weight legacy blocks, the K super-blocks,
 * the i-quants and the ternary types, each to fp32 exactly as ggml's CPU dequantize_row_*
 * computes it (ggml-block.ts). Other types are refused with the list of these.
 */
import { UnsupportedModelError } from "../../runtime/errors.ts";
import { type BlockFormat, decodeBlocks } from "./ggml-block.ts";
import { I_FORMATS } from "./ggml-iquants.ts";
import { K_FORMATS } from "./ggml-kquants.ts";
import { LEGACY_FORMATS } from "./ggml-legacy.ts";
import { TERNARY_FORMATS } from "./ggml-ternary.ts";
import { decodeBf16, decodeF16, decodeF32, decodeF64 } from "./dtypes.ts";

const BLOCK_FORMATS: ReadonlyMap<string, BlockFormat> = new Map(
  [...LEGACY_FORMATS, ...K_FORMATS, ...I_FORMATS, ...TERNARY_FORMATS].map((f) => [f.name, f]),
);

const FLOAT_DECODERS: Readonly<Record<string, (bytes: Uint8Array, n: number) => Float32Array>> = {
  F32: decodeF32,
  F16: decodeF16,
  BF16: decodeBf16,
  F64: decodeF64,
};

/** The ggml types crumb dequantises, in ggml's enum order. */
export const DEQUANTIZABLE: readonly string[] = [
  "F32", "F16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K",
  "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "F64", "IQ1_M", "BF16",
  "TQ1_0", "TQ2_0",
];

/** The block format of a quantised type, or undefined for float and unknown types. */
export function blockFormat(type: string): BlockFormat | undefined {
  return BLOCK_FORMATS.get(type);
}

export function isDequantizable(type: string): boolean {
  return DEQUANTIZABLE.includes(type);
}

/**
 * fp32 values of `numel` elements of `type` stored in `bytes` (a whole number of blocks; the
 * GGUF reader checks row lengths). `what` names the tensor in the refusal of other types.
 */
export function dequantizeGgml(type: string, bytes: Uint8Array, numel: number, what = "tensor"): Float32Array {
  const float = FLOAT_DECODERS[type];
  if (float !== undefined) return float(bytes, numel);
  const format = BLOCK_FORMATS.get(type);
  if (format === undefined) {
    throw new UnsupportedModelError(
      `${what} is ${type}, which crumb cannot dequantise; re-quantise the model with llama-quantize to one of the supported types`,
      DEQUANTIZABLE,
    );
  }
  return decodeBlocks(format, bytes, numel);
}
