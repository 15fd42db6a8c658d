/**
 * Llama decoder (Llama 2/3, Mistral, TinyLlama, SmolLM/SmolLM2 share it): pre-norm blocks of
 * RMSNorm → attention with rotate-half RoPE and grouped-query heads → residual, RMSNorm →
 * SwiGLU MLP → residual; final RMSNorm and lm_head (tied to the embedding when absent).
 * Follows transformers' modeling_llama.py. qwen2 and qwen3 reuse `decoderForward` with
 * their own features (q/k/v bias, q/k RMSNorm). The activations live in the run state of
 * `stateLayout` (llama2.c's RunState); the ops run on handles to it.
 */
import type { RawConfig } from "./types.ts";
import type { Activation, AttentionInput, ForwardContext, ForwardOptions, MatrixHandle, Projection, StateLayout, VectorHandle } from "../ops/types.ts";
import { type DecoderArgs, normalizeDecoderConfig } from "./decoder-args.ts";
import { ropeInverseFrequencies } from "./rope-frequencies.ts";

export { type DecoderArgs, normalizeDecoderConfig };

export type LlamaArgs = DecoderArgs;

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

/** The run state of the decoder: floats per row of each buffer (each holds up to a prefill tile). */
export function stateLayout(args: DecoderArgs): StateLayout<DecoderBuffer> {
  const qDim = args.numHeads * args.headDim;
  const kvDim = args.numKvHeads * args.headDim;
  const { hiddenSize: hidden, intermediateSize: inter } = args;
  // x: residual stream; h: normed input of a block, then o_proj / down_proj output; att: attention output.
  return { x: hidden, h: hidden, q: qDim, k: kvDim, v: kvDim, att: qDim, gate: inter, up: inter, logits: args.vocabSize };
}

export type DecoderBuffer = "x" | "h" | "q" | "k" | "v" | "att" | "gate" | "up" | "logits";
type Ctx = ForwardContext<MatrixHandle, VectorHandle, Activation, DecoderBuffer>;

/** One block's weights, resolved once per context, with its fused projection groups. */
interface Block {
  readonly inputNorm: VectorHandle;
  readonly postNorm: VectorHandle;
  readonly qNorm?: VectorHandle;
  readonly kNorm?: VectorHandle;
  readonly qkv: readonly Projection[];
  readonly o: readonly Projection[];
  readonly gateUp: readonly Projection[];
  readonly down: readonly Projection[];
  /** The attention call: fixed but for the tokens' count and position, set per call (no allocation per token). */
  readonly attend: { -readonly [K in keyof AttentionInput]: AttentionInput[K] };
}

const blockCache = new WeakMap<object, Block[]>();

function block(args: DecoderArgs, ctx: Ctx, layer: number): Block {
  let blocks = blockCache.get(ctx);
  if (blocks === undefined) blockCache.set(ctx, blocks = []);
  return blocks[layer] ??= resolveBlock(args, ctx, layer);
}

function resolveBlock(args: DecoderArgs, ctx: Ctx, layer: number): Block {
  const { weights, state: s } = ctx;
  const p = `model.layers.${layer}`;
  const proj = (name: string, out: Activation, bias: boolean): Projection => ({
    weight: weights.matrix(`${p}.${name}.weight`),
    out,
    bias: bias ? weights.vector(`${p}.${name}.bias`) : undefined,
  });
  return {
    inputNorm: weights.vector(`${p}.input_layernorm.weight`),
    postNorm: weights.vector(`${p}.post_attention_layernorm.weight`),
    qNorm: args.qkNorm ? weights.vector(`${p}.self_attn.q_norm.weight`) : undefined,
    kNorm: args.qkNorm ? weights.vector(`${p}.self_attn.k_norm.weight`) : undefined,
    qkv: [proj("self_attn.q_proj", s.q, args.attentionBias), ...kvProjections(args, ctx, layer, s.k, s.v)],
    o: [proj("self_attn.o_proj", s.h, args.outputBias)],
    gateUp: [proj("mlp.gate_proj", s.gate, false), proj("mlp.up_proj", s.up, false)],
    down: [proj("mlp.down_proj", s.h, false)],
    attend: { layer, q: s.q, k: s.k, v: s.v, x: s.h, out: s.att, n: 0, startPos: 0 },
  };
}

/** k_proj and v_proj of a layer writing to k and v. */
function kvProjections(args: DecoderArgs, ctx: Pick<Ctx, "weights">, layer: number, k: Activation, v: Activation): Projection[] {
  const p = `model.layers.${layer}.self_attn`;
  const bias = (name: string) => args.attentionBias ? ctx.weights.vector(`${p}.${name}.bias`) : undefined;
  return [
    { weight: ctx.weights.matrix(`${p}.k_proj.weight`), out: k, bias: bias("k_proj") },
    { weight: ctx.weights.matrix(`${p}.v_proj.weight`), out: v, bias: bias("v_proj") },
  ];
}

/**
 * Runs n tokens starting at startPos through the decoder; returns the last position's logits
 * (vocab) or, with allLogits, every position's (n, vocab); with output "hidden", the final
 * normalised hidden states instead. The WASM backend returns a view of its run state.
 */
export function decoderForward(args: DecoderArgs, ctx: Ctx, tokens: readonly number[], startPos: number, options: ForwardOptions = LOGITS): Float32Array {
  const { ops, weights, state: s } = ctx;
  const n = tokens.length;
  ops.embed(tokens, weights.matrix("model.embed_tokens.weight"), s.x); // (n, hidden)
  for (let l = 0; l < args.numLayers; l++) decoderLayer(args, ctx, l, s.x, n, startPos);

  const rows = options.allLogits ? n : 1;
  ops.rmsNorm(options.allLogits ? s.x : ops.rows(s.x, n - 1), rows, weights.vector("model.norm.weight"), args.rmsNormEps, s.h);
  if (options.output === "hidden") return ops.read(s.h, rows); // (rows, hidden)
  ops.linear(s.h, rows, lmHead(args, ctx));
  return ops.read(s.logits, rows); // (rows, vocab)
}

const LOGITS: ForwardOptions = {};
const headCache = new WeakMap<object, Projection[]>();

function lmHead(args: DecoderArgs, ctx: Ctx): Projection[] {
  let head = headCache.get(ctx);
  if (head === undefined) {
    const tied = args.tieWordEmbeddings && !ctx.weights.has("lm_head.weight");
    head = [{ weight: ctx.weights.matrix(tied ? "model.embed_tokens.weight" : "lm_head.weight"), out: ctx.state.logits }];
    headCache.set(ctx, head);
  }
  return head;
}

/**
 * One decoder block on x (n, hidden) in place: x becomes the block's output (RMSNorm → q/k/v
 * projections, q/k norms, RoPE → attention → o_proj residual, RMSNorm → SwiGLU MLP residual).
 * The forward pass runs it per layer; layer-by-layer calibration (quantizer/calibrate-stream.ts)
 * runs it on one layer's weights at a time.
 */
export function decoderLayer(args: DecoderArgs, ctx: Ctx, layer: number, x: Activation, n: number, startPos: number): void {
  const { ops, state: s } = ctx;
  const { headDim, numHeads, rmsNormEps: eps } = args;
  const b = block(args, ctx, layer);
  ops.rmsNorm(x, n, b.inputNorm, eps, s.h);
  ops.linear(s.h, n, b.qkv); // q (n, heads·headDim), k and v (n, kvHeads·headDim)
  if (b.qNorm !== undefined) ops.rmsNorm(s.q, n * numHeads, b.qNorm, eps, s.q);
  ops.rope(s.q, n, numHeads, headDim, startPos, inverseFrequencies(args));
  finishKeys(args, ops, b.kNorm, s.k, n, startPos);
  b.attend.n = n;
  b.attend.startPos = startPos;
  ctx.attention.attend(b.attend);
  ops.linear(s.att, n, b.o); // into h
  ops.add(x, s.h, n);

  ops.rmsNorm(x, n, b.postNorm, eps, s.h);
  ops.linear(s.h, n, b.gateUp); // (n, intermediate) each
  ops.siluMul(s.gate, s.up, n, s.gate);
  ops.linear(s.gate, n, b.down); // into h
  ops.add(x, s.h, n);
}

/** k_norm (qwen3) and RoPE on keys k (n rows) at positions startPos..: shared by the forward and projectKv. */
function finishKeys(args: DecoderArgs, ops: Ctx["ops"], kNorm: VectorHandle | undefined, k: Activation, n: number, startPos: number): void {
  if (kNorm !== undefined) ops.rmsNorm(k, n * args.numKvHeads, kNorm, args.rmsNormEps, k);
  ops.rope(k, n, args.numKvHeads, args.headDim, startPos, inverseFrequencies(args));
}

const kvGroups = new WeakMap<object, WeakMap<Activation, Projection[][]>>();

/** The k/v group of a layer into k and v, kept per (weights, k) so the ops reuse its plan. */
function cachedKvProjections(args: DecoderArgs, ctx: Pick<Ctx, "weights">, layer: number, k: Activation, v: Activation): Projection[] {
  let byK = kvGroups.get(ctx.weights);
  if (byK === undefined) kvGroups.set(ctx.weights, byK = new WeakMap());
  let layers = byK.get(k);
  if (layers === undefined) byK.set(k, layers = []);
  const group = layers[layer];
  return group !== undefined && group[1].out === v ? group : (layers[layer] = kvProjections(args, ctx, layer, k, v));
}

/**
 * Keys (k-normed and rotated) and values of layer `layer` for inputs h (n rows) at positions
 * startPos.. into k and v: XQuant caches call it to rebuild K/V from cached layer inputs.
 */
export function projectKv(
  args: DecoderArgs,
  ctx: Pick<Ctx, "ops" | "weights">,
  layer: number,
  h: Activation,
  n: number,
  startPos: number,
  k: Activation,
  v: Activation,
): void {
  ctx.ops.linear(h, n, cachedKvProjections(args, ctx, layer, k, v));
  const kNorm = args.qkNorm ? ctx.weights.vector(`model.layers.${layer}.self_attn.k_norm.weight`) : undefined;
  finishKeys(args, ctx.ops, kNorm, k, n, startPos);
}

export const forward = decoderForward;
