/**
 * Writes a ModelSource as a Hugging Face model directory: config.json, model.safetensors
 * (fp32, names sorted), and when present tokenizer.json, tokenizer_config.json (with the
 * chat templates: a string for a lone "default", else a list of {name, template}) and
 * generation_config.json. Used to convert llama2.c / GGUF checkpoints to HF layout.
 */

import * as fs from "node:fs";
import * as path from "node:path";
import type { ModelSource } from "../../runtime/models/types.ts";
import { writeSafetensors } from "../../runtime/import/safetensors.ts";

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, JSON.stringify(value, null, 2) + "\n");
}

/** Exports `source` into `dir` (created if needed); tensors are read one at a time. */
export function exportHfDirectory(source: ModelSource, dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  writeJson(path.join(dir, "config.json"), { ...source.config, torch_dtype: "float32" });
  writeSafetensors(
    path.join(dir, "model.safetensors"),
    [...source.tensors.values()].map((t) => ({ name: t.name, shape: t.shape, data: () => t.read() })),
    { format: "pt" },
  );
  const templates = Object.entries(source.chatTemplates);
  const chatTemplate =
    templates.length === 0
      ? undefined
      : templates.length === 1 && templates[0]![0] === "default"
        ? templates[0]![1]
        : templates.map(([name, template]) => ({ name, template }));
  if (source.tokenizer !== undefined || chatTemplate !== undefined) {
    const tokenizerConfig: Record<string, unknown> = { ...(source.tokenizer?.tokenizerConfig ?? {}) };
    if (chatTemplate !== undefined) tokenizerConfig["chat_template"] = chatTemplate;
    writeJson(path.join(dir, "tokenizer_config.json"), tokenizerConfig);
  }
  if (source.tokenizer !== undefined) writeJson(path.join(dir, "tokenizer.json"), source.tokenizer.tokenizerJson);
  if (Object.keys(source.generationConfig).length > 0) {
    writeJson(path.join(dir, "generation_config.json"), source.generationConfig);
  }
}
