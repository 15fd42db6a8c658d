/**
 * KV cache in WebAssembly memory, f32 or f16 per element, with attention computed by the
 * WASM kernels (attention_f32 / attention_f16), query heads split in small groups that the
 * worker pool's threads claim dynamically.
 * Layout per layer: keys and values (contextLength, nKvHeads, headDim). A sliding window
 * (Mistral) attends the most recent `slidingWindow` positions only.
 */
import { ContextLengthError, ShapeError } from "../../errors.ts";
import { f32ToF16 } from "../../format/pack-f16.ts";
import { type AttentionArgs, attentionCallArgs, attentionScratchFloats, type CacheType } from "../../kernels/elementwise.ts";
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

/** Bytes a cache of this shape and type needs in WASM memory (for the fit check). */
export function wasmCacheBytes(shape: CacheShape, type: CacheType): number {
  const elem = type === "f32" ? 4 : 2;
  const kvDim = shape.numKvHeads * shape.headDim;
  const cache = 2 * shape.numLayers * shape.contextLength * kvDim * elem;
  const scratch = (shape.numHeads * shape.contextLength + 2 * shape.numHeads * shape.headDim) * 4;
  return cache + scratch + 64 * 4;
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
  const qPtr = kernels.arena.alloc(numHeads * headDim * 4, 64);
  const outPtr = kernels.arena.alloc(numHeads * headDim * 4, 64);
  const scratchPtr = kernels.arena.alloc(attentionScratchFloats(numHeads, contextLength) * 4, 64);
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
    fixedBytes: wasmCacheBytes({ ...shape, contextLength: 0 }, type) + shape.numHeads * contextLength * 4,
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

      const qDim = numHeads * headDim;
      const out = new Float32Array(n * qDim);
      const memory = kernels.memory.buffer;
      for (let t = 0; t < n; t++) {
        const end = startPos + t + 1; // attends positions first..end-1
        const first = shape.slidingWindow === undefined ? 0 : Math.max(0, end - shape.slidingWindow);
        const kvLen = end - first;
        new Float32Array(memory, qPtr, qDim).set(q.subarray(t * qDim, (t + 1) * qDim));
        attendHeads(kernels, pool, type, {
          q: qPtr,
          kCache: keys[layer] + first * kvDim * elem,
          vCache: values[layer] + first * kvDim * elem,
          out: outPtr,
          scratch: scratchPtr,
          nHeads: numHeads,
          nKvHeads: numKvHeads,
          headDim,
          kvLen,
        });
        out.set(new Float32Array(memory, outPtr, qDim), t * qDim);
      }
      return out;
    },
  };
}
