/**
 * Opens any model path as an Engine: a packed crumb checkpoint runs on the WASM backend; a
 * .gguf is packed in memory by the `packGguf` the caller passes (the CLI passes the
 * quantizer's packGgufInMemory, quantizer/gguf-load.ts: its blocks kept where a crumb encoding
 * holds them; the runtime itself never imports the quantizer) and runs on the WASM backend
 * too; other source checkpoints (HF directory, llama2.c .bin) run on the fp32 reference backend.
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { InvalidArgumentError } from "../errors.ts";
import { importModel } from "../import/index.ts";
import type { Encoding } from "../format/encoding.ts";
import type { CheckpointHeader } from "../format/header.ts";
import type { ModelSource } from "../models/types.ts";
import { createEngine, createEngineOn } from "./engine.ts";
import type { Engine } from "./types.ts";
import { isPackedCheckpoint, loadPackedCheckpoint, type LoadProgress, type LoadStats, packedModelFromBytes, type PackedModel } from "./packed-model.ts";
import { createWasmBackend, type KvType } from "./wasm-backend.ts";
import { chooseKvMode, kvCacheSize } from "./kv-cache/auto.ts";
import { resolveModel } from "../models/registry.ts";
import { openCheckpoint } from "../format/file.ts";
import { pathProblem } from "../format/path-problem.ts";
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
  /** Called once a packed file's weights are in memory, with where the time went. */
  readonly onLoaded?: (stats: LoadStats) => void;
  /** Called with a line about how the model was prepared (a .gguf: which encodings were chosen). */
  readonly onNote?: (note: string) => void;
  /** Packs an imported GGUF in memory; without it a .gguf is refused with the ways out. */
  readonly packGguf?: GgufPacker;
}

/** A GGUF source packed in memory: crumb's header and tensors, and a line saying what was kept. */
export type GgufPacker = (source: ModelSource, options: { threads?: number }) => Promise<{
  readonly header: CheckpointHeader;
  readonly tensors: readonly { name: string; shape: readonly number[]; encoding: Encoding; bytes: Uint8Array }[];
  readonly summary: string;
}>;

function fileHead(path: string): Uint8Array | undefined {
  if (!statSync(path).isFile()) return undefined;
  const fd = openSync(path, "r");
  try {
    const head = new Uint8Array(8);
    readSync(fd, head, 0, 8, 0);
    return head;
  } finally {
    closeSync(fd);
  }
}

/** Whether the path is a packed crumb checkpoint (reads its first bytes). */
export function isPackedFile(path: string): boolean {
  const head = fileHead(path);
  return head !== undefined && isPackedCheckpoint(head);
}

/** Whether the path is a GGUF file (its "GGUF" magic). */
export function isGgufFile(path: string): boolean {
  const head = fileHead(path);
  return head !== undefined && new TextDecoder("latin1").decode(head.subarray(0, 4)) === "GGUF";
}

export async function loadEngine(path: string, options: LoadEngineOptions = {}): Promise<Engine> {
  const problem = pathProblem(path);
  if (problem !== undefined) throw new InvalidArgumentError("model", `model path "${path}" ${problem}`);
  if (isGgufFile(path)) {
    if (options.packGguf === undefined) {
      throw new InvalidArgumentError(
        "model",
        `${path} is a GGUF file, which runs once the quantizer packs it: run it with the crumb CLI (crumb generate/serve), ` +
          "pass loadEngine's packGguf option (packGgufInMemory from quantizer/gguf-load.ts), or quantize it first (crumb quantize model.gguf -o model.q4)",
      );
    }
    const source = await importModel(path, { tokenizer: options.tokenizer });
    const packed = await options.packGguf(source, { threads: options.threads });
    options.onNote?.(`${path}: ${packed.summary}`);
    return startWasmEngine(path, packed.header, () => Promise.resolve(packedModelFromBytes(packed.header, packed.tensors)), options);
  }
  if (!isPackedFile(path)) {
    const source = await importModel(path, { tokenizer: options.tokenizer });
    return createEngine({ ...source, chatTemplates: withTemplate(source.chatTemplates, options.chatTemplate) }, options);
  }
  // The header sizes the KV cache before any weight is read, so a model that cannot fit is
  // refused up front; the same open file then streams the weights.
  const checkpoint = await openCheckpoint(path);
  try {
    const header = checkpoint.header;
    const tokenizer = options.tokenizer === undefined ? header.tokenizer ?? undefined : loadTokenizerFile(options.tokenizer);
    return await startWasmEngine(
      path,
      { ...header, tokenizer: tokenizer ?? null },
      async (reserveBytes) => {
        const model = await loadPackedCheckpoint(checkpoint, { onProgress: options.onProgress, reserveBytes });
        if (model.loadStats !== undefined) options.onLoaded?.(model.loadStats);
        return model;
      },
      options,
    );
  } finally {
    await checkpoint.close();
  }
}

/** The WASM engine over a packed model, with the KV cache sized from the header's config. */
async function startWasmEngine(
  path: string,
  header: CheckpointHeader,
  load: (reserveBytes: number) => Promise<PackedModel>,
  options: LoadEngineOptions,
): Promise<Engine> {
  const { args } = resolveModel(header.config);
  const contextLength = options.contextLength ?? Math.min(args.maxPositions, 4096);
  const shape = { numLayers: args.numLayers, numHeads: args.numHeads, numKvHeads: args.numKvHeads, headDim: args.headDim, contextLength };
  const requested = options.kv ?? "f16";
  const kv = requested === "auto" ? chooseKvMode(options.kvBudget ?? Infinity, shape, args.hiddenSize).mode : requested;
  const reserveBytes = kvCacheSize(kv, shape, args.hiddenSize).wasmBytes + 64 * 1024 * 1024;
  const model = await load(reserveBytes);
  const backend = await createWasmBackend(model, { contextLength, threads: options.threads, kv });
  return createEngineOn(backend, {
    path,
    tokenizer: header.tokenizer ?? undefined,
    chatTemplates: withTemplate(header.chatTemplates, options.chatTemplate),
    generationConfig: header.generationConfig,
    pooling: header.extra.pooling === "last" || header.extra.pooling === "mean" ? header.extra.pooling : undefined,
  }, options);
}

function withTemplate(templates: Readonly<Record<string, string>>, override: string | undefined): Readonly<Record<string, string>> {
  return override === undefined ? templates : { ...templates, default: override };
}
