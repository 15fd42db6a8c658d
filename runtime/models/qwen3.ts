/**
 * Qwen3 dense: the Llama decoder plus an RMSNorm over each head of q and k before RoPE
 * (q_norm, k_norm of size head_dim), no q/k/v bias by default, and an explicit head_dim that
 * may differ from hidden_size / num_heads (transformers' modeling_qwen3.py).
 */
import type { RawConfig } from "./types.ts";
import { type DecoderArgs, decoderForward, decoderLayer, expectedTensors, normalizeDecoderConfig, projectKv, stateLayout } from "./llama.ts";

export type Qwen3Args = DecoderArgs;

export function normalizeConfig(raw: RawConfig): Qwen3Args {
  // A config without head_dim means 128 (Qwen3Config's default), not hidden_size / heads.
  return normalizeDecoderConfig(raw, {
    attentionBias: false,
    biasOnOutput: true,
    qkNorm: true,
    defaultTheta: 1000000,
    defaultEps: 1e-6,
    defaultHeadDim: 128,
  });
}

export { decoderLayer, expectedTensors, projectKv, stateLayout };
export const forward = decoderForward;
