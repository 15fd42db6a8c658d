/**
 * Tensor names between llama.cpp's GGUF convention (llama.cpp gguf-py constants.py:
 * token_embd, blk.N.attn_q, ...) and Hugging Face's (model.embed_tokens,
 * model.layers.N.self_attn.q_proj, ...), for the llama / qwen2 / qwen3 families.
 */

const GLOBAL: Readonly<Record<string, string>> = {
  token_embd: "model.embed_tokens",
  output_norm: "model.norm",
  output: "lm_head",
};

const PER_LAYER: Readonly<Record<string, string>> = {
  attn_norm: "input_layernorm",
  attn_q: "self_attn.q_proj",
  attn_k: "self_attn.k_proj",
  attn_v: "self_attn.v_proj",
  attn_output: "self_attn.o_proj",
  attn_q_norm: "self_attn.q_norm",
  attn_k_norm: "self_attn.k_norm",
  ffn_norm: "post_attention_layernorm",
  ffn_gate: "mlp.gate_proj",
  ffn_up: "mlp.up_proj",
  ffn_down: "mlp.down_proj",
};

const GLOBAL_INV = Object.fromEntries(Object.entries(GLOBAL).map(([k, v]) => [v, k]));
const PER_LAYER_INV = Object.fromEntries(Object.entries(PER_LAYER).map(([k, v]) => [v, k]));

const GGUF_LAYER = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/;
const GGUF_GLOBAL = /^([a-z_]+)\.(weight|bias)$/;
const HF_LAYER = /^model\.layers\.(\d+)\.([a-z_.]+)\.(weight|bias)$/;
const HF_GLOBAL = /^([a-z_.]+)\.(weight|bias)$/;

/** HF name of a GGUF tensor, or undefined when it has no HF counterpart (e.g. rope_freqs). */
export function ggufToHfName(name: string): string | undefined {
  const layer = GGUF_LAYER.exec(name);
  if (layer !== null) {
    const hf = PER_LAYER[layer[2]!];
    return hf === undefined ? undefined : `model.layers.${layer[1]}.${hf}.${layer[3]}`;
  }
  const global = GGUF_GLOBAL.exec(name);
  if (global !== null) {
    const hf = GLOBAL[global[1]!];
    return hf === undefined ? undefined : `${hf}.${global[2]}`;
  }
  return undefined;
}

/** GGUF name of an HF tensor, or undefined when llama.cpp has no name for it. */
export function hfToGgufName(name: string): string | undefined {
  const layer = HF_LAYER.exec(name);
  if (layer !== null) {
    const gg = PER_LAYER_INV[layer[2]!];
    return gg === undefined ? undefined : `blk.${layer[1]}.${gg}.${layer[3]}`;
  }
  const global = HF_GLOBAL.exec(name);
  if (global !== null) {
    const gg = GLOBAL_INV[global[1]!];
    return gg === undefined ? undefined : `${gg}.${global[2]}`;
  }
  return undefined;
}

/** Which rotary projection a GGUF tensor is, for the llama q/k row permutation. */
export function ggufRotaryRole(name: string): "q" | "k" | undefined {
  const layer = GGUF_LAYER.exec(name);
  if (layer === null) return undefined;
  return layer[2] === "attn_q" ? "q" : layer[2] === "attn_k" ? "k" : undefined;
}
