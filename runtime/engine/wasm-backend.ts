/**
 * The fast backend: a packed checkpoint in WASM memory, the architecture's forward pass over
 * the WASM ops (LUT kernels, worker pool) with its run state allocated once in WASM memory,
 * and a KV cache there too. Token ids go in; the logits (or hidden states) come out as a view
 * of the run state, valid until the next forward call. Prefills longer than
 * MAX_TOKENS_PER_CALL (the run state's rows) run as consecutive blocks.
 */
import { ContextLengthError, InvalidArgumentError } from "../errors.ts";
import { checkTensors, resolveModel } from "../models/registry.ts";
import { createPool, disposePool, type Pool } from "../threads/pool.ts";
import { createShardPool, type ShardPool } from "../threads/shard-pool.ts";
import { createKernelQueue, type FlushPolicy } from "../threads/kernel-queue.ts";
import { createWasmOps, MAX_TOKENS_PER_CALL, type WasmOps } from "../ops/wasm-ops.ts";
import { createWasmWeights } from "../ops/wasm-weights.ts";
import type { ForwardContext, ForwardOptions } from "../ops/types.ts";
import type { ModelBackend } from "./engine.ts";
import { createKvCache, type KvOptions } from "./kv-cache/create-kv-cache.ts";
import { chooseKvMode } from "./kv-cache/auto.ts";
import { KV_MODES, type KvCache } from "./kv-cache/types.ts";
import { createLatentCodec } from "./kv-cache/xquant-svd.ts";
import { ropeInverseFrequencies } from "../models/rope-frequencies.ts";
import type { PackedModel } from "./packed-model.ts";

export const KV_TYPES = [...KV_MODES, "auto"] as const;
const LAST_LOGITS: ForwardOptions = {};
export type KvType = typeof KV_TYPES[number];

export interface WasmBackendOptions {
  readonly contextLength?: number;
  /** Threads for matmuls and attention, including the calling one; default 1. */
  readonly threads?: number;
  readonly kv?: KvType;
  /** Bytes the attention state may take (`--kv auto` picks the fastest mode that fits). */
  readonly kvBudget?: number;
  readonly kvOptions?: KvOptions;
  /** When the worker pool is woken: per op, per layer, or once per forward (default). */
  readonly flush?: FlushPolicy;
}

export interface WasmBackend extends ModelBackend {
  readonly cache: KvCache;
  readonly threads: number;
  /** The ops (and their kernel queue, which counts pool dispatches). */
  readonly ops: WasmOps;
  dispose(): Promise<void>;
}

export async function createWasmBackend(model: PackedModel, options: WasmBackendOptions = {}): Promise<WasmBackend> {
  const { arch, args } = resolveModel(model.header.config);
  const weights = createWasmWeights(model.kernels, model.matrices, model.vectors, model.path);
  checkTensors(arch, args, weights.has, model.path);
  const kv = options.kv ?? "f16";
  if (!(KV_TYPES as readonly string[]).includes(kv)) {
    throw new InvalidArgumentError("kv", `--kv ${kv} is not available in this backend; choose one of ${KV_TYPES.join(", ")}`);
  }
  const contextLength = options.contextLength ?? Math.min(args.maxPositions, 4096);
  const { threads, pool, shardPool, note } = await startThreads(model, options.threads ?? 1);
  const ops = createWasmOps(createKernelQueue(model.kernels, pool, options.flush), { shardPool });
  const state = ops.createState(arch.stateLayout(args), MAX_TOKENS_PER_CALL, contextLength);
  const shape = {
    numLayers: args.numLayers,
    numHeads: args.numHeads,
    numKvHeads: args.numKvHeads,
    headDim: args.headDim,
    contextLength,
    slidingWindow: args.slidingWindow,
  };
  const mode = kv === "auto" ? chooseKvMode(options.kvBudget ?? Infinity, shape, args.hiddenSize, options.kvOptions).mode : kv;
  const cache = createKvCache(mode, {
    ops,
    shape,
    hidden: args.hiddenSize,
    invFreq: ropeInverseFrequencies(args.headDim, args.ropeTheta, args.ropeScaling),
    projector: (layer, x, n, startPos, k, v) => arch.projectKv(args, { ops, weights }, layer, x, n, startPos, k, v),
    latent: () => createLatentCodec(ops, weights, args, arch.projectKv),
  }, options.kvOptions);
  const ctx = { ops, weights, attention: cache, state } as unknown as ForwardContext;
  const block = new Array<number>(MAX_TOKENS_PER_CALL);

  return {
    name: `wasm engine, ${threads} thread${threads === 1 ? "" : "s"}${note}, kv ${mode}`,
    args,
    contextLength,
    cache,
    threads,
    ops,
    forward(tokens: readonly number[], forwardOptions: ForwardOptions = LAST_LOGITS) {
      const startPos = cache.length();
      if (startPos + tokens.length > contextLength) throw new ContextLengthError(startPos + tokens.length, 0, contextLength);
      if (tokens.length <= MAX_TOKENS_PER_CALL) return arch.forward(args, ctx, tokens, startPos, forwardOptions);
      const blocks: Float32Array[] = [];
      for (let i = 0; i < tokens.length; i += MAX_TOKENS_PER_CALL) {
        block.length = Math.min(MAX_TOKENS_PER_CALL, tokens.length - i);
        for (let t = 0; t < block.length; t++) block[t] = tokens[i + t];
        const last = i + MAX_TOKENS_PER_CALL >= tokens.length;
        // Earlier blocks only fill the cache unless every position's output is wanted; results
        // are views of the run state, so each kept one is copied before the next block.
        const result = arch.forward(args, ctx, block, startPos + i, forwardOptions);
        if (forwardOptions.allLogits || last) blocks.push(result.slice());
      }
      return blocks.length === 1 ? blocks[0] : concat(blocks);
    },
    truncate(pos) {
      cache.truncate(pos);
    },
    reset() {
      cache.truncate(0);
    },
    async dispose() {
      if (pool !== undefined) await disposePool(pool);
      shardPool?.dispose();
    },
  };
}

/**
 * Workers for `threads` > 1: the pool over the shared memory when the kernels have one, else
 * the row-shard pool (each worker holds its rows of every linear weight in a private memory),
 * else, without SharedArrayBuffer at all, one thread.
 */
async function startThreads(
  model: PackedModel,
  threads: number,
): Promise<{ threads: number; pool?: Pool; shardPool?: ShardPool; note: string }> {
  if (threads <= 1) return { threads: 1, note: "" };
  if (model.kernels.memory.buffer instanceof SharedArrayBuffer) return { threads, pool: await createPool({ threads, kernels: model.kernels }), note: "" };
  if (typeof SharedArrayBuffer !== "function") return { threads: 1, note: " (no SharedArrayBuffer in this runtime)" };
  // The embedding table is only read row by row unless the lm_head is tied to it.
  const tiedHead = !model.matrices.has("lm_head.weight");
  const matrices = [...model.matrices.values()].filter((m) => tiedHead || m.name !== "model.embed_tokens.weight");
  const shardPool = await createShardPool({ threads, kernels: model.kernels, matrices, maxTokens: MAX_TOKENS_PER_CALL });
  return { threads, shardPool, note: " (row shards: no shared WebAssembly memory)" };
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
