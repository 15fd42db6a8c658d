/**
 * The fast backend: a packed checkpoint in WASM memory, the architecture's forward pass over
 * the WASM ops (LUT kernels, worker pool), and a KV cache in WASM memory. Prefills longer
 * than MAX_TOKENS_PER_CALL run as consecutive blocks so scratch memory stays bounded.
 */
import { ContextLengthError, InvalidArgumentError } from "../errors.ts";
import { checkTensors, resolveModel } from "../models/registry.ts";
import { createPool, disposePool, type Pool } from "../kernels/pool.ts";
import { createShardPool, type ShardPool } from "../kernels/shard-pool.ts";
import { createWasmOps, MAX_TOKENS_PER_CALL, packedWeightStore } from "../ops/wasm-ops.ts";
import type { ForwardContext, ForwardOptions } from "../ops/types.ts";
import type { ModelBackend } from "./engine.ts";
import { createKvCache, type KvOptions } from "./kv-cache/create-kv-cache.ts";
import { chooseKvMode } from "./kv-cache/auto.ts";
import { KV_MODES, type KvCache } from "./kv-cache/types.ts";
import { createLatentCodec } from "./kv-cache/xquant-svd.ts";
import { ropeInverseFrequencies } from "../models/rope-frequencies.ts";
import type { PackedModel } from "./packed-model.ts";

export const KV_TYPES = [...KV_MODES, "auto"] as const;
export type KvType = typeof KV_TYPES[number];

export interface WasmBackendOptions {
  readonly contextLength?: number;
  /** Threads for matmuls and attention, including the calling one; default 1. */
  readonly threads?: number;
  readonly kv?: KvType;
  /** Bytes the attention state may take (`--kv auto` picks the fastest mode that fits). */
  readonly kvBudget?: number;
  readonly kvOptions?: KvOptions;
}

export interface WasmBackend extends ModelBackend {
  readonly cache: KvCache;
  readonly threads: number;
  dispose(): Promise<void>;
}

export async function createWasmBackend(model: PackedModel, options: WasmBackendOptions = {}): Promise<WasmBackend> {
  const { arch, args } = resolveModel(model.header.config);
  const weights = packedWeightStore(model.matrices, model.vectors, model.path);
  checkTensors(arch, args, weights.has, model.path);
  const kv = options.kv ?? "f16";
  if (!(KV_TYPES as readonly string[]).includes(kv)) {
    throw new InvalidArgumentError("kv", `--kv ${kv} is not available in this backend; choose one of ${KV_TYPES.join(", ")}`);
  }
  const contextLength = options.contextLength ?? Math.min(args.maxPositions, 4096);
  const { threads, pool, shardPool, note } = await startThreads(model, options.threads ?? 1);
  const ops = createWasmOps(model.kernels, pool ?? shardPool, { matrices: model.matrices });
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
    kernels: model.kernels,
    pool,
    shape,
    hidden: args.hiddenSize,
    invFreq: ropeInverseFrequencies(args.headDim, args.ropeTheta, args.ropeScaling),
    projector: (layer, x, n, startPos) => arch.projectKv(args, { ops, weights }, layer, x, n, startPos),
    latent: () => createLatentCodec(model.kernels, ops, weights, args, arch.projectKv),
  }, options.kvOptions);
  const ctx: ForwardContext = { ops, weights, attention: cache } as ForwardContext;

  return {
    name: `wasm engine, ${threads} thread${threads === 1 ? "" : "s"}${note}, kv ${mode}`,
    args,
    contextLength,
    cache,
    threads,
    forward(tokens: readonly number[], forwardOptions: ForwardOptions = {}) {
      const startPos = cache.length();
      if (startPos + tokens.length > contextLength) throw new ContextLengthError(startPos + tokens.length, 0, contextLength);
      const blocks: Float32Array[] = [];
      for (let i = 0; i < tokens.length; i += MAX_TOKENS_PER_CALL) {
        const block = tokens.slice(i, i + MAX_TOKENS_PER_CALL);
        const last = i + MAX_TOKENS_PER_CALL >= tokens.length;
        // Earlier blocks only fill the cache unless every position's output is wanted.
        const result = arch.forward(args, ctx, block, startPos + i, forwardOptions);
        if (forwardOptions.allLogits || last) blocks.push(result);
        // A block of prefill leaves megabytes of dead activation arrays that the engines' GC
        // collects late (peak RSS grew by hundreds of MB over a long prompt); collect between
        // blocks so the peak stays one block above the steady state. Decode steps skip this.
        if (!last) collectGarbage();
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

/** A synchronous collection where the runtime offers one (Bun; Deno/Node with --expose-gc). */
function collectGarbage(): void {
  const runtime = globalThis as { Bun?: { gc(force: boolean): void }; gc?: () => void };
  if (runtime.Bun !== undefined) runtime.Bun.gc(true);
  else runtime.gc?.();
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
