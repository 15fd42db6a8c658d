/**
 * karpathy/llama2.c checkpoint importer (legacy version-0 `.bin`, as read by run.c
 * read_checkpoint/memory_map_weights): 7 int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len; negative vocab_size = unshared classifier), then fp32
 * token_embedding_table, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
 * freq_cis_real/imag (skipped) and wcls when unshared. Tensors get HF names; wq/wk rows are
 * permuted from Meta's interleaved RoPE to HF's rotate-half (convert_llama_weights_to_hf.py).
 */

import { FormatError, UnsupportedModelError } from "../errors.ts";
import type { ModelSource, RawConfig, TensorEntry, TokenizerFiles } from "../models/types.ts";
import { loadTokenizerFile } from "../tokenizer/load-file.ts";
import { ByteCursor, type ByteSource, fileSource, readRange } from "./byte-source.ts";
import { decodeF32 } from "./dtypes.ts";
import { permuteMetaToHf } from "./rope-permute.ts";

export const LLAMA2C_HEADER_BYTES = 28;

export interface Llama2cHeader {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  /** Always positive; `sharedClassifier` carries the sign. */
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
}

/** Reads and sanity-checks the 28-byte header (positive sizes, heads dividing dim). */
export function readLlama2cHeader(src: ByteSource): Llama2cHeader {
  const c = new ByteCursor(src, 0);
  c.need(LLAMA2C_HEADER_BYTES, "llama2.c header (7 int32)");
  const magic = src.read(0, 4);
  if (String.fromCharCode(...magic) === "ak42") {
    throw new UnsupportedModelError(`${src.file} is a llama2.c version 1/2 checkpoint (magic "ak42")`, [
      "llama2.c legacy version-0 .bin (export.py --version 0)",
    ]);
  }
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = Array.from({ length: 7 }, () => c.i32());
  const h = {
    dim: dim!,
    hiddenDim: hiddenDim!,
    nLayers: nLayers!,
    nHeads: nHeads!,
    nKvHeads: nKvHeads!,
    vocabSize: Math.abs(vocab!),
    seqLen: seqLen!,
    sharedClassifier: vocab! > 0,
  };
  const bad = (msg: string, offset: number) =>
    new FormatError(`${msg}; not a llama2.c checkpoint or corrupt`, { file: src.file, offset });
  const fields = ["dim", "hiddenDim", "nLayers", "nHeads", "nKvHeads", "vocabSize", "seqLen"] as const;
  for (const [i, key] of fields.entries()) {
    const v = h[key];
    const offset = i * 4;
    if (v < 1 || v > 1 << 20) throw bad(`header field ${key} = ${v} is out of range [1, ${1 << 20}]`, offset);
  }
  if (h.dim % h.nHeads !== 0 || (h.dim / h.nHeads) % 2 !== 0) {
    throw bad(`dim ${h.dim} does not split into ${h.nHeads} heads of even size`, 0);
  }
  if (h.nHeads % h.nKvHeads !== 0) throw bad(`n_heads ${h.nHeads} is not a multiple of n_kv_heads ${h.nKvHeads}`, 16);
  return h;
}

interface Slot {
  name: string;
  shape: number[];
  offset: number;
  /** Heads for the rotary row permutation (wq/wk only). */
  ropeHeads?: number;
}

/** Byte layout of every tensor, in file order; also returns the expected file size. */
export function llama2cLayout(h: Llama2cHeader): { slots: Slot[]; expectedSize: number } {
  const headDim = h.dim / h.nHeads;
  const kvDim = headDim * h.nKvHeads;
  const slots: Slot[] = [];
  let offset = LLAMA2C_HEADER_BYTES;
  const add = (name: string, shape: number[], ropeHeads?: number) => {
    slots.push({ name, shape, offset, ropeHeads });
    offset += shape.reduce((a, b) => a * b, 1) * 4;
  };
  const perLayer = (suffix: string, shape: number[], ropeHeads?: number) => {
    for (let l = 0; l < h.nLayers; l++) add(`model.layers.${l}.${suffix}`, shape, ropeHeads);
  };
  add("model.embed_tokens.weight", [h.vocabSize, h.dim]);
  perLayer("input_layernorm.weight", [h.dim]);
  perLayer("self_attn.q_proj.weight", [h.dim, h.dim], h.nHeads);
  perLayer("self_attn.k_proj.weight", [kvDim, h.dim], h.nKvHeads);
  perLayer("self_attn.v_proj.weight", [kvDim, h.dim]);
  perLayer("self_attn.o_proj.weight", [h.dim, h.dim]);
  perLayer("post_attention_layernorm.weight", [h.dim]);
  perLayer("mlp.gate_proj.weight", [h.hiddenDim, h.dim]);
  perLayer("mlp.down_proj.weight", [h.dim, h.hiddenDim]);
  perLayer("mlp.up_proj.weight", [h.hiddenDim, h.dim]);
  add("model.norm.weight", [h.dim]);
  offset += h.seqLen * headDim * 4; // freq_cis_real and freq_cis_imag: (seqLen, headDim/2) each
  if (!h.sharedClassifier) add("lm_head.weight", [h.vocabSize, h.dim]);
  return { slots, expectedSize: offset };
}

/** HF-style config.json for a llama2.c header (run.c: rms eps 1e-5, RoPE base 10000, BOS 1, EOS 2). */
export function llama2cConfig(h: Llama2cHeader): RawConfig {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: h.dim,
    intermediate_size: h.hiddenDim,
    num_hidden_layers: h.nLayers,
    num_attention_heads: h.nHeads,
    num_key_value_heads: h.nKvHeads,
    vocab_size: h.vocabSize,
    max_position_embeddings: h.seqLen,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: "silu",
    tie_word_embeddings: h.sharedClassifier,
    bos_token_id: 1,
    eos_token_id: 2,
  };
}

export interface Llama2cImportOptions {
  /** A tokenizer file (llama2.c tokenizer.bin, tokenizer.json, SentencePiece .model) to convert. */
  tokenizer?: string;
}

/** Imports a llama2.c version-0 checkpoint; the file size must match the header exactly. */
export function importLlama2c(path: string, options: Llama2cImportOptions = {}): ModelSource {
  const src = fileSource(path);
  const header = readLlama2cHeader(src);
  const { slots, expectedSize } = llama2cLayout(header);
  if (src.size !== expectedSize) {
    const shape = `dim ${header.dim}, ${header.nLayers} layers, vocab ${header.vocabSize}`;
    if (src.size > expectedSize) {
      throw new FormatError(
        `file is ${src.size} bytes but the header (${shape}) implies ${expectedSize}; not a version-0 llama2.c .bin?`,
        { file: path, offset: expectedSize },
      );
    }
    const cut = slots.find((s) => s.offset + numel(s) * 4 > src.size);
    throw new FormatError(
      `file is truncated: ${src.size} bytes but the header (${shape}) implies ${expectedSize}`,
      { file: path, tensor: cut?.name ?? "freq_cis", offset: cut?.offset ?? src.size },
    );
  }
  const tensors = new Map<string, TensorEntry>();
  for (const slot of slots) {
    tensors.set(slot.name, {
      name: slot.name,
      shape: slot.shape,
      dtype: "F32",
      read(): Float32Array {
        const n = numel(slot);
        const data = decodeF32(readRange(src, slot.offset, n * 4, slot.name), n);
        return slot.ropeHeads === undefined ? data : permuteMetaToHf(data, slot.ropeHeads, slot.shape[1]!);
      },
    });
  }
  const tokenizer: TokenizerFiles | undefined = options.tokenizer === undefined ? undefined : loadTokenizerFile(options.tokenizer);
  return {
    path,
    format: "llama2c",
    config: llama2cConfig(header),
    tensors,
    tokenizer,
    chatTemplates: {},
    generationConfig: { bos_token_id: 1, eos_token_id: 2 },
  };
}

function numel(slot: Slot): number {
  return slot.shape.reduce((a, b) => a * b, 1);
}
