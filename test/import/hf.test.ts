/** Hugging Face directory import: single and sharded weights, templates, tokenizer, errors. */

import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError } from "../../runtime/errors.ts";
import { importHfDirectory } from "../../runtime/import/hf.ts";
import { importModel } from "../../runtime/import/index.ts";
import { writeSafetensors } from "../../runtime/import/safetensors.ts";
import { seeded } from "./gguf-fixtures.ts";
import { expectTypedError, tempDir, testShared } from "./import-util.ts";

const CONFIG = { model_type: "llama", hidden_size: 4, tie_word_embeddings: true };
const EMBED = seeded(8 * 4, 1);
const NORM = seeded(4, 2);
const Q = seeded(4 * 4, 3);

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, JSON.stringify(value));
}

function singleDir(): string {
  const dir = tempDir();
  writeJson(path.join(dir, "config.json"), CONFIG);
  writeSafetensors(path.join(dir, "model.safetensors"), [
    { name: "model.embed_tokens.weight", shape: [8, 4], data: EMBED },
    { name: "model.norm.weight", shape: [4], data: NORM, dtype: "BF16" },
  ]);
  return dir;
}

function shardedDir(): string {
  const dir = tempDir();
  writeJson(path.join(dir, "config.json"), CONFIG);
  writeSafetensors(path.join(dir, "model-00001-of-00002.safetensors"), [
    { name: "model.embed_tokens.weight", shape: [8, 4], data: EMBED },
  ]);
  writeSafetensors(path.join(dir, "model-00002-of-00002.safetensors"), [
    { name: "model.norm.weight", shape: [4], data: NORM },
    { name: "model.layers.0.self_attn.q_proj.weight", shape: [4, 4], data: Q, dtype: "F16" },
  ]);
  writeJson(path.join(dir, "model.safetensors.index.json"), {
    metadata: { total_size: 0 },
    weight_map: {
      "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
      "model.norm.weight": "model-00002-of-00002.safetensors",
      "model.layers.0.self_attn.q_proj.weight": "model-00002-of-00002.safetensors",
    },
  });
  return dir;
}

describe("HF directory import", () => {
  test("single model.safetensors: config, lazy tensors, defaults for optional files", async () => {
    const dir = singleDir();
    const m = await importModel(dir);
    expect(m.format).toBe("hf");
    expect(m.config).toEqual(CONFIG);
    expect([...m.tensors.keys()].sort()).toEqual(["model.embed_tokens.weight", "model.norm.weight"]);
    expect(m.tensors.has("lm_head.weight")).toBe(false); // tied: nothing invented
    expect(Array.from(m.tensors.get("model.embed_tokens.weight")!.read())).toEqual(Array.from(EMBED));
    expect(m.tensors.get("model.norm.weight")!.dtype).toBe("BF16");
    expect(m.tokenizer).toBeUndefined();
    expect(m.chatTemplates).toEqual({});
    expect(m.generationConfig).toEqual({});
  });

  test("sharded index: every tensor from its shard", () => {
    const m = importHfDirectory(shardedDir());
    expect(m.tensors.size).toBe(3);
    expect(Array.from(m.tensors.get("model.norm.weight")!.read())).toEqual(Array.from(NORM));
    const q = m.tensors.get("model.layers.0.self_attn.q_proj.weight")!;
    expect(q.shape).toEqual([4, 4]);
    q.read().forEach((v, i) => expect(Math.abs(v - Q[i]!)).toBeLessThan(1e-3));
  });

  test("tokenizer files, generation config and chat templates (list form, default first)", () => {
    const dir = singleDir();
    writeJson(path.join(dir, "tokenizer.json"), { model: { type: "BPE" } });
    writeJson(path.join(dir, "tokenizer_config.json"), {
      bos_token: "<s>",
      chat_template: [
        { name: "tool_use", template: "T" },
        { name: "default", template: "D" },
      ],
    });
    writeJson(path.join(dir, "generation_config.json"), { eos_token_id: [2, 3], temperature: 0.6 });
    const m = importHfDirectory(dir);
    expect(m.tokenizer).toEqual({ tokenizerJson: { model: { type: "BPE" } }, tokenizerConfig: expect.objectContaining({ bos_token: "<s>" }) });
    expect(Object.entries(m.chatTemplates)).toEqual([["default", "D"], ["tool_use", "T"]]);
    expect(m.generationConfig).toEqual({ eos_token_id: [2, 3], temperature: 0.6 });
  });

  testShared("chat_template.jinja (real template) overrides tokenizer_config's string", ["chat-templates/Qwen-Qwen3-0.6B.jinja"], (jinja) => {
    const dir = singleDir();
    writeJson(path.join(dir, "tokenizer_config.json"), { chat_template: "old" });
    fs.copyFileSync(jinja, path.join(dir, "chat_template.jinja"));
    const m = importHfDirectory(dir);
    expect(m.chatTemplates["default"]).toBe(fs.readFileSync(jinja, "utf8"));
    expect(m.tokenizer).toBeUndefined();
  });

  testShared("a real tokenizer.json travels with the model", ["hf-tokenizers/gpt2/tokenizer.json"], (tok) => {
    const dir = singleDir();
    fs.copyFileSync(tok, path.join(dir, "tokenizer.json"));
    const m = importHfDirectory(dir);
    expect((m.tokenizer!.tokenizerJson["model"] as { type: string }).type).toBe("BPE");
    expect(m.tokenizer!.tokenizerConfig).toEqual({});
  });
});

describe("HF directory import: errors", () => {
  test("missing config.json names the path", async () => {
    const dir = singleDir();
    fs.rmSync(path.join(dir, "config.json"));
    await expectTypedError(() => importHfDirectory(dir), FormatError, { file: path.join(dir, "config.json") });
  });

  test("a shard listed in the index that is missing", async () => {
    const dir = shardedDir();
    const shard = path.join(dir, "model-00002-of-00002.safetensors");
    fs.rmSync(shard);
    await expectTypedError(() => importHfDirectory(dir), FormatError, { file: shard, message: /missing/ });
  });

  test("an index entry whose shard lacks the tensor", async () => {
    const dir = shardedDir();
    const indexFile = path.join(dir, "model.safetensors.index.json");
    const index = JSON.parse(fs.readFileSync(indexFile, "utf8"));
    index.weight_map["model.norm.weight"] = "model-00001-of-00002.safetensors";
    writeJson(indexFile, index);
    await expectTypedError(() => importHfDirectory(dir), FormatError, { tensor: "model.norm.weight" });
  });

  test("a truncated shard names the shard, tensor and offset", async () => {
    const dir = shardedDir();
    const shard = path.join(dir, "model-00002-of-00002.safetensors");
    const bytes = fs.readFileSync(shard);
    fs.writeFileSync(shard, bytes.subarray(0, bytes.length - 2));
    const err = await expectTypedError(() => importHfDirectory(dir), FormatError, { file: shard });
    expect((err as FormatError).offset).toBeGreaterThan(8);
  });

  test("no weights, bad JSON, non-existent path", async () => {
    const dir = singleDir();
    fs.rmSync(path.join(dir, "model.safetensors"));
    await expectTypedError(() => importHfDirectory(dir), FormatError, { message: /no model\.safetensors/ });
    const dir2 = singleDir();
    fs.writeFileSync(path.join(dir2, "generation_config.json"), "{oops");
    await expectTypedError(() => importHfDirectory(dir2), FormatError, { file: path.join(dir2, "generation_config.json") });
    const missing = path.join(dir, "nope");
    await expectTypedError(() => importModel(missing), FormatError, { file: missing, message: /no such file/ });
  });
});

describe("embedding pooling from sentence-transformers metadata", () => {
  test("1_Pooling/config.json last-token and mean modes are read; none means undefined", async () => {
    const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { createRandomModel } = await import("../fixtures/random-model.ts");
    const { importHfDirectory } = await import("../../runtime/import/index.ts");
    const { exportHfDirectory } = await import("../../quantizer/export/hf-export.ts");
    const dir = mkdtempSync(join(tmpdir(), "crumb-pooling-"));
    try {
      exportHfDirectory(createRandomModel({ arch: "qwen3", hidden: 32, intermediate: 64, layers: 1, heads: 2, vocab: 64 }), dir);
      expect(importHfDirectory(dir).pooling).toBeUndefined();
      mkdirSync(join(dir, "1_Pooling"));
      writeFileSync(join(dir, "1_Pooling", "config.json"), JSON.stringify({ pooling_mode_lasttoken: true, pooling_mode_mean_tokens: false }));
      expect(importHfDirectory(dir).pooling).toBe("last");
      writeFileSync(join(dir, "1_Pooling", "config.json"), JSON.stringify({ pooling_mode_mean_tokens: true }));
      expect(importHfDirectory(dir).pooling).toBe("mean");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
