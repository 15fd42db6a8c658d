/**
 * Gets the reference's weights into crumb the ways a user does: a Hugging Face directory
 * (config.json + float32 model.safetensors) for the fp32 reference engine, and a packed file
 * from crumb's quantizer with every tensor kept f32 for the WASM engine.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeSafetensors } from "../../runtime/import/index.ts";
import { quantizeModel } from "../../quantizer/quantize.ts";
import { loadPackedModel } from "../../runtime/engine/packed-model.ts";
import { createWasmBackend, type WasmBackend } from "../../runtime/engine/wasm-backend.ts";
import { writeCheckpointFile } from "../../runtime/format/file.ts";
import type { ModelSource, TensorEntry } from "../../runtime/models/types.ts";
import { type HfConfig, type HfHyperparameters, hfTensorShapes } from "./hf-reference.ts";

/** Writes config.json and model.safetensors (float32) as a Hugging Face checkpoint directory. */
export function writeHfDirectory(path: string, config: HfConfig, hp: HfHyperparameters, weights: ReadonlyMap<string, Float32Array>): void {
  mkdirSync(path, { recursive: true });
  writeFileSync(join(path, "config.json"), JSON.stringify({ ...config, torch_dtype: "float32" }, null, 2));
  const shapes = hfTensorShapes(hp);
  writeSafetensors(
    join(path, "model.safetensors"),
    [...weights].map(([name, data]) => ({ name, shape: shapes.get(name)!, data: () => data })),
  );
}

/** The same checkpoint as an in-memory ModelSource (what crumb's importers produce). */
export function hfModelSource(config: HfConfig, hp: HfHyperparameters, weights: ReadonlyMap<string, Float32Array>): ModelSource {
  const shapes = hfTensorShapes(hp);
  const tensors = new Map<string, TensorEntry>(
    [...weights].map(([name, data]) => [name, { name, shape: shapes.get(name)!, dtype: "F32", read: () => data }]),
  );
  return { path: `reference:${String(config.model_type)}`, format: "hf", config, tensors, chatTemplates: {}, generationConfig: {} };
}

/**
 * Packs `source` with crumb's quantizer keeping every tensor f32 (`--keep '*=f32'
 * --embeddings f32`), writes it to `file`, and opens it on the WASM engine with an f32 KV
 * cache. Throws if any tensor was stored in another encoding.
 */
export async function f32WasmBackend(source: ModelSource, file: string, contextLength: number): Promise<WasmBackend> {
  const packed = await quantizeModel(source, { keep: [{ pattern: "*", action: "f32" }], embeddings: "f32", report: false, xquant: false });
  const lossy = packed.tensors.filter((t) => t.encoding.kind !== "f32").map((t) => t.name);
  if (lossy.length > 0) throw new Error(`expected every tensor kept f32, got other encodings for ${lossy.join(", ")}`);
  await writeCheckpointFile(file, { header: packed.header, tensors: packed.tensors });
  return await createWasmBackend(await loadPackedModel(file), { contextLength, threads: 1, kv: "f32" });
}
