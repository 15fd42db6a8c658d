/**
 * Turns a parsed GGUF into a ModelSource: llama.cpp tensor names → Hugging Face names, the
 * `<arch>.*` metadata → an HF-style config.json, and, for `general.architecture == "llama"`,
 * the q/k rows back from llama.cpp's interleaved RoPE order to HF's rotate-half order
 * (convert_hf_to_gguf.py LlamaModel.permute is undone; qwen2/qwen3 are never permuted).
 * A llama-3 `rope_freqs.weight` is turned back into HF's `rope_scaling` when it matches.
 */

import { ConfigError, FormatError, UnsupportedModelError } from "../errors.ts";
import type { ModelSource, RawConfig, TensorEntry } from "../models/types.ts";
import { tokenizerFromGguf } from "../tokenizer/from-gguf.ts";
import { type GgufFile, type GgufTensorInfo, type GgufValue, readGguf, readGgufTensor, readGgufTensorBytes } from "./gguf.ts";
import { ggufRotaryRole, ggufToHfName } from "./gguf-names.ts";
import { DEQUANTIZABLE, isDequantizable } from "./ggml-dequantize.ts";
import { metaToHfRowOrder, reorderRows } from "./rope-permute.ts";

/**
 * The stored blocks behind a GGUF tensor entry, for transcoding (quantizer/gguf-transcode.ts):
 * `rows` x `cols` in PyTorch order as stored, and, for llama q/k, the stored row each HF row
 * comes from (what `read()` applies after dequantising).
 */
export interface GgmlBlocks {
  readonly type: string;
  readonly rows: number;
  readonly cols: number;
  readonly rowOrder?: Int32Array;
  bytes(): Uint8Array;
}

/** A GGUF tensor entry: a TensorEntry that also exposes its blocks. */
export interface GgufTensorEntry extends TensorEntry {
  readonly ggml: GgmlBlocks;
}

/** The blocks behind an entry imported from a GGUF, or undefined for other sources. */
export function ggmlBlocksOf(entry: TensorEntry): GgmlBlocks | undefined {
  return "ggml" in entry ? (entry as GgufTensorEntry).ggml : undefined;
}

export const SUPPORTED_GGUF_ARCHITECTURES = ["llama", "qwen2", "qwen3"] as const;

const HF_ARCHITECTURE: Readonly<Record<string, string>> = {
  llama: "LlamaForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  qwen3: "Qwen3ForCausalLM",
};

function num(gguf: GgufFile, key: string, required: boolean): number | undefined {
  const v = gguf.metadata.get(key);
  if (v === undefined) {
    if (required) throw new ConfigError(`GGUF metadata lacks ${key} (file ${gguf.file}); the file is not a complete model`, { key });
    return undefined;
  }
  if (typeof v !== "number") {
    const what = Array.isArray(v) ? "a per-layer list" : JSON.stringify(String(v));
    throw new UnsupportedModelError(`GGUF metadata ${key} is ${what} (file ${gguf.file}); crumb needs one number`, [
      "a scalar value",
    ]);
  }
  return v;
}

/** Matches llama.cpp's llama-3 rope_freqs (convert_hf_to_gguf.py) against HF's llama3 rope_scaling. */
function llama3RopeScaling(factors: Float32Array, theta: number, headDim: number): RawConfig | undefined {
  const factor = factors.reduce((a, b) => Math.max(a, b), 0);
  const [low, high, original] = [1, 4, 8192];
  for (let i = 0; i < factors.length; i++) {
    const wavelen = (2 * Math.PI) / (1 / theta ** ((2 * i) / headDim));
    let expected: number;
    if (wavelen < original / high) expected = 1;
    else if (wavelen > original / low) expected = factor;
    else {
      const smooth = (original / wavelen - low) / (high - low);
      expected = 1 / ((1 - smooth) / factor + smooth);
    }
    if (Math.abs(expected - factors[i]!) > 1e-3 * expected) return undefined;
  }
  return { rope_type: "llama3", factor, low_freq_factor: low, high_freq_factor: high, original_max_position_embeddings: original };
}

function ropeScaling(gguf: GgufFile, arch: string): RawConfig | undefined {
  const type = gguf.metadata.get(`${arch}.rope.scaling.type`);
  const factor = gguf.metadata.get(`${arch}.rope.scaling.factor`) ?? gguf.metadata.get(`${arch}.rope.scale_linear`);
  if (type === undefined && typeof factor === "number" && factor !== 1) return { type: "linear", rope_type: "linear", factor };
  if (type === undefined || type === "none") return undefined;
  const out: RawConfig = { type, rope_type: type, factor };
  const original = gguf.metadata.get(`${arch}.rope.scaling.original_context_length`);
  if (original !== undefined) out["original_max_position_embeddings"] = original;
  return out;
}

/**
 * Token ids that end generation, as llama.cpp collects them: the EOS and the end-of-turn /
 * end-of-message ids (tokenizer.ggml.eot_token_id, eom_token_id), once each; one id stays a
 * number, as HF configs write it.
 */
function endOfGeneration(gguf: GgufFile): number | number[] | undefined {
  const ids: number[] = [];
  for (const key of ["eos", "eot", "eom"]) {
    const id = gguf.metadata.get(`tokenizer.ggml.${key}_token_id`);
    if (typeof id === "number" && id >= 0 && !ids.includes(id)) ids.push(id);
  }
  return ids.length === 0 ? undefined : ids.length === 1 ? ids[0] : ids;
}

/** The HF-style config.json equivalent of a GGUF's metadata. */
export function ggufConfig(gguf: GgufFile): RawConfig {
  const arch = String(gguf.metadata.get("general.architecture"));
  const p = `${arch}.`;
  const heads = num(gguf, `${p}attention.head_count`, true)!;
  const embd = gguf.tensorInfos.find((t) => t.name === "token_embd.weight");
  const tokens = gguf.metadata.get("tokenizer.ggml.tokens");
  const vocab = embd?.shape[0] ?? num(gguf, `${p}vocab_size`, false) ?? (Array.isArray(tokens) ? tokens.length : undefined);
  const config: RawConfig = {
    architectures: [HF_ARCHITECTURE[arch]],
    model_type: arch,
    hidden_size: num(gguf, `${p}embedding_length`, true),
    intermediate_size: num(gguf, `${p}feed_forward_length`, true),
    num_hidden_layers: num(gguf, `${p}block_count`, true),
    num_attention_heads: heads,
    num_key_value_heads: num(gguf, `${p}attention.head_count_kv`, false) ?? heads,
    rms_norm_eps: num(gguf, `${p}attention.layer_norm_rms_epsilon`, false),
    rope_theta: num(gguf, `${p}rope.freq_base`, false),
    max_position_embeddings: num(gguf, `${p}context_length`, false),
    head_dim: num(gguf, `${p}attention.key_length`, false),
    vocab_size: vocab,
    tie_word_embeddings: !gguf.tensorInfos.some((t) => t.name === "output.weight"),
    attention_bias: gguf.tensorInfos.some((t) => t.name === "blk.0.attn_q.bias"),
    bos_token_id: gguf.metadata.get("tokenizer.ggml.bos_token_id"),
    eos_token_id: endOfGeneration(gguf),
    rope_scaling: ropeScaling(gguf, arch),
    sliding_window: num(gguf, `${p}attention.sliding_window`, false),
  };
  const rotary = num(gguf, `${p}rope.dimension_count`, false);
  const headDim = (config["head_dim"] as number | undefined) ?? (config["hidden_size"] as number) / heads;
  if (rotary !== undefined && rotary !== headDim) {
    throw new UnsupportedModelError(
      `GGUF ${p}rope.dimension_count is ${rotary} but the head size is ${headDim} (file ${gguf.file}): partial rotary embeddings are not implemented`,
      ["rope.dimension_count equal to the head size"],
    );
  }
  const ropeFreqs = gguf.tensorInfos.find((t) => t.name === "rope_freqs.weight");
  if (ropeFreqs !== undefined) {
    const scaling = llama3RopeScaling(readGgufTensor(gguf, ropeFreqs), (config["rope_theta"] as number) ?? 10000, headDim);
    if (scaling === undefined) {
      throw new UnsupportedModelError(`rope_freqs.weight in ${gguf.file} does not match llama-3 rope scaling`, [
        "llama3 rope_freqs (low 1, high 4, original context 8192)",
      ]);
    }
    config["rope_scaling"] = scaling;
  }
  // llama.cpp reads a missing key_length as n_embd / n_head; Qwen3Config's default (128)
  // differs, so a qwen3 config states it.
  if (arch === "qwen3") config["head_dim"] ??= (config["hidden_size"] as number) / heads;
  for (const key of Object.keys(config)) if (config[key] === undefined) delete config[key];
  return config;
}

function ggufEntry(gguf: GgufFile, info: GgufTensorInfo, name: string, config: RawConfig, arch: string): GgufTensorEntry {
  const role = arch === "llama" ? ggufRotaryRole(info.name) : undefined;
  const heads = role === "q" ? (config["num_attention_heads"] as number) : (config["num_key_value_heads"] as number);
  if (role !== undefined && (info.shape[0]! % heads !== 0 || (info.shape[0]! / heads) % 2 !== 0)) {
    throw new FormatError(`${info.shape[0]} rows cannot be split into ${heads} heads of even size`, {
      file: gguf.file,
      tensor: info.name,
      offset: info.offset,
    });
  }
  const rows = info.shape[0]!;
  const cols = info.shape.slice(1).reduce((a, b) => a * b, 1);
  const rowOrder = role === undefined ? undefined : metaToHfRowOrder(rows, heads);
  return {
    name,
    shape: info.shape,
    dtype: info.type.name,
    read(): Float32Array {
      const data = readGgufTensor(gguf, info);
      return rowOrder === undefined ? data : reorderRows(data, rowOrder, cols);
    },
    ggml: { type: info.type.name, rows, cols, rowOrder, bytes: () => readGgufTensorBytes(gguf, info) },
  };
}

/** Named chat templates from `tokenizer.chat_template` and `tokenizer.chat_template.<name>`. */
function ggufChatTemplates(metadata: Map<string, GgufValue>): Record<string, string> {
  const out: Record<string, string> = {};
  const main = metadata.get("tokenizer.chat_template");
  if (typeof main === "string") out["default"] = main;
  for (const [key, value] of metadata) {
    const prefix = "tokenizer.chat_template.";
    if (key.startsWith(prefix) && typeof value === "string") out[key.slice(prefix.length)] = value;
  }
  return out;
}

/** Builds a ModelSource from an already-parsed GGUF (checks the architecture and dtypes now). */
export function ggufToModelSource(gguf: GgufFile): ModelSource {
  const arch = gguf.metadata.get("general.architecture");
  if (typeof arch !== "string" || !(SUPPORTED_GGUF_ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new UnsupportedModelError(
      `GGUF architecture ${JSON.stringify(arch)} in ${gguf.file} is not supported`,
      SUPPORTED_GGUF_ARCHITECTURES,
    );
  }
  const splits = gguf.metadata.get("split.count");
  if (typeof splits === "number" && splits > 1) {
    throw new UnsupportedModelError(
      `${gguf.file} is part ${Number(gguf.metadata.get("split.no") ?? 0) + 1} of a GGUF split into ${splits} files; ` +
        `merge them first (llama-gguf-split --merge <first part> <merged.gguf>)`,
      ["single-file GGUF"],
    );
  }
  const experts = gguf.metadata.get(`${arch}.expert_count`);
  if (typeof experts === "number" && experts > 0) {
    throw new UnsupportedModelError(`${gguf.file} is a mixture of ${experts} experts (${arch}.expert_count); crumb runs dense models`, [
      "dense llama, qwen2, qwen3",
    ]);
  }
  const config = ggufConfig(gguf);
  const tensors = new Map<string, TensorEntry>();
  for (const info of gguf.tensorInfos) {
    if (info.name === "rope_freqs.weight") continue; // folded into config.rope_scaling
    if (!isDequantizable(info.type.name)) {
      throw new UnsupportedModelError(
        `tensor ${info.name} in ${gguf.file} is ${info.type.name}, which crumb cannot dequantise; ` +
          `re-quantise the model with llama-quantize to one of the supported types`,
        DEQUANTIZABLE,
      );
    }
    // Tensors without an HF name keep their GGUF name so nothing is silently dropped.
    const name = ggufToHfName(info.name) ?? info.name;
    tensors.set(name, ggufEntry(gguf, info, name, config, arch));
  }
  const generationConfig: Record<string, unknown> = {};
  for (const key of ["bos_token_id", "eos_token_id"] as const) {
    if (config[key] !== undefined) generationConfig[key] = config[key];
  }
  return {
    path: gguf.file,
    format: "gguf",
    config,
    tensors,
    tokenizer: tokenizerFromGguf(gguf.metadata as Map<string, unknown>),
    chatTemplates: ggufChatTemplates(gguf.metadata),
    generationConfig,
  };
}

/** Imports a .gguf file (llama, qwen2, qwen3; F32/F16/BF16/Q8_0/Q4_0 tensors). */
export function importGguf(path: string): ModelSource {
  return ggufToModelSource(readGguf(path));
}
