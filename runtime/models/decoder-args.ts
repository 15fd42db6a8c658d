/**
 * The normalised config shared by the Llama-family decoders (llama, mistral, qwen2, qwen3):
 * `normalizeDecoderConfig(raw, features)` checks every key it reads, fills every default (some
 * of which the model_type fixes: biases, q/k norms, RoPE theta, head_dim) and throws
 * ConfigError naming a missing or inconsistent key, so later code never sees undefined.
 */
import type { RawConfig } from "./types.ts";
import {
  normalizeRopeScaling,
  optionalBool,
  optionalInt,
  optionalNumber,
  requireInt,
  type RopeScaling,
  tokenIdList,
} from "./config.ts";
import { ConfigError } from "../errors.ts";

/** Normalised config of every decoder in this family; later code never sees undefined. */
export interface DecoderArgs {
  readonly modelType: string;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly maxPositions: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling;
  readonly tieWordEmbeddings: boolean;
  readonly bosTokenId: number | undefined;
  readonly eosTokenIds: readonly number[];
  /** q_proj/k_proj/v_proj carry biases (qwen2). */
  readonly attentionBias: boolean;
  /** o_proj carries a bias too (llama and qwen3 with attention_bias; never qwen2). */
  readonly outputBias: boolean;
  /** RMSNorm over each head of q and k before RoPE (qwen3). */
  readonly qkNorm: boolean;
  /** Each query attends to at most this many most recent positions (Mistral); undefined = all. */
  readonly slidingWindow: number | undefined;
}

/** Shared by llama, qwen2 and qwen3; `features` are what the model_type fixes. */
export function normalizeDecoderConfig(
  raw: RawConfig,
  features: {
    attentionBias: boolean;
    /** attention_bias also puts a bias on o_proj (transformers' llama and qwen3; not qwen2). */
    biasOnOutput: boolean;
    qkNorm: boolean;
    defaultTheta: number;
    defaultEps: number;
    defaultHeadDim?: number;
  },
): DecoderArgs {
  const hiddenSize = requireInt(raw, "hidden_size");
  const numHeads = requireInt(raw, "num_attention_heads");
  const numKvHeads = optionalInt(raw, "num_key_value_heads", numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new ConfigError(
      `num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`,
      { key: "num_key_value_heads" },
    );
  }
  const attentionBias = optionalBool(raw, "attention_bias", features.attentionBias);
  const headDim = optionalInt(raw, "head_dim", features.defaultHeadDim ?? hiddenSize / numHeads);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new ConfigError(
      `head size ${headDim} (hidden_size ${hiddenSize} / num_attention_heads ${numHeads}) must be an even integer; set "head_dim"`,
      { key: "head_dim" },
    );
  }
  return {
    modelType: String(raw.model_type),
    hiddenSize,
    intermediateSize: requireInt(raw, "intermediate_size"),
    numLayers: requireInt(raw, "num_hidden_layers"),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: requireInt(raw, "vocab_size"),
    maxPositions: optionalInt(raw, "max_position_embeddings", 2048),
    rmsNormEps: optionalNumber(raw, "rms_norm_eps", features.defaultEps),
    ropeTheta: optionalNumber(raw, "rope_theta", features.defaultTheta),
    ropeScaling: normalizeRopeScaling(raw),
    tieWordEmbeddings: optionalBool(raw, "tie_word_embeddings", false),
    bosTokenId: tokenIdList(raw, "bos_token_id")[0],
    eosTokenIds: tokenIdList(raw, "eos_token_id"),
    attentionBias,
    outputBias: attentionBias && features.biasOnOutput,
    qkNorm: features.qkNorm,
    slidingWindow: slidingWindow(raw),
  };
}

/** Mistral sets sliding_window; Qwen2 sets it too but only uses it when use_sliding_window is true. */
function slidingWindow(raw: RawConfig): number | undefined {
  if (raw.use_sliding_window === false) return undefined;
  const window = raw.sliding_window;
  return window === undefined || window === null ? undefined : requireInt(raw, "sliding_window");
}
