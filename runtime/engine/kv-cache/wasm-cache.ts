/**
 * KV cache in WebAssembly memory, f32 or f16 per element, with attention computed by the
 * WASM kernels (attention_* for one decode token, attention_tokens_* for a prefill block),
 * query heads split in small groups that the worker pool's threads claim dynamically.
 * Layout per layer: keys and values (contextLength, nKvHeads, headDim). A sliding window
 * (Mistral) attends the most recent `slidingWindow` positions only.
 */
import { ContextLengthError, ShapeError } from "../../errors.ts";
import { f32ToF16 } from "../../format/pack-f16.ts";
import {
  type AttentionArgs,
  attentionCallArgs,
  attentionTokensCallArgs,
  attentionTokensScratchFloats,
  type CacheType,
} from "../../kernels/elementwise.ts";
import type { Pool } from "../../kernels/pool.ts";
import { CHUNKS_PER_THREAD, splitRows } from "../../kernels/pool.ts";
import type { Kernels } from "../../kernels/wasm.ts";
import type { AttentionInput } from "../../ops/types.ts";
import type { CacheShape } from "./reference-cache.ts";
import { checkMeta } from "./kivi-cache.ts";
import type { KvCache, StateArray } from "./types.ts";

export interface WasmCache extends KvCache {
  readonly type: CacheType;
}

/** Query tokens per attention_tokens call: the staging buffers for q and out hold this many. */
export const ATTENTION_BLOCK_TOKENS = 64;

/**
 * Scratch floats that serve both kernels under any head split: the decode kernel takes one
 * row of contextLength per head, a block one shard 4 rows (attentionTokensScratchFloats), and
 * there are at most nHeads shards.
 */
export function attentionScratchBound(nHeads: number, contextLength: number): number {
  return 4 * nHeads * contextLength;
}

/** WASM bytes of the attention buffers: q and out of one block, and the scratch. */
export function attentionBuffersBytes(shape: CacheShape): number {
  const qDim = shape.numHeads * shape.headDim;
  return (2 * ATTENTION_BLOCK_TOKENS * qDim + attentionScratchBound(shape.numHeads, shape.contextLength)) * 4 + 3 * 64;
}

/** Bytes a cache of this shape and type needs in WASM memory (for the fit check). */
export function wasmCacheBytes(shape: CacheShape, type: CacheType): number {
  const elem = type === "f32" ? 4 : 2;
  const kvDim = shape.numKvHeads * shape.headDim;
  const cache = 2 * shape.numLayers * shape.contextLength * kvDim * elem;
  return cache + attentionBuffersBytes(shape);
}

/** The q/out staging and scratch buffers of `attendCausal`, allocated once per cache. */
export interface AttentionBuffers {
  readonly q: number;
  readonly out: number;
  readonly scratch: number;
}

export function allocAttentionBuffers(kernels: Kernels, shape: CacheShape): AttentionBuffers {
  const qDim = shape.numHeads * shape.headDim;
  return {
    q: kernels.arena.alloc(ATTENTION_BLOCK_TOKENS * qDim * 4, 64),
    out: kernels.arena.alloc(ATTENTION_BLOCK_TOKENS * qDim * 4, 64),
    scratch: kernels.arena.alloc(attentionScratchBound(shape.numHeads, shape.contextLength) * 4, 64),
  };
}

/**
 * One query token's attention with the query heads split across the pool (each shard gets
 * its own slice of `scratch`, which must hold nHeads * kvLen floats).
 */
export function attendHeads(kernels: Kernels, pool: Pool | undefined, type: CacheType, args: AttentionArgs): void {
  const shards = splitRows(args.nHeads, pool === undefined ? 1 : pool.threads * CHUNKS_PER_THREAD).map(([headBegin, headEnd]) =>
    attentionCallArgs(kernels, type, { ...args, scratch: args.scratch + headBegin * args.kvLen * 4, headBegin, headEnd })
  );
  if (pool === undefined || shards.length === 1) kernels.exports[`attention_${type}`](...shards[0]);
  else pool.runTasks(shards.map((args) => ({ exportName: `attention_${type}`, args })));
}

/**
 * Causal attention of q (n tokens at positions startPos..) over cached keys and values whose
 * row 0 is position `base` (kCache, vCache: WASM offsets of that row), the sliding window
 * applied when the shape has one; returns (n, nHeads·headDim). One token runs the decode
 * kernel, a block runs attention_tokens_* (one pool batch per ATTENTION_BLOCK_TOKENS tokens),
 * which equals the decode kernel per token bit for bit.
 */
export function attendCausal(
  kernels: Kernels,
  pool: Pool | undefined,
  type: CacheType,
  buffers: AttentionBuffers,
  shape: CacheShape,
  at: { q: Float32Array; n: number; startPos: number; base: number; kCache: number; vCache: number },
): Float32Array {
  const { numHeads: nHeads, numKvHeads: nKvHeads, headDim } = shape;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const elem = type === "f32" ? 4 : 2;
  const window = shape.slidingWindow ?? 0;
  const out = new Float32Array(at.n * qDim);
  if (at.n === 1) {
    const end = at.startPos + 1 - at.base; // attends staged rows first..end-1
    const first = window > 0 ? Math.max(0, end - window) : 0;
    new Float32Array(kernels.memory.buffer, buffers.q, qDim).set(at.q);
    attendHeads(kernels, pool, type, {
      q: buffers.q,
      kCache: at.kCache + first * kvDim * elem,
      vCache: at.vCache + first * kvDim * elem,
      out: buffers.out,
      scratch: buffers.scratch,
      nHeads,
      nKvHeads,
      headDim,
      kvLen: end - first,
    });
    out.set(new Float32Array(kernels.memory.buffer, buffers.out, qDim));
    return out;
  }
  const parts = pool === undefined ? 1 : pool.threads * CHUNKS_PER_THREAD;
  for (let t0 = 0; t0 < at.n; t0 += ATTENTION_BLOCK_TOKENS) {
    const nTokens = Math.min(ATTENTION_BLOCK_TOKENS, at.n - t0);
    const end0 = at.startPos + t0 + 1 - at.base;
    const kvMax = end0 + nTokens - 1;
    new Float32Array(kernels.memory.buffer, buffers.q, nTokens * qDim).set(at.q.subarray(t0 * qDim, (t0 + nTokens) * qDim));
    let scratch = buffers.scratch;
    const shards = splitRows(nHeads, parts).map(([headBegin, headEnd]) => {
      const args = attentionTokensCallArgs(kernels, type, {
        q: buffers.q,
        kCache: at.kCache,
        vCache: at.vCache,
        out: buffers.out,
        scratch,
        nHeads,
        nKvHeads,
        headDim,
        end0,
        nTokens,
        window,
        headBegin,
        headEnd,
      });
      scratch += attentionTokensScratchFloats(kvMax) * 4;
      return args;
    });
    const exportName = `attention_tokens_${type}`;
    if (pool === undefined || shards.length === 1) kernels.exports[exportName](...shards[0]);
    else pool.runTasks(shards.map((args) => ({ exportName, args })));
    out.set(new Float32Array(kernels.memory.buffer, buffers.out, nTokens * qDim), t0 * qDim);
  }
  return out;
}

export function createWasmCache(kernels: Kernels, pool: Pool | undefined, shape: CacheShape, type: CacheType): WasmCache {
  const { numLayers, numHeads, numKvHeads, headDim, contextLength } = shape;
  const elem = type === "f32" ? 4 : 2;
  const kvDim = numKvHeads * headDim;
  const layerBytes = contextLength * kvDim * elem;
  const keys: number[] = [];
  const values: number[] = [];
  for (let l = 0; l < numLayers; l++) {
    keys.push(kernels.arena.alloc(layerBytes, 64));
    values.push(kernels.arena.alloc(layerBytes, 64));
  }
  const buffers = allocAttentionBuffers(kernels, shape);
  const lengths = new Array<number>(numLayers).fill(0);

  const store = (base: number, pos: number, rows: Float32Array) => {
    const offset = base + pos * kvDim * elem;
    if (type === "f32") new Float32Array(kernels.memory.buffer, offset, rows.length).set(rows);
    else {
      const bits = new Uint16Array(kernels.memory.buffer, offset, rows.length);
      for (let i = 0; i < rows.length; i++) bits[i] = f32ToF16(rows[i]);
    }
  };

  const meta = { numLayers, kvDim, contextLength };
  const rowsOf = (base: number, length: number): StateArray => {
    const bytes = new Uint8Array(kernels.memory.buffer, base, length * kvDim * elem).slice();
    return type === "f32" ? new Float32Array(bytes.buffer) : new Uint16Array(bytes.buffer);
  };

  return {
    shape,
    type,
    mode: type,
    meta,
    bytesPerToken: 2 * numLayers * kvDim * elem,
    fixedBytes: attentionBuffersBytes(shape),
    exportState() {
      const arrays: Record<string, StateArray> = {};
      for (let l = 0; l < numLayers; l++) {
        arrays[`k${l}`] = rowsOf(keys[l], lengths[l]);
        arrays[`v${l}`] = rowsOf(values[l], lengths[l]);
      }
      return { mode: type, length: lengths[0], meta, arrays };
    },
    importState(state) {
      checkMeta(type, meta, state);
      for (let l = 0; l < numLayers; l++) {
        const k = state.arrays[`k${l}`];
        const v = state.arrays[`v${l}`];
        const rows = k === undefined ? -1 : k.length / kvDim;
        if (k === undefined || v === undefined || k.BYTES_PER_ELEMENT !== elem || v.length !== k.length || rows !== state.length) {
          throw new ShapeError("cache restore", `${state.length} rows of ${kvDim} ${type} keys and values in layer ${l}`, `${k?.length} and ${v?.length} values`);
        }
        new Uint8Array(kernels.memory.buffer, keys[l], k.byteLength).set(new Uint8Array(k.buffer, k.byteOffset, k.byteLength));
        new Uint8Array(kernels.memory.buffer, values[l], v.byteLength).set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
        lengths[l] = state.length;
      }
    },
    length: () => lengths[0],
    truncate(pos) {
      for (let l = 0; l < numLayers; l++) lengths[l] = Math.min(lengths[l], pos);
    },
    attend({ layer, q, k, v, n, startPos }: AttentionInput): Float32Array {
      if (startPos + n > contextLength) throw new ContextLengthError(startPos, n, contextLength);
      if (startPos > lengths[layer]) {
        throw new ShapeError("attention", `start position <= cached length ${lengths[layer]}`, String(startPos));
      }
      if (k.length !== n * kvDim || v.length !== n * kvDim || q.length !== n * numHeads * headDim) {
        throw new ShapeError("attention", `q ${n}x${numHeads * headDim}, k/v ${n}x${kvDim}`, `${q.length}, ${k.length}, ${v.length}`);
      }
      store(keys[layer], startPos, k);
      store(values[layer], startPos, v);
      lengths[layer] = startPos + n;

      return attendCausal(kernels, pool, type, buffers, shape, { q, n, startPos, base: 0, kCache: keys[layer], vCache: values[layer] });
    },
  };
}
