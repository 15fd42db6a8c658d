/**
 * Small deterministic models for the importer tests: seeded values and a one-layer GGUF
 * laid out as llama.cpp writes it (q/k rows in Meta order for "llama").
 */

import { GgufValueType } from "../../runtime/import/gguf-types.ts";
import { ggufValue, type GgufWriteDtype, type GgufWriteOptions } from "../../quantizer/export/gguf-write.ts";
import { permuteHfToMeta } from "../../runtime/import/rope-permute.ts";

/** Deterministic values in [-1, 1) from a 32-bit LCG. */
export function seeded(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

export const HIDDEN = 32;
export const HEADS = 4;
export const KV_HEADS = 2;
export const HEAD_DIM = HIDDEN / HEADS;
export const FFN = 64;
export const VOCAB = 16;

/** HF-order weights of a one-layer model, keyed by GGUF name, with PyTorch shapes. */
export function tinyWeights(): Map<string, { shape: number[]; data: Float32Array }> {
  const shapes: [string, number[]][] = [
    ["token_embd.weight", [VOCAB, HIDDEN]],
    ["blk.0.attn_norm.weight", [HIDDEN]],
    ["blk.0.attn_q.weight", [HIDDEN, HIDDEN]],
    ["blk.0.attn_k.weight", [KV_HEADS * HEAD_DIM, HIDDEN]],
    ["blk.0.attn_v.weight", [KV_HEADS * HEAD_DIM, HIDDEN]],
    ["blk.0.attn_output.weight", [HIDDEN, HIDDEN]],
    ["blk.0.ffn_norm.weight", [HIDDEN]],
    ["blk.0.ffn_gate.weight", [FFN, HIDDEN]],
    ["blk.0.ffn_up.weight", [FFN, HIDDEN]],
    ["blk.0.ffn_down.weight", [HIDDEN, FFN]],
    ["output_norm.weight", [HIDDEN]],
  ];
  return new Map(shapes.map(([name, shape], i) => [name, { shape, data: seeded(shape.reduce((a, b) => a * b, 1), i + 1) }]));
}

/** A GGUF of the tiny model as llama.cpp would write it (q/k permuted for llama). */
export function tinyGguf(arch: string, dtype: GgufWriteDtype = "F32", extra: Record<string, unknown> = {}): GgufWriteOptions {
  const tensors = [...tinyWeights()].map(([name, { shape, data }]) => {
    let stored = data;
    if (arch === "llama" && name.endsWith("attn_q.weight")) stored = permuteHfToMeta(data, HEADS, HIDDEN);
    if (arch === "llama" && name.endsWith("attn_k.weight")) stored = permuteHfToMeta(data, KV_HEADS, HIDDEN);
    return { name, shape, data: stored, dtype: shape.length === 2 ? dtype : ("F32" as const) };
  });
  return {
    metadata: {
      "general.architecture": arch,
      [`${arch}.embedding_length`]: HIDDEN,
      [`${arch}.feed_forward_length`]: FFN,
      [`${arch}.block_count`]: 1,
      [`${arch}.attention.head_count`]: HEADS,
      [`${arch}.attention.head_count_kv`]: KV_HEADS,
      [`${arch}.attention.layer_norm_rms_epsilon`]: ggufValue(GgufValueType.FLOAT32, 1e-6),
      [`${arch}.rope.freq_base`]: ggufValue(GgufValueType.FLOAT32, 500000),
      [`${arch}.context_length`]: 128,
      "tokenizer.ggml.bos_token_id": 1,
      "tokenizer.ggml.eos_token_id": 2,
      "tokenizer.chat_template": "{{ messages }}",
      "tokenizer.chat_template.tool_use": "{{ tools }}",
      ...extra,
    },
    tensors,
  };
}
