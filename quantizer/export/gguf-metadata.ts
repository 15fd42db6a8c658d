/**
 * The architecture metadata of an exported GGUF (ggml/docs/gguf.md "LLM" keys, as llama.cpp's
 * llama, qwen2 and qwen3 loaders read them): `general.*`, `<arch>.context_length`,
 * `embedding_length`, `block_count`, `feed_forward_length`, head counts and sizes, RMSNorm
 * epsilon, RoPE base and dimension, and RoPE scaling: linear as `rope.scaling.*`, Llama 3's
 * as the `rope_freqs.weight` factors convert_hf_to_gguf.py writes (llama.cpp divides each
 * frequency by its factor; computed here from crumb's own scaled frequencies). Mistral is
 * written as "llama": llama.cpp's llama graph has no sliding window, so a Mistral window is
 * reported, not silently dropped.
 */
import { UnsupportedModelError } from "../../runtime/errors.ts";
import type { DecoderArgs } from "../../runtime/models/llama.ts";
import { ropeInverseFrequencies } from "../../runtime/models/rope-frequencies.ts";
import { GgufValueType } from "../../runtime/import/gguf-types.ts";
import type { GgufMeta } from "./gguf-stream.ts";

/** crumb model_type → general.architecture. */
export const GGUF_ARCHITECTURES: Readonly<Record<string, string>> = { llama: "llama", mistral: "llama", qwen2: "qwen2", qwen3: "qwen3" };

/** llama.h llama_ftype of a file whose matrices are mostly `type`. */
const FILE_TYPES: Readonly<Record<string, number>> = { F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q8_0: 7, Q2_K: 10, Q6_K: 18, BF16: 32, TQ2_0: 37 };

const u32 = (value: number): GgufMeta => ({ type: GgufValueType.UINT32, value });
const f32 = (value: number): GgufMeta => ({ type: GgufValueType.FLOAT32, value });
const str = (value: string): GgufMeta => ({ type: GgufValueType.STRING, value });

export function ggufArchitecture(args: DecoderArgs): string {
  const arch = GGUF_ARCHITECTURES[args.modelType];
  if (arch === undefined) {
    throw new UnsupportedModelError(`GGUF export does not know model_type "${args.modelType}"`, Object.keys(GGUF_ARCHITECTURES));
  }
  return arch;
}

/** Llama 3 frequency factors (headDim/2 values) when the model uses that scaling. */
export function ropeFreqFactors(args: DecoderArgs): Float32Array | undefined {
  if (args.ropeScaling.type !== "llama3") return undefined;
  if (ggufArchitecture(args) !== "llama") {
    throw new UnsupportedModelError(`llama3 rope scaling on a ${args.modelType} model has no GGUF form llama.cpp reads`, ["llama3 scaling on llama models"]);
  }
  const plain = ropeInverseFrequencies(args.headDim, args.ropeTheta, { type: "none" });
  const scaled = ropeInverseFrequencies(args.headDim, args.ropeTheta, args.ropeScaling);
  return plain.map((f, i) => f / scaled[i]!);
}

export interface ModelMetadataInput {
  readonly args: DecoderArgs;
  readonly name: string;
  /** The matrices' dominant type, for general.file_type. */
  readonly fileType: string;
  readonly quantized: boolean;
}

/** general.* and <arch>.* keys, in the order llama.cpp's converter writes them. */
export function modelMetadata({ args, name, fileType, quantized }: ModelMetadataInput): { entries: Map<string, GgufMeta>; notes: string[] } {
  const arch = ggufArchitecture(args);
  const p = `${arch}.`;
  const entries = new Map<string, GgufMeta>([
    ["general.architecture", str(arch)],
    ["general.name", str(name)],
    [`${p}vocab_size`, u32(args.vocabSize)],
    [`${p}context_length`, u32(args.maxPositions)],
    [`${p}embedding_length`, u32(args.hiddenSize)],
    [`${p}block_count`, u32(args.numLayers)],
    [`${p}feed_forward_length`, u32(args.intermediateSize)],
    [`${p}attention.head_count`, u32(args.numHeads)],
    [`${p}attention.head_count_kv`, u32(args.numKvHeads)],
    [`${p}attention.key_length`, u32(args.headDim)],
    [`${p}attention.value_length`, u32(args.headDim)],
    [`${p}attention.layer_norm_rms_epsilon`, f32(args.rmsNormEps)],
    [`${p}rope.freq_base`, f32(args.ropeTheta)],
    [`${p}rope.dimension_count`, u32(args.headDim)],
  ]);
  if (args.ropeScaling.type === "linear") {
    entries.set(`${p}rope.scaling.type`, str("linear"));
    entries.set(`${p}rope.scaling.factor`, f32(args.ropeScaling.factor));
  }
  const fileTypeId = FILE_TYPES[fileType];
  if (fileTypeId !== undefined) entries.set("general.file_type", u32(fileTypeId));
  if (quantized) entries.set("general.quantization_version", u32(2));
  const notes: string[] = [];
  if (args.slidingWindow !== undefined && args.slidingWindow < args.maxPositions) {
    notes.push(
      `${args.modelType} attends over a sliding window of ${args.slidingWindow} positions; llama.cpp's ${arch} architecture has none, ` +
        `so beyond ${args.slidingWindow} positions llama.cpp attends to the whole context (crumb keeps the window)`,
    );
  }
  return { entries, notes };
}
