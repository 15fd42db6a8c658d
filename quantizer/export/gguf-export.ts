/**
 * Exports a ModelSource (llama family) to a GGUF file that llama.cpp loads: llama metadata
 * (rope_scaling as llama.cpp's convert_hf_to_gguf.py writes it: linear as rope.scaling.*
 * keys, llama3 as a rope_freqs tensor of per-frequency divisors),
 * a SentencePiece vocab copied from a vocab-only GGUF (llama.cpp's models/ggml-vocab-*.gguf),
 * tensors renamed to llama.cpp's convention with attn_q/attn_k rows permuted to Meta's
 * interleaved RoPE order, and matrices encoded as F16, Q8_0, Q4_0, Q2_K or TQ2_0
 * (GGUF-EXPORT.md describes each block layout). Streams one tensor at a time.
 */
import { InvalidArgumentError, UnsupportedModelError } from "../../runtime/errors.ts";
import { type ModelArgs, resolveModel } from "../../runtime/models/registry.ts";
import { ropeInverseFrequencies } from "../../runtime/models/rope-frequencies.ts";
import type { ModelSource } from "../../runtime/models/types.ts";
import { encodeFloat, encodeQ4_0, encodeQ8_0 } from "../../runtime/import/dtypes.ts";
import { readGguf } from "../../runtime/import/gguf.ts";
import { hfToGgufName } from "../../runtime/import/gguf-names.ts";
import { GgufValueType } from "../../runtime/import/gguf-types.ts";
import { permuteHfToMeta } from "../../runtime/import/rope-permute.ts";
import { encodeQ2_K, encodeTq2_0 } from "./gguf-blocks.ts";
import { type GgufMeta, type GgufStreamTensor, writeGgufStream } from "./gguf-stream.ts";

export const GGUF_EXPORT_TYPES = ["F32", "F16", "Q8_0", "Q4_0", "Q2_K", "TQ2_0"] as const;
export type GgufExportType = typeof GGUF_EXPORT_TYPES[number];

export interface GgufExportOptions {
  /** Type of every 2-D weight (lm_head included) except the token embeddings. */
  readonly type: GgufExportType;
  /** Token embeddings (a row lookup, not a matmul); default Q8_0, or F16/F32 when `type` is. */
  readonly embeddingType?: GgufExportType;
  /** A vocab-only GGUF whose tokenizer.* keys are copied (e.g. ggml-vocab-llama-spm.gguf). */
  readonly vocabGguf: string;
  readonly name?: string;
}

const ARCHITECTURES = ["llama", "mistral"];

export function encodeGgufTensor(type: GgufExportType, data: Float32Array): Uint8Array {
  switch (type) {
    case "F32":
    case "F16":
      return encodeFloat(data, type);
    case "Q8_0":
      return encodeQ8_0(data);
    case "Q4_0":
      return encodeQ4_0(data);
    case "Q2_K":
      return encodeQ2_K(data);
    case "TQ2_0":
      return encodeTq2_0(data);
  }
}

/** The tokenizer.* metadata of a vocab GGUF, cut or padded (unused tokens) to `vocabSize`. */
export function vocabMetadata(vocabGguf: string, vocabSize: number): Map<string, GgufMeta> {
  const gguf = readGguf(vocabGguf);
  const out = new Map<string, GgufMeta>();
  const tokens = gguf.metadata.get("tokenizer.ggml.tokens");
  if (!Array.isArray(tokens)) {
    throw new InvalidArgumentError("vocabGguf", `${vocabGguf} has no tokenizer.ggml.tokens; pass a llama.cpp vocab GGUF such as ggml-vocab-llama-spm.gguf`);
  }
  if (tokens.length > vocabSize && vocabSize < 259) {
    throw new InvalidArgumentError("vocabGguf", `vocab_size ${vocabSize} is too small to keep the 3 special and 256 byte tokens of ${vocabGguf}; use at least 259`);
  }
  // A smaller model keeps the first vocabSize tokens (specials, bytes, then the most frequent
  // merges), which is still a complete byte-fallback vocab; a larger one gets unused padding.
  const pad = Math.max(0, vocabSize - tokens.length);
  const keep = Math.min(vocabSize, tokens.length);
  for (const [key, value] of gguf.metadata) {
    if (!key.startsWith("tokenizer.")) continue;
    const type = gguf.metadataTypes.get(key)!;
    if (type !== GgufValueType.ARRAY) {
      out.set(key, { type, value });
      continue;
    }
    const items = value as unknown[];
    if (key === "tokenizer.ggml.tokens") {
      out.set(key, { type, value: [...items.slice(0, keep), ...Array.from({ length: pad }, (_, i) => `[PAD${i}]`)], elementType: GgufValueType.STRING });
    } else if (key === "tokenizer.ggml.scores") {
      out.set(key, { type, value: [...items.slice(0, keep), ...new Array(pad).fill(0)], elementType: GgufValueType.FLOAT32 });
    } else if (key === "tokenizer.ggml.token_type") {
      // 5 = LLAMA_TOKEN_TYPE_UNUSED
      out.set(key, { type, value: [...items.slice(0, keep), ...new Array(pad).fill(5)], elementType: GgufValueType.INT32 });
    } else {
      const elementType = items.every((v) => typeof v === "string") ? GgufValueType.STRING : GgufValueType.INT32;
      out.set(key, { type, value: items, elementType });
    }
  }
  return out;
}

/**
 * rope_scaling in llama.cpp's terms: linear as `llama.rope.scaling.{type,factor}`, llama3 as
 * `rope_freqs.weight`, the divisor llama.cpp applies to each base frequency (base / scaled).
 */
function ropeScalingGguf(args: ModelArgs): { metadata: [string, GgufMeta][]; tensors: GgufStreamTensor[] } {
  const scaling = args.ropeScaling;
  if (scaling.type === "linear") {
    return {
      metadata: [
        ["llama.rope.scaling.type", { type: GgufValueType.STRING, value: "linear" }],
        ["llama.rope.scaling.factor", f32(scaling.factor)],
      ],
      tensors: [],
    };
  }
  if (scaling.type === "none") return { metadata: [], tensors: [] };
  const base = ropeInverseFrequencies(args.headDim, args.ropeTheta, { type: "none" });
  const scaled = ropeInverseFrequencies(args.headDim, args.ropeTheta, scaling);
  const divisors = base.map((f, i) => f / scaled[i]);
  return {
    metadata: [],
    tensors: [{ name: "rope_freqs.weight", shape: [divisors.length], type: "F32", encode: () => encodeGgufTensor("F32", divisors) }],
  };
}

function u32(value: number): GgufMeta {
  return { type: GgufValueType.UINT32, value };
}
function f32(value: number): GgufMeta {
  return { type: GgufValueType.FLOAT32, value };
}

/** Writes `source` to `path` as a llama GGUF; returns the tensor names and types written. */
export function exportGguf(source: ModelSource, path: string, options: GgufExportOptions): { name: string; type: string }[] {
  const { args } = resolveModel(source.config);
  if (!ARCHITECTURES.includes(args.modelType)) {
    throw new UnsupportedModelError(`GGUF export supports the llama family; "${args.modelType}" is not one of them`, ARCHITECTURES);
  }
  if (!(GGUF_EXPORT_TYPES as readonly string[]).includes(options.type)) {
    throw new InvalidArgumentError("type", `GGUF export type "${options.type}" is not one of ${GGUF_EXPORT_TYPES.join(", ")}`);
  }
  const rope = ropeScalingGguf(args);
  const embeddingType = options.embeddingType ?? (options.type === "F16" || options.type === "F32" ? options.type : "Q8_0");
  const metadata = new Map<string, GgufMeta>([
    ["general.architecture", { type: GgufValueType.STRING, value: "llama" }],
    ["general.name", { type: GgufValueType.STRING, value: options.name ?? source.path }],
    ["llama.context_length", u32(args.maxPositions)],
    ["llama.embedding_length", u32(args.hiddenSize)],
    ["llama.block_count", u32(args.numLayers)],
    ["llama.feed_forward_length", u32(args.intermediateSize)],
    ["llama.attention.head_count", u32(args.numHeads)],
    ["llama.attention.head_count_kv", u32(args.numKvHeads)],
    ["llama.attention.key_length", u32(args.headDim)],
    ["llama.attention.value_length", u32(args.headDim)],
    ["llama.attention.layer_norm_rms_epsilon", f32(args.rmsNormEps)],
    ["llama.rope.freq_base", f32(args.ropeTheta)],
    ["llama.rope.dimension_count", u32(args.headDim)],
    ["llama.vocab_size", u32(args.vocabSize)],
    ...rope.metadata,
    ...vocabMetadata(options.vocabGguf, args.vocabSize),
  ]);
  const tensors: GgufStreamTensor[] = [...rope.tensors];
  const written: { name: string; type: string }[] = rope.tensors.map(({ name, type }) => ({ name, type }));
  for (const [hfName, entry] of source.tensors) {
    const name = hfToGgufName(hfName);
    if (name === undefined) throw new UnsupportedModelError(`tensor "${hfName}" has no llama.cpp name`, ["llama tensors"]);
    const type: GgufExportType = entry.shape.length === 1 ? "F32" : name === "token_embd.weight" ? embeddingType : options.type;
    const heads = name.endsWith("attn_q.weight") ? args.numHeads : name.endsWith("attn_k.weight") ? args.numKvHeads : 0;
    const cols = entry.shape[entry.shape.length - 1];
    tensors.push({
      name,
      shape: entry.shape,
      type,
      encode: () => encodeGgufTensor(type, heads > 0 ? permuteHfToMeta(entry.read(), heads, cols) : entry.read()),
    });
    written.push({ name, type });
  }
  writeGgufStream(path, metadata, tensors);
  return written;
}
