/**
 * Reads an exported GGUF back as a ModelSource for tests, decoding every block type with the
 * independent decoders of ggml-decoders.ts (crumb's importer reads F32/F16/BF16/Q8_0/Q4_0
 * only, until the import branch lands). Header, metadata, config and tokenizer come from
 * crumb's GGUF reader; q/k rows of a llama-architecture file go back to Hugging Face order.
 */
import type { ModelSource, TensorEntry } from "../../runtime/models/types.ts";
import { tokenizerFromGguf } from "../../runtime/tokenizer/from-gguf.ts";
import { type GgufFile, readGguf } from "../../runtime/import/gguf.ts";
import { ggufConfig } from "../../runtime/import/gguf-model.ts";
import { ggufRotaryRole, ggufToHfName } from "../../runtime/import/gguf-names.ts";
import { permuteMetaToHf } from "../../runtime/import/rope-permute.ts";
import { TEST_DECODERS } from "./ggml-decoders.ts";

/** Raw bytes of a tensor. */
export function tensorBytes(gguf: GgufFile, name: string): Uint8Array {
  const info = gguf.tensorInfos.find((t) => t.name === name);
  if (info === undefined) throw new Error(`${gguf.file} has no tensor ${name}`);
  return gguf.source.read(info.offset, info.byteLength);
}

/** A tensor's values in the file's own (GGUF) row order. */
export function decodeGgufTensor(gguf: GgufFile, name: string): Float32Array {
  const info = gguf.tensorInfos.find((t) => t.name === name)!;
  const bytes = tensorBytes(gguf, name);
  if (info.type.name === "F32") return new Float32Array(bytes.slice().buffer);
  const decode = TEST_DECODERS[info.type.name];
  if (decode === undefined) throw new Error(`no test decoder for ${info.type.name}`);
  return decode(bytes, info.numel);
}

export function readExportedGguf(path: string): ModelSource {
  const gguf = readGguf(path);
  const config = ggufConfig(gguf);
  const arch = String(gguf.metadata.get("general.architecture"));
  const tensors = new Map<string, TensorEntry>();
  for (const info of gguf.tensorInfos) {
    if (info.name === "rope_freqs.weight") continue;
    const name = ggufToHfName(info.name)!;
    const role = arch === "llama" ? ggufRotaryRole(info.name) : undefined;
    const heads = (role === "q" ? config.num_attention_heads : config.num_key_value_heads) as number;
    tensors.set(name, {
      name,
      shape: info.shape,
      dtype: info.type.name,
      read: () => {
        const values = decodeGgufTensor(gguf, info.name);
        return role === undefined ? values : permuteMetaToHf(values, heads, info.shape.length > 1 ? info.shape[1]! : 1);
      },
    });
  }
  return {
    path,
    format: "gguf",
    config,
    tensors,
    tokenizer: tokenizerFromGguf(gguf.metadata as Map<string, unknown>),
    chatTemplates: {},
    generationConfig: {},
  };
}
