/**
 * Llama decoder (Llama 2/3, Mistral, TinyLlama, SmolLM/SmolLM2 share it): pre-norm blocks of
 * RMSNorm → attention with rotate-half RoPE and grouped-query heads → residual, RMSNorm →
 * SwiGLU MLP → residual; final RMSNorm and lm_head (tied to the embedding when absent).
 * Follows transformers' modeling_llama.py. qwen2 and qwen3 reuse `decoderForward` with
 * their own features (q/k/v bias, q/k RMSNorm).
 */
import type { RawConfig } from "./types.ts";
import type { ForwardContext, ForwardOptions } from "../ops/types.ts";
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
import { ropeInverseFrequencies } from "./rope-frequencies.ts";

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

export type LlamaArgs = DecoderArgs;

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

export function normalizeConfig(raw: RawConfig): LlamaArgs {
  return normalizeDecoderConfig(raw, { attentionBias: false, biasOnOutput: true, qkNorm: false, defaultTheta: 10000, defaultEps: 1e-6 });
}

/** Every tensor the forward pass reads, by HF name. */
export function expectedTensors(args: DecoderArgs): string[] {
  const names = ["model.embed_tokens.weight", "model.norm.weight"];
  if (!args.tieWordEmbeddings) names.push("lm_head.weight");
  for (let l = 0; l < args.numLayers; l++) {
    const p = `model.layers.${l}`;
    names.push(`${p}.input_layernorm.weight`, `${p}.post_attention_layernorm.weight`);
    for (const proj of ["q_proj", "k_proj", "v_proj", "o_proj"]) names.push(`${p}.self_attn.${proj}.weight`);
    if (args.attentionBias) for (const proj of ["q_proj", "k_proj", "v_proj"]) names.push(`${p}.self_attn.${proj}.bias`);
    if (args.outputBias) names.push(`${p}.self_attn.o_proj.bias`);
    if (args.qkNorm) names.push(`${p}.self_attn.q_norm.weight`, `${p}.self_attn.k_norm.weight`);
    for (const proj of ["gate_proj", "up_proj", "down_proj"]) names.push(`${p}.mlp.${proj}.weight`);
  }
  return names;
}

const invFreqCache = new WeakMap<DecoderArgs, Float32Array>();

function inverseFrequencies(args: DecoderArgs): Float32Array {
  let invFreq = invFreqCache.get(args);
  if (invFreq === undefined) {
    invFreq = ropeInverseFrequencies(args.headDim, args.ropeTheta, args.ropeScaling);
    invFreqCache.set(args, invFreq);
  }
  return invFreq;
}

/**
 * Runs n tokens starting at startPos through the decoder; returns the last position's logits
 * (vocab) or, with allLogits, every position's (n, vocab); with output "hidden", the final
 * normalised hidden states instead.
 */
export function decoderForward(
  args: DecoderArgs,
  ctx: ForwardContext,
  tokens: readonly number[],
  startPos: number,
  options: ForwardOptions = {},
): Float32Array {
  const { ops, weights } = ctx;
  const n = tokens.length;
  const x = ops.embed(tokens, weights.matrix("model.embed_tokens.weight")); // (n, hidden)
  for (let l = 0; l < args.numLayers; l++) {
    ops.beginLayer?.(); // this layer's temporaries may reuse the previous layer's memory
    decoderLayer(args, ctx, l, x, n, startPos);
  }
  ops.endLayers?.();

  const rows = options.allLogits ? n : 1;
  const last = options.allLogits ? x : x.subarray((n - 1) * args.hiddenSize, n * args.hiddenSize);
  const normed = ops.rmsNorm(last, rows, weights.vector("model.norm.weight"), args.rmsNormEps);
  if (options.output === "hidden") return normed; // (rows, hidden)
  const head = args.tieWordEmbeddings && !weights.has("lm_head.weight") ? "model.embed_tokens.weight" : "lm_head.weight";
  return ops.linear(normed, rows, weights.matrix(head)); // (rows, vocab)
}

/**
 * One decoder block on x (n, hidden) at positions startPos.., in place: x becomes the block's
 * output (RMSNorm → q projection, q-norm, RoPE → projectKv → attention → o_proj residual,
 * RMSNorm → SwiGLU MLP residual). The forward pass runs it per layer; layer-by-layer
 * calibration (quantizer/calibrate-stream.ts) runs it on one layer's weights at a time.
 */
export function decoderLayer(args: DecoderArgs, ctx: ForwardContext, layer: number, x: Float32Array, n: number, startPos: number): void {
  const { ops, weights } = ctx;
  const { headDim, numHeads } = args;
  const p = `model.layers.${layer}`;
  const h = ops.rmsNorm(x, n, weights.vector(`${p}.input_layernorm.weight`), args.rmsNormEps);
  const bias = (proj: string) => args.attentionBias ? weights.vector(`${p}.self_attn.${proj}.bias`) : undefined;
  const q = ops.linear(h, n, weights.matrix(`${p}.self_attn.q_proj.weight`), bias("q_proj")); // (n, heads*headDim)
  const qn = args.qkNorm ? ops.rmsNorm(q, n * numHeads, weights.vector(`${p}.self_attn.q_norm.weight`), args.rmsNormEps) : q;
  ops.rope(qn, n, numHeads, headDim, startPos, inverseFrequencies(args));
  const { k, v } = projectKv(args, ctx, layer, h, n, startPos);
  const attended = ctx.attention.attend({ layer, q: qn, k, v, n, startPos, x: h });
  const outputBias = args.outputBias ? weights.vector(`${p}.self_attn.o_proj.bias`) : undefined;
  ops.addInPlace(x, ops.linear(attended, n, weights.matrix(`${p}.self_attn.o_proj.weight`), outputBias));

  const h2 = ops.rmsNorm(x, n, weights.vector(`${p}.post_attention_layernorm.weight`), args.rmsNormEps);
  const gate = ops.linear(h2, n, weights.matrix(`${p}.mlp.gate_proj.weight`)); // (n, intermediate)
  const up = ops.linear(h2, n, weights.matrix(`${p}.mlp.up_proj.weight`));
  ops.addInPlace(x, ops.linear(ops.siluMul(gate, up), n, weights.matrix(`${p}.mlp.down_proj.weight`)));
}

/**
 * Keys (q/k-normed and rotated) and values of layer `layer` for inputs h (n, hidden) at
 * positions startPos.. : the forward pass uses it, and XQuant caches call it to rebuild K/V
 * from cached layer inputs.
 */
export function projectKv(
  args: DecoderArgs,
  ctx: Pick<ForwardContext, "ops" | "weights">,
  layer: number,
  h: Float32Array,
  n: number,
  startPos: number,
): { k: Float32Array; v: Float32Array } {
  const { ops, weights } = ctx;
  const p = `model.layers.${layer}`;
  const bias = (proj: string) => args.attentionBias ? weights.vector(`${p}.self_attn.${proj}.bias`) : undefined;
  const k = ops.linear(h, n, weights.matrix(`${p}.self_attn.k_proj.weight`), bias("k_proj")); // (n, kvHeads*headDim)
  const v = ops.linear(h, n, weights.matrix(`${p}.self_attn.v_proj.weight`), bias("v_proj"));
  const kn = args.qkNorm ? ops.rmsNorm(k, n * args.numKvHeads, weights.vector(`${p}.self_attn.k_norm.weight`), args.rmsNormEps) : k;
  ops.rope(kn, n, args.numKvHeads, args.headDim, startPos, inverseFrequencies(args));
  return { k: kn, v };
}

export const forward = decoderForward;
