/**
 * Which ggml type each tensor of an export gets. With `--type` the rules are
 * llama-quantize's (src/llama-quant.cpp, llama_tensor_get_type): every matrix gets the type,
 * the output head (or the token embedding when the head is tied to it) gets Q6_K unless the
 * type is Q8_0 or a float type, untied token embeddings get the type (for TQ2_0 llama-quantize
 * uses Q4_K, which crumb does not write: Q6_K instead), and a row length the block does not
 * divide falls back as llama-quantize's tensor_type_fallback does (TQ2_0/Q2_K → Q4_0,
 * Q6_K → Q8_0, 32-blocks → F16). Without `--type`, each tensor keeps what its source stores
 * where a GGUF type holds it (DEFAULT_TYPES), and the head is Q6_K when any matrix is below
 * 6 bits, as in a llama-quantize low-bit file. 1-D tensors (norms, biases) are always F32.
 */
import { CODECS, type GgufExportType } from "./tensor-codec.ts";

export type TensorRole = "vector" | "embedding" | "output" | "matrix";

export interface TypeOptions {
  /** Every matrix's type (llama-quantize's ftype); undefined: keep each source's storage. */
  readonly type?: GgufExportType;
  /** The output head (or tied embedding); default Q6_K for low-bit exports. */
  readonly outputType?: GgufExportType;
  /** Untied token embeddings. */
  readonly embeddingType?: GgufExportType;
}

const groupsOf32 = (re: RegExp) => (storage: string) => {
  const m = re.exec(storage);
  return m !== null && Number(m[1]) % 32 === 0;
};

/**
 * Source storage → the GGUF type that keeps it. Storage names are crumb encoding names
 * (lower case: f32, q8g32, q4g32zp, t1g64, ...) or source dtypes (upper case: F32, BF16, Q8_0).
 */
export const DEFAULT_TYPES: readonly { readonly test: (storage: string) => boolean; readonly type: GgufExportType; readonly why: string }[] = [
  { test: (s) => s === "f32", type: "F32", why: "crumb's f32 is kept" },
  { test: (s) => s === "f16" || s === "F16", type: "F16", why: "f16 is kept" },
  { test: (s) => s === "BF16", type: "BF16", why: "bf16 is kept" },
  { test: (s) => s === "F32" || s === "F64", type: "F16", why: "convert_hf_to_gguf.py's default for float checkpoints" },
  { test: (s) => s === "Q8_0" || groupsOf32(/^q8g(\d+)$/)(s), type: "Q8_0", why: "int8 groups of 32k weights are Q8_0 blocks" },
  { test: (s) => s === "Q4_1" || groupsOf32(/^q[1-4]g(\d+)zp$/)(s), type: "Q4_1", why: "zero-point groups keep their step and codes" },
  { test: (s) => s === "Q4_0" || groupsOf32(/^t1g(\d+)$/)(s), type: "Q4_0", why: "a ternary group {-a, 0, a} is a Q4_0 block" },
  { test: (s) => s === "TQ2_0" || s === "TQ1_0", type: "TQ2_0", why: "ternary blocks are kept" },
  { test: (s) => s === "Q6_K", type: "Q6_K", why: "Q6_K is kept" },
  { test: (s) => s === "Q2_K", type: "Q2_K", why: "Q2_K is kept" },
];

/** Anything else (per-plane scales, two trit-planes, other ggml types) is rounded to Q8_0. */
export const FALLBACK_DEFAULT: GgufExportType = "Q8_0";

const LOW_BIT: readonly GgufExportType[] = ["Q4_0", "Q4_1", "TQ2_0", "Q2_K"];

export function defaultType(storage: string): GgufExportType {
  return DEFAULT_TYPES.find((d) => d.test(storage))?.type ?? FALLBACK_DEFAULT;
}

export function roleOf(ggufName: string, shape: readonly number[], hasOutput: boolean): TensorRole {
  if (shape.length === 1) return "vector";
  if (ggufName === "output.weight") return "output";
  if (ggufName === "token_embd.weight") return hasOutput ? "embedding" : "output";
  return "matrix";
}

/** The planned type of a tensor before shape fallbacks; `lowBit` says whether the matrices are below 6 bits. */
function intendedType(role: TensorRole, storage: string, options: TypeOptions, lowBit: boolean): GgufExportType {
  if (role === "vector") return "F32";
  const body = options.type ?? defaultType(storage);
  if (role === "matrix") return body;
  if (role === "embedding") return options.embeddingType ?? (options.type === "TQ2_0" ? "Q6_K" : body);
  if (options.outputType !== undefined) return options.outputType;
  if (options.type !== undefined) return ["F32", "F16", "BF16", "Q8_0"].includes(options.type) ? options.type : "Q6_K";
  return lowBit ? "Q6_K" : body;
}

const FALLBACK: Partial<Record<GgufExportType, GgufExportType>> = { TQ2_0: "Q4_0", Q2_K: "Q4_0", Q6_K: "Q8_0", Q4_0: "F16", Q4_1: "F16", Q8_0: "F16" };

export interface PlannedType {
  readonly type: GgufExportType;
  /** Set when the row length forced a different type than planned. */
  readonly fallback?: string;
}

/** Applies the shape fallbacks to the intended type. */
export function planType(role: TensorRole, storage: string, cols: number, options: TypeOptions, lowBit: boolean): PlannedType {
  const intended = intendedType(role, storage, options, lowBit);
  let type = intended;
  while (cols % CODECS[type].block !== 0) type = FALLBACK[type]!;
  return type === intended ? { type } : { type, fallback: `rows of ${cols} do not fill ${intended} blocks of ${CODECS[intended].block}: ${type}` };
}

/** Whether the export's matrices (role "matrix") end up below 6 bits per weight. */
export function isLowBit(matrixTypes: readonly GgufExportType[]): boolean {
  return matrixTypes.some((t) => LOW_BIT.includes(t));
}
