/**
 * Random-weight GGUF models laid out as llama.cpp's converter writes them (gguf-py tensor
 * names and metadata keys; llama q/k rows in Meta's interleaved order), with each matrix in
 * the ggml type a caller picks, encoded by the tests' own block quantisers (block-writer.ts).
 * Small synthetic vocabularies keep the files small: a SentencePiece one for llama and mistral
 * (byte fallback) and a byte-level BPE one for qwen2/qwen3. A "mistral" spec is written as
 * llama.cpp writes Mistral: architecture "llama" with llama.attention.sliding_window.
 */
import { hfToGgufName } from "../../runtime/import/gguf-names.ts";
import { GgufValueType } from "../../runtime/import/gguf-types.ts";
import { ggufValue, type GgufWriteOptions, type GgufWriteTensor, writeGguf } from "../../quantizer/export/gguf-write.ts";
import { permuteHfToMeta } from "../../runtime/import/rope-permute.ts";
import { BYTE_TO_UNICODE } from "../../runtime/tokenizer/byte-level.ts";
import type { ModelSource, TensorEntry } from "../../runtime/models/types.ts";
import { resolveModel } from "../../runtime/models/registry.ts";
import { createRandomModel, type RandomModelSpec } from "../fixtures/random-model.ts";
import { encodeBlocks } from "./block-writer.ts";
import { specDecode } from "./spec-decoders.ts";

/** Synthetic tokenizer metadata; returns it with its vocabulary size. */
function vocabulary(arch: string): { metadata: Record<string, unknown>; size: number } {
  if (arch === "llama" || arch === "mistral") {
    const words = ["▁the", "▁a", "▁and", "▁cat", "▁sat", "▁on", "▁mat", "▁dog", "▁ran", "he", "at", "an", "▁"];
    const letters = "abcdefghijklmnopqrstuvwxyz".split("");
    const tokens = ["<unk>", "<s>", "</s>", ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`), ...letters, ...words];
    const types = tokens.map((t, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1));
    const scores = tokens.map((t, i) => (i < 259 ? 0 : -(i - 259) / 10 + (t.length > 1 ? 5 : 0)));
    return {
      size: tokens.length,
      metadata: {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": ggufValue(GgufValueType.ARRAY, scores, GgufValueType.FLOAT32),
        "tokenizer.ggml.token_type": ggufValue(GgufValueType.ARRAY, types, GgufValueType.INT32),
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.add_bos_token": true,
        "tokenizer.chat_template": "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant]",
      },
    };
  }
  const tokens = [...BYTE_TO_UNICODE, "Ġt", "he", "Ġthe", "<|endoftext|>", "<|im_start|>", "<|im_end|>"];
  const types = tokens.map((_, i) => (i >= tokens.length - 3 ? 3 : 1));
  return {
    size: tokens.length,
    metadata: {
      "tokenizer.ggml.model": "gpt2",
      "tokenizer.ggml.pre": "qwen2",
      "tokenizer.ggml.tokens": tokens,
      "tokenizer.ggml.token_type": ggufValue(GgufValueType.ARRAY, types, GgufValueType.INT32),
      "tokenizer.ggml.merges": ["Ġ t", "h e", "Ġt he"],
      "tokenizer.ggml.bos_token_id": tokens.length - 3,
      "tokenizer.ggml.eos_token_id": tokens.length - 1,
      "tokenizer.ggml.add_bos_token": false,
      "tokenizer.chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n",
    },
  };
}

export interface GgufModelOptions {
  /** ggml type of each matrix (by GGUF name); 1-D tensors are always F32. */
  readonly typeOf: (ggufName: string, shape: readonly number[]) => string;
  /** Multiplies the output head so greedy decoding has clear margins. */
  readonly headScale?: number;
}

/**
 * Writes a random `spec` model as a GGUF at `path`. Returns the vocabulary size and the model
 * the GGUF stands for as fp32 in Hugging Face row order, computed without the importer: the
 * tests' block decoder on blocks of the HF rows (blocks run along rows, so quantising Meta-
 * ordered rows and un-permuting them gives exactly these), for an independent reference.
 */
export function writeGgufModel(path: string, spec: Omit<RandomModelSpec, "vocab">, options: GgufModelOptions): { vocab: number; reference: ModelSource } {
  const vocab = vocabulary(spec.arch);
  const source = createRandomModel({ ...spec, vocab: vocab.size });
  const config = source.config;
  const arch = spec.arch === "mistral" ? "llama" : spec.arch;
  const heads = spec.heads;
  const kvHeads = spec.kvHeads ?? spec.heads;
  const { headDim } = resolveModel(config).args;
  const tensors: GgufWriteTensor[] = [];
  const dequantised = new Map<string, TensorEntry>();
  for (const [name, entry] of source.tensors) {
    const ggName = hfToGgufName(name)!;
    let data = entry.read();
    if (name === "lm_head.weight" && options.headScale !== undefined) data = data.map((v) => v * options.headScale!);
    const cols = entry.shape.length > 1 ? entry.shape[1]! : 1;
    const storedType = entry.shape.length === 2 ? options.typeOf(ggName, entry.shape) : "F32";
    const hfValues = storedType === "F32" ? data : specDecode(storedType, encodeBlocks(storedType, data));
    dequantised.set(name, { name, shape: entry.shape, dtype: storedType, read: () => hfValues });
    // llama.cpp's converter stores llama q/k (weights and biases) in Meta's interleaved RoPE order.
    if (arch === "llama" && /attn_q\.(weight|bias)$/.test(ggName)) data = permuteHfToMeta(data, heads, cols);
    if (arch === "llama" && /attn_k\.(weight|bias)$/.test(ggName)) data = permuteHfToMeta(data, kvHeads, cols);
    const type = storedType;
    tensors.push(type === "F32" ? { name: ggName, shape: entry.shape, data, dtype: type } : { name: ggName, shape: entry.shape, raw: { type, bytes: encodeBlocks(type, data) } });
  }
  const p = `${arch}.`;
  const options_: GgufWriteOptions = {
    metadata: {
      "general.architecture": arch,
      "general.name": `random ${arch}`,
      [`${p}context_length`]: config.max_position_embeddings,
      [`${p}embedding_length`]: spec.hidden,
      [`${p}feed_forward_length`]: spec.intermediate,
      [`${p}block_count`]: spec.layers,
      [`${p}attention.head_count`]: heads,
      [`${p}attention.head_count_kv`]: kvHeads,
      [`${p}attention.layer_norm_rms_epsilon`]: ggufValue(GgufValueType.FLOAT32, config.rms_norm_eps),
      [`${p}rope.freq_base`]: ggufValue(GgufValueType.FLOAT32, config.rope_theta),
      // The head size the weights have (Qwen3Config defaults it to 128, not hidden / heads), as
      // llama.cpp's converter states it.
      [`${p}rope.dimension_count`]: headDim,
      [`${p}attention.key_length`]: headDim,
      [`${p}attention.value_length`]: headDim,
      ...(spec.slidingWindow === undefined ? {} : { [`${p}attention.sliding_window`]: spec.slidingWindow }),
      ...vocab.metadata,
    },
    tensors,
  };
  writeGguf(path, options_);
  return { vocab: vocab.size, reference: { ...source, path: `${path} (dequantised by the tests)`, tensors: dequantised } };
}

/** llama.cpp's Q4_K_M mix (llama-quantize): attn_v, ffn_down and output in Q6_K, the rest Q4_K. */
export function q4KMTypes(ggufName: string): string {
  return /attn_v|ffn_down|^output\./.test(ggufName) ? "Q6_K" : "Q4_K";
}
