/**
 * Attention over keys and values staged as f32 in WASM memory, for the compressed caches:
 * they dequantise (q8/q4) or rematerialise (XQuant) the positions a block of queries reads
 * into the staging buffers, then the WASM attention kernels run over them (./causal-attention.ts)
 * with the query heads split across the worker pool. The staging buffers are run-state buffers
 * of (contextLength, kvDim), so projectKv can write rematerialised rows into them directly;
 * staged row 0 holds position `base`.
 */
import type { WasmActivation, WasmOps } from "../../ops/wasm-ops.ts";
import { attentionBuffersBytes, createCausalAttention, type KvRegion } from "./causal-attention.ts";
import type { CacheShape } from "./reference-cache.ts";

export interface StagedAttention {
  /** f32 views of the staging buffers, (contextLength, kvDim) each; valid until memory grows. Flush the queue first. */
  views(): { k: Float32Array; v: Float32Array };
  /** Staged rows from `row` on, as run-state handles (what projectKv writes into). */
  rowsFrom(row: number): { k: WasmActivation; v: WasmActivation };
  /**
   * Queues causal attention of q (n tokens at positions startPos..) over staged keys and values
   * of positions base..startPos+n-1 into out.
   */
  run(q: WasmActivation, out: WasmActivation, n: number, startPos: number, base: number): void;
  /** First position a block of queries starting at startPos reads (sliding window aware). */
  firstNeeded(startPos: number): number;
}

/** WASM bytes the staging buffers and kernel scratch take. */
export function stagedAttentionBytes(shape: CacheShape): number {
  const kvDim = shape.numKvHeads * shape.headDim;
  return 2 * shape.contextLength * kvDim * 4 + attentionBuffersBytes(shape) + 2 * 64;
}

export function createStagedAttention(ops: WasmOps, shape: CacheShape): StagedAttention {
  const { numKvHeads, headDim, contextLength } = shape;
  const kvDim = numKvHeads * headDim;
  const staging = ops.createState({ k: kvDim, v: kvDim }, contextLength, contextLength);
  const region: KvRegion = { k: staging.k.ptr, v: staging.v.ptr, rows: contextLength, storages: [staging.k.storage, staging.v.storage] };
  const attention = createCausalAttention(ops.queue, shape, "f32");
  const firstNeeded = (pos: number) => shape.slidingWindow === undefined ? 0 : Math.max(0, pos + 1 - shape.slidingWindow);
  const memory = ops.queue.kernels.memory;

  return {
    views: () => ({
      k: new Float32Array(memory.buffer, staging.k.ptr, contextLength * kvDim),
      v: new Float32Array(memory.buffer, staging.v.ptr, contextLength * kvDim),
    }),
    rowsFrom: (row) => ({ k: ops.rows(staging.k, row), v: ops.rows(staging.v, row) }),
    firstNeeded,
    run(q, out, n, startPos, base) {
      attention.run(region, q, out, n, startPos, base);
    },
  };
}
