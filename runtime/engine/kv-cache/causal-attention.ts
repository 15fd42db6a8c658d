/**
 * Causal attention of a block of queries over keys and values in WASM memory (an f32/f16 KV
 * cache, or the f32 staging of the compressed caches), queued on the kernel queue: one token
 * runs attention_* (decode), a block attention_tokens_* (prefill; equal to the decode kernel
 * per token, bit for bit), with the query heads split in groups across the worker pool. q and
 * out are run-state buffers, read and written in place. Each call's arguments are checked
 * once per (keys, query buffer, tokens), at the largest extent the context allows; per step
 * only the attended length (and the sliding window's first row) change.
 */
import { ShapeError } from "../../errors.ts";
import {
  attentionCallArgs,
  attentionTokensCallArgs,
  attentionTokensScratchFloats,
  type CacheType,
} from "../../kernels/elementwise.ts";
import type { KernelQueue } from "../../threads/kernel-queue.ts";
import { splitRows } from "../../threads/pool.ts";
import type { WasmActivation } from "../../ops/wasm-ops.ts";
import type { CacheShape } from "./reference-cache.ts";

/** Query tokens one call attends at most (the ops' prefill tile). */
export const ATTENTION_BLOCK_TOKENS = 64;

/**
 * Scratch floats that serve both kernels under any head split: the decode kernel takes one
 * row of contextLength per head, a block one shard 4 rows (attentionTokensScratchFloats), and
 * there are at most nHeads shards.
 */
export function attentionScratchBound(nHeads: number, contextLength: number): number {
  return 4 * nHeads * contextLength;
}

/** WASM bytes of the attention scratch. */
export function attentionBuffersBytes(shape: CacheShape): number {
  return attentionScratchBound(shape.numHeads, shape.contextLength) * 4 + 64;
}

/** Keys and values to attend: row 0 at byte offsets k and v holds position `base`. */
export interface KvRegion {
  readonly k: number;
  readonly v: number;
  /** Rows the region holds (positions base..base+rows-1). */
  readonly rows: number;
  /** Storage ids of the region (steps writing them come before the attention). */
  readonly storages: readonly number[];
}

interface Plan {
  readonly out: WasmActivation;
  readonly fn: number;
  readonly calls: number[][];
  readonly reads: number[];
  readonly writes: number[];
}

export interface CausalAttention {
  /**
   * Queues attention of q (n tokens at positions startPos..) over the region's rows (row 0 =
   * position base) into out, the sliding window applied when the shape has one.
   */
  run(region: KvRegion, q: WasmActivation, out: WasmActivation, n: number, startPos: number, base: number): void;
}

export function createCausalAttention(queue: KernelQueue, shape: CacheShape, type: CacheType): CausalAttention {
  const k = queue.kernels;
  const { numHeads: nHeads, numKvHeads: nKvHeads, headDim, contextLength } = shape;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const elem = type === "f32" ? 4 : 2;
  const window = shape.slidingWindow ?? 0;
  const scratch = k.arena.alloc(attentionScratchBound(nHeads, contextLength) * 4, 64);
  const scratchStorage = queue.storage();
  const plans = new Map<KvRegion, WeakMap<WasmActivation, Plan[]>>();

  const plan = (region: KvRegion, q: WasmActivation, out: WasmActivation, n: number): Plan => {
    if (q.width !== qDim || out.width !== qDim) throw new ShapeError("attention", `q and out of width ${qDim}`, `${q.width} and ${out.width}`);
    if (n < 1 || n > ATTENTION_BLOCK_TOKENS || n > q.rows || n > out.rows) throw new ShapeError("attention", `1..${ATTENTION_BLOCK_TOKENS} query tokens`, String(n));
    const heads = splitRows(nHeads, queue.parts);
    const rows = region.rows;
    const calls = heads.map(([headBegin, headEnd], s) => {
      // Checked at the largest extent: every row of the region attended.
      if (n === 1) {
        return attentionCallArgs(k, type, {
          q: q.ptr, kCache: region.k, vCache: region.v, out: out.ptr, scratch: scratch + headBegin * rows * 4,
          nHeads, nKvHeads, headDim, kvLen: rows, headBegin, headEnd,
        });
      }
      return attentionTokensCallArgs(k, type, {
        q: q.ptr, kCache: region.k, vCache: region.v, out: out.ptr, scratch: scratch + s * attentionTokensScratchFloats(rows) * 4,
        nHeads, nKvHeads, headDim, end0: rows - n + 1, nTokens: n, window, headBegin, headEnd,
      });
    });
    const exportName = n === 1 ? `attention_${type}` : `attention_tokens_${type}`;
    return { out, fn: queue.fn(exportName), calls, reads: [q.storage, ...region.storages], writes: [out.storage, scratchStorage] };
  };

  return {
    run(region, q, out, n, startPos, base) {
      const end = startPos + n - base; // rows the last query reads
      if (startPos < base || end > region.rows) throw new ShapeError("attention", `positions ${base}..${base + region.rows - 1}`, `${startPos}..${startPos + n - 1}`);
      // By region, query buffer and tokens; the output buffer is checked against the plan's.
      let byRegion = plans.get(region);
      if (byRegion === undefined) plans.set(region, byRegion = new WeakMap());
      let byTokens = byRegion.get(q);
      if (byTokens === undefined) byRegion.set(q, byTokens = []);
      let p = byTokens[n];
      if (p === undefined || p.out !== out) p = byTokens[n] = plan(region, q, out, n);
      if (n === 1) {
        const first = window > 0 ? Math.max(0, end - window) : 0;
        for (let i = 0; i < p.calls.length; i++) {
          const args = p.calls[i];
          args[1] = region.k + first * kvDim * elem;
          args[2] = region.v + first * kvDim * elem;
          args[8] = end - first; // kvLen
        }
      } else {
        for (let i = 0; i < p.calls.length; i++) p.calls[i][8] = end - n + 1; // end0
      }
      queue.step(p.fn, p.calls, p.reads, p.writes);
    },
  };
}
