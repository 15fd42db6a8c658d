/**
 * Hugging Face checkpoint directory importer: config.json, model.safetensors or a sharded
 * model.safetensors.index.json (weight_map: tensor name → shard file), the optional
 * tokenizer.json / tokenizer_config.json, chat templates (tokenizer_config.json
 * `chat_template` as a string or a list of {name, template}, chat_template.jinja, and
 * additional_chat_templates/*.jinja) and generation_config.json. Tensors stay lazy.
 */

import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError } from "../errors.ts";
import type { ModelSource, RawConfig, TensorEntry, TokenizerFiles } from "../models/types.ts";
import { statOrThrow } from "./byte-source.ts";
import { readSafetensors } from "./safetensors.ts";

/** Parses a JSON object file; `undefined` when optional and absent. */
export function readJsonObject(file: string, required: true): Record<string, unknown>;
export function readJsonObject(file: string, required: false): Record<string, unknown> | undefined;
export function readJsonObject(file: string, required: boolean): Record<string, unknown> | undefined {
  if (!fs.existsSync(file)) {
    if (!required) return undefined;
    throw new FormatError(`missing ${path.basename(file)}; a Hugging Face model directory needs one`, { file });
  }
  let value: unknown;
  try {
    value = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (cause) {
    throw new FormatError(`not valid JSON: ${(cause as Error).message}`, { file, cause });
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new FormatError("expected a JSON object", { file, offset: 0 });
  }
  return value as Record<string, unknown>;
}

/** Named chat templates from tokenizer_config.json's `chat_template` field, "default" first. */
export function chatTemplatesFromConfig(value: unknown, file: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value === "string") return { default: value };
  if (!Array.isArray(value)) {
    throw new FormatError(`chat_template is a ${typeof value}; expected a string or a list of {name, template}`, { file });
  }
  const named: Record<string, string> = {};
  for (const item of value) {
    const { name, template } = (item ?? {}) as { name?: unknown; template?: unknown };
    if (typeof name !== "string" || typeof template !== "string") {
      throw new FormatError(`chat_template entry ${JSON.stringify(item)} is not {name, template}`, { file });
    }
    named[name] = template;
  }
  return orderTemplates(named);
}

/** Same record with "default" as the first key. */
export function orderTemplates(templates: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  if (templates["default"] !== undefined) out["default"] = templates["default"];
  for (const [k, v] of Object.entries(templates)) if (k !== "default") out[k] = v;
  return out;
}

function readChatTemplates(dir: string, tokenizerConfig: Record<string, unknown> | undefined): Record<string, string> {
  const configFile = path.join(dir, "tokenizer_config.json");
  const templates = chatTemplatesFromConfig(tokenizerConfig?.["chat_template"], configFile);
  const extraDir = path.join(dir, "additional_chat_templates");
  if (fs.existsSync(extraDir) && fs.statSync(extraDir).isDirectory()) {
    for (const f of fs.readdirSync(extraDir).sort()) {
      if (f.endsWith(".jinja")) templates[f.slice(0, -".jinja".length)] = fs.readFileSync(path.join(extraDir, f), "utf8");
    }
  }
  // transformers >= 4.43 saves the template here instead of in tokenizer_config.json; it wins.
  const jinja = path.join(dir, "chat_template.jinja");
  if (fs.existsSync(jinja)) templates["default"] = fs.readFileSync(jinja, "utf8");
  return orderTemplates(templates);
}

/** All tensors of the directory's safetensors file(s), validated now, read lazily. */
function readWeights(dir: string): Map<string, TensorEntry> {
  const single = path.join(dir, "model.safetensors");
  const indexFile = path.join(dir, "model.safetensors.index.json");
  if (fs.existsSync(indexFile)) return readSharded(dir, indexFile);
  if (fs.existsSync(single)) return new Map(readSafetensors(single).tensors);
  const hint = fs.existsSync(path.join(dir, "pytorch_model.bin"))
    ? "; only pytorch_model.bin is present: convert it to safetensors first"
    : "";
  throw new FormatError(`no model.safetensors or model.safetensors.index.json in ${dir}${hint}`, { file: single });
}

function readSharded(dir: string, indexFile: string): Map<string, TensorEntry> {
  const index = readJsonObject(indexFile, true);
  const weightMap = index["weight_map"];
  if (weightMap === null || typeof weightMap !== "object" || Array.isArray(weightMap)) {
    throw new FormatError("weight_map is missing or not an object", { file: indexFile });
  }
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== "string" || shard.includes("/") || shard.includes("\\") || shard.startsWith(".")) {
      throw new FormatError(`weight_map entry ${JSON.stringify(shard)} is not a shard file name`, {
        file: indexFile,
        tensor: name,
      });
    }
    const names = byShard.get(shard) ?? [];
    names.push(name);
    byShard.set(shard, names);
  }
  const tensors = new Map<string, TensorEntry>();
  for (const [shard, names] of [...byShard].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const shardPath = path.join(dir, shard);
    if (!fs.existsSync(shardPath)) {
      throw new FormatError(`shard ${shard} listed in the index (for ${names.length} tensors) is missing`, {
        file: shardPath,
        tensor: names[0],
      });
    }
    const shardTensors = readSafetensors(shardPath).tensors;
    for (const name of names) {
      if (!shardTensors.has(name)) {
        throw new FormatError(`the index places this tensor in ${shard} but that shard does not hold it`, {
          file: shardPath,
          tensor: name,
        });
      }
    }
    for (const [name, entry] of shardTensors) {
      if (tensors.has(name)) throw new FormatError("tensor appears in more than one shard", { file: shardPath, tensor: name });
      tensors.set(name, entry);
    }
  }
  return tensors;
}

/**
 * Imports a Hugging Face model directory. model_type is not validated here (the registry
 * does that); tied embeddings are left to the model code, so no lm_head is invented.
 */
export function importHfDirectory(dir: string): ModelSource {
  if (!statOrThrow(dir).isDirectory()) throw new FormatError("expected a model directory", { file: dir });
  const config: RawConfig = readJsonObject(path.join(dir, "config.json"), true);
  const tensors = readWeights(dir);
  const tokenizerJson = readJsonObject(path.join(dir, "tokenizer.json"), false);
  const tokenizerConfig = readJsonObject(path.join(dir, "tokenizer_config.json"), false);
  const tokenizer: TokenizerFiles | undefined =
    tokenizerJson === undefined ? undefined : { tokenizerJson, tokenizerConfig: tokenizerConfig ?? {} };
  return {
    path: dir,
    format: "hf",
    config,
    tensors,
    tokenizer,
    chatTemplates: readChatTemplates(dir, tokenizerConfig),
    generationConfig: readJsonObject(path.join(dir, "generation_config.json"), false) ?? {},
    pooling: readPooling(dir),
  };
}

/** sentence-transformers' pooling choice (1_Pooling/config.json): last token or mean, if declared. */
function readPooling(dir: string): "mean" | "last" | undefined {
  const config = readJsonObject(path.join(dir, "1_Pooling", "config.json"), false);
  if (config === undefined) return undefined;
  if (config.pooling_mode_lasttoken === true) return "last";
  if (config.pooling_mode_mean_tokens === true) return "mean";
  return undefined;
}
