/**
 * Qwen2 / Qwen2.5: the Llama decoder with biases on q_proj, k_proj and v_proj
 * (transformers' modeling_qwen2.py). Only the config differs, so the forward is Llama's.
 */
import type { RawConfig } from "./types.ts";
import { type DecoderArgs, decoderForward, decoderLayer, expectedTensors, normalizeDecoderConfig, projectKv, stateLayout } from "./llama.ts";

export type Qwen2Args = DecoderArgs;

export function normalizeConfig(raw: RawConfig): Qwen2Args {
  return normalizeDecoderConfig(raw, { attentionBias: true, biasOnOutput: false, qkNorm: false, defaultTheta: 10000, defaultEps: 1e-6 });
}

export { decoderLayer, expectedTensors, projectKv, stateLayout };
export const forward = decoderForward;
