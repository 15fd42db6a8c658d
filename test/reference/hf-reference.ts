/**
 * An independent float64 forward pass of the decoder families crumb runs (llama, mistral,
 * qwen2, qwen3), written for the tests from the semantics of Hugging Face transformers'
 * modeling_llama.py, modeling_mistral.py, modeling_qwen2.py, modeling_qwen3.py and their
 * configuration_*.py, plus the RoPE inverse-frequency formulas (RoFormer; linear position
 * interpolation; Llama 3.1's frequency-dependent rescaling as in Meta's reference).
 *
 * It shares no code with crumb's model files, config normalisation or RoPE code
 * (runtime/models/*): a bug there cannot cancel out against this. It keeps no KV cache:
 * every call runs the whole sequence under the causal (and sliding-window) mask, so crumb's
 * cached decoding is checked against a pass that never caches.
 */
import { randomTensor } from "../fixtures/random-model.ts";

/** A config.json object as Hugging Face writes it. */
export type HfConfig = Record<string, unknown>;

/** The hyperparameters transformers derives from a config.json for these model types. */
export interface HfHyperparameters {
  readonly modelType: "llama" | "mistral" | "qwen2" | "qwen3";
  readonly hidden: number;
  readonly intermediate: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly vocab: number;
  readonly eps: number;
  readonly theta: number;
  readonly ropeScaling: Readonly<Record<string, unknown>> | null;
  readonly tied: boolean;
  /** q_proj, k_proj, v_proj carry a bias. */
  readonly qkvBias: boolean;
  /** o_proj carries a bias (llama and qwen3 with attention_bias; never qwen2). */
  readonly outputBias: boolean;
  /** RMSNorm over each head of q and k before RoPE (qwen3's q_norm, k_norm). */
  readonly qkNorm: boolean;
  /** A key at position j is visible from query i when i - window < j <= i; null = causal only. */
  readonly slidingWindow: number | null;
}

function need(config: HfConfig, key: string): number {
  const value = config[key];
  if (typeof value !== "number") throw new Error(`reference: config needs a number "${key}", got ${JSON.stringify(value)}`);
  return value;
}

/**
 * Reads a config as transformers does. Keys the reference's fixtures always write are
 * required; the defaults modelled are the ones whose value differs between the families:
 * head_dim (hidden_size / heads, except Qwen3Config's 128), the bias layout, and the
 * sliding window (Mistral's sliding_window; Qwen's only behind use_sliding_window).
 */
export function readHfConfig(config: HfConfig): HfHyperparameters {
  const modelType = config.model_type;
  if (modelType !== "llama" && modelType !== "mistral" && modelType !== "qwen2" && modelType !== "qwen3") {
    throw new Error(`reference: model_type ${JSON.stringify(modelType)} is not modelled`);
  }
  const hidden = need(config, "hidden_size");
  const heads = need(config, "num_attention_heads");
  const explicitHeadDim = typeof config.head_dim === "number" ? config.head_dim : undefined;
  const headDim = explicitHeadDim ?? (modelType === "qwen3" ? 128 : hidden / heads);
  const attentionBias = config.attention_bias === true;
  if ((modelType === "qwen2" || modelType === "qwen3") && config.use_sliding_window === true) {
    throw new Error("reference: Qwen's per-layer sliding window (use_sliding_window) is not modelled");
  }
  const window = modelType === "mistral" ? (config.sliding_window === undefined ? 4096 : config.sliding_window) : null;
  const scaling = config.rope_scaling;
  return {
    modelType,
    hidden,
    intermediate: need(config, "intermediate_size"),
    layers: need(config, "num_hidden_layers"),
    heads,
    kvHeads: need(config, "num_key_value_heads"),
    headDim,
    vocab: need(config, "vocab_size"),
    eps: need(config, "rms_norm_eps"),
    theta: need(config, "rope_theta"),
    ropeScaling: scaling === undefined || scaling === null ? null : scaling as Record<string, unknown>,
    tied: config.tie_word_embeddings === true,
    qkvBias: modelType === "qwen2" || (modelType !== "mistral" && attentionBias),
    outputBias: (modelType === "llama" || modelType === "qwen3") && attentionBias,
    qkNorm: modelType === "qwen3",
    slidingWindow: typeof window === "number" ? window : null,
  };
}

/** Every parameter the transformers module of this config owns, with its PyTorch shape. */
export function hfTensorShapes(hp: HfHyperparameters): Map<string, number[]> {
  const qDim = hp.heads * hp.headDim;
  const kvDim = hp.kvHeads * hp.headDim;
  const shapes = new Map<string, number[]>([
    ["model.embed_tokens.weight", [hp.vocab, hp.hidden]],
    ["model.norm.weight", [hp.hidden]],
  ]);
  if (!hp.tied) shapes.set("lm_head.weight", [hp.vocab, hp.hidden]);
  for (let l = 0; l < hp.layers; l++) {
    const p = `model.layers.${l}`;
    shapes.set(`${p}.input_layernorm.weight`, [hp.hidden]);
    shapes.set(`${p}.post_attention_layernorm.weight`, [hp.hidden]);
    shapes.set(`${p}.self_attn.q_proj.weight`, [qDim, hp.hidden]);
    shapes.set(`${p}.self_attn.k_proj.weight`, [kvDim, hp.hidden]);
    shapes.set(`${p}.self_attn.v_proj.weight`, [kvDim, hp.hidden]);
    shapes.set(`${p}.self_attn.o_proj.weight`, [hp.hidden, qDim]);
    if (hp.qkvBias) {
      shapes.set(`${p}.self_attn.q_proj.bias`, [qDim]);
      shapes.set(`${p}.self_attn.k_proj.bias`, [kvDim]);
      shapes.set(`${p}.self_attn.v_proj.bias`, [kvDim]);
    }
    if (hp.outputBias) shapes.set(`${p}.self_attn.o_proj.bias`, [hp.hidden]);
    if (hp.qkNorm) {
      shapes.set(`${p}.self_attn.q_norm.weight`, [hp.headDim]);
      shapes.set(`${p}.self_attn.k_norm.weight`, [hp.headDim]);
    }
    shapes.set(`${p}.mlp.gate_proj.weight`, [hp.intermediate, hp.hidden]);
    shapes.set(`${p}.mlp.up_proj.weight`, [hp.intermediate, hp.hidden]);
    shapes.set(`${p}.mlp.down_proj.weight`, [hp.hidden, hp.intermediate]);
  }
  return shapes;
}

/**
 * Seeded random weights for every parameter (test/fixtures' per-tensor streams: matrices
 * N(0, 1/fan_in), norm weights 1 + N(0, 0.1²), biases N(0, 0.1²)), as float32 because that
 * is what a checkpoint stores.
 */
export function randomHfWeights(hp: HfHyperparameters, seed: number): Map<string, Float32Array> {
  const weights = new Map<string, Float32Array>();
  for (const [name, shape] of hfTensorShapes(hp)) weights.set(name, randomTensor(seed, name, shape));
  return weights;
}

/**
 * RoPE inverse frequencies, in float64, for rope_scaling as transformers reads it (`rope_type`,
 * or the older `type`). Base (RoFormer): θ_i = theta^(-2i/d), i < d/2. "linear" (position
 * interpolation) divides every θ_i by the factor, i.e. position p is rotated as p / factor.
 * "llama3" (Llama 3.1): with wavelength λ_i = 2π/θ_i and the original context L, bands
 * λ < L/high_freq_factor keep θ_i, λ > L/low_freq_factor get θ_i / factor, and in between
 * s = (L/λ - low_freq_factor) / (high_freq_factor - low_freq_factor) interpolates
 * (1 - s)·θ_i/factor + s·θ_i, so s = 0 meets the scaled band and s = 1 the kept one.
 */
export function referenceInverseFrequencies(
  headDim: number,
  theta: number,
  scaling: Readonly<Record<string, unknown>> | null,
): Float64Array {
  const half = headDim / 2;
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) out[i] = Math.pow(theta, -(2 * i) / headDim);
  const type = scaling === null ? "default" : (scaling.rope_type ?? scaling.type ?? "default");
  if (type === "default") return out;
  const factor = scaling!.factor as number;
  if (type === "linear") return out.map((f) => f / factor);
  if (type === "llama3") {
    const low = scaling!.low_freq_factor as number;
    const high = scaling!.high_freq_factor as number;
    const original = scaling!.original_max_position_embeddings as number;
    return out.map((f) => {
      const wavelength = (2 * Math.PI) / f;
      if (wavelength < original / high) return f;
      if (wavelength > original / low) return f / factor;
      const s = (original / wavelength - low) / (high - low);
      return (1 - s) * (f / factor) + s * f;
    });
  }
  throw new Error(`reference: rope type ${JSON.stringify(type)} is not modelled`);
}

/** y (rows, out) = x (rows, in) · Wᵀ + b, W (out, in) row-major as PyTorch stores a Linear. */
function linear(x: Float64Array, rows: number, w: Float32Array, out: number, bias?: Float32Array): Float64Array {
  const inDim = w.length / out;
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let sum = bias === undefined ? 0 : bias[o];
      for (let i = 0; i < inDim; i++) sum += x[r * inDim + i] * w[o * inDim + i];
      y[r * out + o] = sum;
    }
  }
  return y;
}

/** RMSNorm over consecutive rows of `weight.length` values: w · x / sqrt(mean(x²) + eps). */
function rmsNorm(x: Float64Array, weight: Float32Array, eps: number): Float64Array {
  const d = weight.length;
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let squares = 0;
    for (let i = 0; i < d; i++) squares += x[r * d + i] ** 2;
    const scale = 1 / Math.sqrt(squares / d + eps);
    for (let i = 0; i < d; i++) y[r * d + i] = weight[i] * x[r * d + i] * scale;
  }
  return y;
}

/**
 * transformers' rotate-half RoPE in place on x (n, heads, headDim) at positions 0..n-1: the
 * pair (x_i, x_{i+d/2}) turns by the angle p·θ_i.
 */
function rotate(x: Float64Array, n: number, heads: number, headDim: number, invFreq: Float64Array): void {
  const half = headDim / 2;
  for (let p = 0; p < n; p++) {
    for (let h = 0; h < heads; h++) {
      const base = (p * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const cos = Math.cos(p * invFreq[i]);
        const sin = Math.sin(p * invFreq[i]);
        const a = x[base + i];
        const b = x[base + half + i];
        x[base + i] = a * cos - b * sin;
        x[base + half + i] = b * cos + a * sin;
      }
    }
  }
}

/**
 * Scaled dot-product attention with grouped-query heads (query head h reads key/value head
 * h / (heads / kvHeads), transformers' repeat_kv), the causal mask and the sliding window.
 */
function attention(q: Float64Array, k: Float64Array, v: Float64Array, n: number, hp: HfHyperparameters): Float64Array {
  const { heads, kvHeads, headDim } = hp;
  const group = heads / kvHeads;
  const out = new Float64Array(n * heads * headDim);
  const scores = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    const first = hp.slidingWindow === null ? 0 : Math.max(0, t - hp.slidingWindow + 1);
    for (let h = 0; h < heads; h++) {
      const kvHead = Math.floor(h / group);
      const qRow = (t * heads + h) * headDim;
      let max = -Infinity;
      for (let j = first; j <= t; j++) {
        const kRow = (j * kvHeads + kvHead) * headDim;
        let dot = 0;
        for (let i = 0; i < headDim; i++) dot += q[qRow + i] * k[kRow + i];
        scores[j] = dot / Math.sqrt(headDim);
        max = Math.max(max, scores[j]);
      }
      let total = 0;
      for (let j = first; j <= t; j++) {
        scores[j] = Math.exp(scores[j] - max);
        total += scores[j];
      }
      for (let j = first; j <= t; j++) {
        const weight = scores[j] / total;
        const vRow = (j * kvHeads + kvHead) * headDim;
        for (let i = 0; i < headDim; i++) out[qRow + i] += weight * v[vRow + i];
      }
    }
  }
  return out;
}

/** Logits of every position (n, vocab) for `tokens` at positions 0..n-1. */
export function referenceLogits(
  hp: HfHyperparameters,
  weights: ReadonlyMap<string, Float32Array>,
  tokens: readonly number[],
): Float64Array {
  const w = (name: string): Float32Array => {
    const tensor = weights.get(name);
    if (tensor === undefined) throw new Error(`reference: missing weight ${name}`);
    return tensor;
  };
  const n = tokens.length;
  const { hidden, heads, kvHeads, headDim } = hp;
  const invFreq = referenceInverseFrequencies(headDim, hp.theta, hp.ropeScaling);
  const embedding = w("model.embed_tokens.weight");
  const x = new Float64Array(n * hidden); // (n, hidden), the residual stream
  tokens.forEach((token, t) => x.set(embedding.subarray(token * hidden, (token + 1) * hidden), t * hidden));

  for (let l = 0; l < hp.layers; l++) {
    const p = `model.layers.${l}.`;
    const bias = (name: string) => weights.get(`${p}self_attn.${name}.bias`);
    const h = rmsNorm(x, w(`${p}input_layernorm.weight`), hp.eps);
    let q = linear(h, n, w(`${p}self_attn.q_proj.weight`), heads * headDim, hp.qkvBias ? w(`${p}self_attn.q_proj.bias`) : undefined);
    let k = linear(h, n, w(`${p}self_attn.k_proj.weight`), kvHeads * headDim, hp.qkvBias ? w(`${p}self_attn.k_proj.bias`) : undefined);
    const v = linear(h, n, w(`${p}self_attn.v_proj.weight`), kvHeads * headDim, hp.qkvBias ? w(`${p}self_attn.v_proj.bias`) : undefined);
    if (hp.qkNorm) {
      q = rmsNorm(q, w(`${p}self_attn.q_norm.weight`), hp.eps);
      k = rmsNorm(k, w(`${p}self_attn.k_norm.weight`), hp.eps);
    }
    rotate(q, n, heads, headDim, invFreq);
    rotate(k, n, kvHeads, headDim, invFreq);
    const attended = attention(q, k, v, n, hp);
    const o = linear(attended, n, w(`${p}self_attn.o_proj.weight`), hidden, hp.outputBias ? bias("o_proj") : undefined);
    for (let i = 0; i < x.length; i++) x[i] += o[i];

    const h2 = rmsNorm(x, w(`${p}post_attention_layernorm.weight`), hp.eps);
    const gate = linear(h2, n, w(`${p}mlp.gate_proj.weight`), hp.intermediate);
    const up = linear(h2, n, w(`${p}mlp.up_proj.weight`), hp.intermediate);
    for (let i = 0; i < gate.length; i++) gate[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i]; // SiLU(gate) · up
    const down = linear(gate, n, w(`${p}mlp.down_proj.weight`), hidden);
    for (let i = 0; i < x.length; i++) x[i] += down[i];
  }
  const normed = rmsNorm(x, w("model.norm.weight"), hp.eps);
  return linear(normed, n, hp.tied ? embedding : w("lm_head.weight"), hp.vocab);
}
