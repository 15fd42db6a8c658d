/**
 * Opens any model path as an Engine: a packed crumb checkpoint runs on the WASM backend;
 * a source checkpoint (HF directory, .gguf, llama2.c .bin) on the fp32 reference backend.
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { InvalidArgumentError } from "../errors.ts";
import { importModel } from "../import/index.ts";
import { createEngine, createEngineOn } from "./engine.ts";
import type { Engine } from "./types.ts";
import { isPackedCheckpoint, type LoadProgress, loadPackedModel } from "./packed-model.ts";
import { createWasmBackend, type KvType } from "./wasm-backend.ts";
import { chooseKvMode, kvCacheSize } from "./kv-cache/auto.ts";
import { resolveModel } from "../models/registry.ts";
import { openCheckpoint } from "../format/file.ts";
import { loadTokenizerFile } from "../tokenizer/load-file.ts";

export interface LoadEngineOptions {
  /** A tokenizer file for checkpoints that carry none (llama2.c) or to override the packed one. */
  readonly tokenizer?: string;
  readonly contextLength?: number;
  readonly threads?: number;
  readonly kv?: KvType;
  /** Bytes the attention state may take; `kv: "auto"` picks the fastest mode that fits. */
  readonly kvBudget?: number;
  readonly modelId?: string;
  /** A chat template (jinja source) that replaces the model's default one. */
  readonly chatTemplate?: string;
  readonly onProgress?: (progress: LoadProgress) => void;
}

/** Whether the path is a packed crumb checkpoint (reads its first bytes). */
export function isPackedFile(path: string): boolean {
  if (!statSync(path).isFile()) return false;
  const fd = openSync(path, "r");
  try {
    const head = new Uint8Array(8);
    readSync(fd, head, 0, 8, 0);
    return isPackedCheckpoint(head);
  } finally {
    closeSync(fd);
  }
}

export async function loadEngine(path: string, options: LoadEngineOptions = {}): Promise<Engine> {
  try {
    statSync(path);
  } catch {
    throw new InvalidArgumentError("model", `model path "${path}" does not exist`);
  }
  if (!isPackedFile(path)) {
    const source = await importModel(path, { tokenizer: options.tokenizer });
    return createEngine({ ...source, chatTemplates: withTemplate(source.chatTemplates, options.chatTemplate) }, options);
  }
  // Size the KV cache before loading so a model that cannot fit is refused up front.
  const checkpoint = await openCheckpoint(path);
  const header = checkpoint.header;
  await checkpoint.close();
  const { args } = resolveModel(header.config);
  const contextLength = options.contextLength ?? Math.min(args.maxPositions, 4096);
  const shape = { numLayers: args.numLayers, numHeads: args.numHeads, numKvHeads: args.numKvHeads, headDim: args.headDim, contextLength };
  const requested = options.kv ?? "f16";
  const kv = requested === "auto" ? chooseKvMode(options.kvBudget ?? Infinity, shape, args.hiddenSize).mode : requested;
  const reserveBytes = kvCacheSize(kv, shape, args.hiddenSize).wasmBytes + 64 * 1024 * 1024;
  const model = await loadPackedModel(path, { onProgress: options.onProgress, reserveBytes });
  const backend = await createWasmBackend(model, { contextLength, threads: options.threads, kv });
  const tokenizer = options.tokenizer === undefined ? header.tokenizer ?? undefined : loadTokenizerFile(options.tokenizer);
  return createEngineOn(backend, {
    path,
    tokenizer,
    chatTemplates: withTemplate(header.chatTemplates, options.chatTemplate),
    generationConfig: header.generationConfig,
    pooling: header.extra.pooling === "last" || header.extra.pooling === "mean" ? header.extra.pooling : undefined,
  }, options);
}

function withTemplate(templates: Readonly<Record<string, string>>, override: string | undefined): Readonly<Record<string, string>> {
  return override === undefined ? templates : { ...templates, default: override };
}
