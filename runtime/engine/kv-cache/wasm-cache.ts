/**
 * KV cache in WebAssembly memory, f32 or f16 per element: the new keys and values are stored
 * from the run state by the kernels (f32_to_f16 for f16; a copy for f32) and attention runs
 * over the cache in place (./causal-attention.ts), all queued on the kernel queue, so a decode
 * step's attention needs no host work. Layout per layer: keys and values (contextLength,
 * nKvHeads, headDim). A sliding window (Mistral) attends the most recent `slidingWindow`
 * positions only.
 */
import { ContextLengthError, ShapeError } from "../../errors.ts";
import { type CacheType, f32ToF16CallArgs, scaleCallArgs } from "../../kernels/elementwise.ts";
import type { KernelQueue } from "../../threads/kernel-queue.ts";
import type { AttentionInput } from "../../ops/types.ts";
import type { WasmActivation } from "../../ops/wasm-ops.ts";
import { attentionBuffersBytes, createCausalAttention, type KvRegion } from "./causal-attention.ts";
import type { CacheShape } from "./reference-cache.ts";
import { checkMeta, type KvCache, type StateArray } from "./types.ts";

export interface WasmCache extends KvCache {
  readonly type: CacheType;
}

/** Bytes a cache of this shape and type needs in WASM memory (for the fit check). */
export function wasmCacheBytes(shape: CacheShape, type: CacheType): number {
  const elem = type === "f32" ? 4 : 2;
  const kvDim = shape.numKvHeads * shape.headDim;
  const cache = 2 * shape.numLayers * shape.contextLength * kvDim * elem;
  return cache + attentionBuffersBytes(shape);
}

/** Checks a block of new tokens against a cache holding `cachedLength` positions. */
export function checkAttentionInput(shape: CacheShape, input: AttentionInput<WasmActivation>, cachedLength: number): void {
  const { n, startPos, q, k, v, out } = input;
  const kvDim = shape.numKvHeads * shape.headDim;
  const qDim = shape.numHeads * shape.headDim;
  if (startPos + n > shape.contextLength) throw new ContextLengthError(startPos, n, shape.contextLength);
  if (startPos > cachedLength) throw new ShapeError("attention", `start position <= cached length ${cachedLength}`, String(startPos));
  if (k.width !== kvDim || v.width !== kvDim || q.width !== qDim || out.width !== qDim || n > k.rows || n > v.rows) {
    throw new ShapeError("attention", `q/out of width ${qDim}, k/v of width ${kvDim}`, `${q.width}, ${out.width}, ${k.width}, ${v.width}`);
  }
}

export function createWasmCache(queue: KernelQueue, shape: CacheShape, type: CacheType): WasmCache {
  const kernels = queue.kernels;
  const { numLayers, numKvHeads, headDim, contextLength } = shape;
  const elem = type === "f32" ? 4 : 2;
  const kvDim = numKvHeads * headDim;
  const layerBytes = contextLength * kvDim * elem;
  const regions: (KvRegion & { storage: number })[] = [];
  for (let l = 0; l < numLayers; l++) {
    const storage = queue.storage();
    regions.push({ k: kernels.arena.alloc(layerBytes, 64), v: kernels.arena.alloc(layerBytes, 64), rows: contextLength, storage, storages: [storage] });
  }
  const attention = createCausalAttention(queue, shape, type);
  const lengths = new Array<number>(numLayers).fill(0);

  // Storing n rows of k or v into a layer's keys or values at a position: checked once per
  // (target, source, rows) at the last position, the target row moved per call.
  const store = queue.fn(type === "f32" ? "scale_f32" : "f32_to_f16");
  const stores = new Map<number, Map<WasmActivation, { calls: number[][]; reads: number[]; writes: number[] }[]>>();
  const storeCall = (src: WasmActivation, n: number, base: number, storage: number, pos: number) => {
    let bySource = stores.get(base);
    if (bySource === undefined) stores.set(base, bySource = new Map());
    let byRows = bySource.get(src);
    if (byRows === undefined) bySource.set(src, byRows = []);
    let plan = byRows[n];
    if (plan === undefined) {
      const last = base + (contextLength - n) * kvDim * elem;
      const args = type === "f32"
        ? scaleCallArgs(kernels, { x: src.ptr, s: 1, out: last, n: n * kvDim }) // x·1: an exact copy
        : f32ToF16CallArgs(kernels, { src: src.ptr, dst: last, n: n * kvDim });
      byRows[n] = plan = { calls: [args], reads: [src.storage], writes: [storage] };
    }
    plan.calls[0][type === "f32" ? 2 : 1] = base + pos * kvDim * elem;
    queue.step(store, plan.calls, plan.reads, plan.writes);
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
      queue.flush();
      const arrays: Record<string, StateArray> = {};
      for (let l = 0; l < numLayers; l++) {
        arrays[`k${l}`] = rowsOf(regions[l].k, lengths[l]);
        arrays[`v${l}`] = rowsOf(regions[l].v, lengths[l]);
      }
      return { mode: type, length: lengths[0], meta, arrays };
    },
    importState(state) {
      checkMeta(type, meta, state);
      queue.flush();
      for (let l = 0; l < numLayers; l++) {
        const k = state.arrays[`k${l}`];
        const v = state.arrays[`v${l}`];
        const rows = k === undefined ? -1 : k.length / kvDim;
        if (k === undefined || v === undefined || k.BYTES_PER_ELEMENT !== elem || v.length !== k.length || rows !== state.length) {
          throw new ShapeError("cache restore", `${state.length} rows of ${kvDim} ${type} keys and values in layer ${l}`, `${k?.length} and ${v?.length} values`);
        }
        new Uint8Array(kernels.memory.buffer, regions[l].k, k.byteLength).set(new Uint8Array(k.buffer, k.byteOffset, k.byteLength));
        new Uint8Array(kernels.memory.buffer, regions[l].v, v.byteLength).set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
        lengths[l] = state.length;
      }
    },
    length: () => lengths[0],
    truncate(pos) {
      for (let l = 0; l < numLayers; l++) lengths[l] = Math.min(lengths[l], pos);
    },
    attend(input) {
      const { layer, q, k, v, n, startPos, out } = input as AttentionInput<WasmActivation>;
      checkAttentionInput(shape, input as AttentionInput<WasmActivation>, lengths[layer]);
      queue.boundary();
      const region = regions[layer];
      storeCall(k, n, region.k, region.storage, startPos);
      storeCall(v, n, region.v, region.storage, startPos);
      lengths[layer] = startPos + n;
      attention.run(region, q, out, n, startPos, 0);
    },
  };
}
