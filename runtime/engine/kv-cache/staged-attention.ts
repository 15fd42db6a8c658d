/**
 * Attention over keys and values staged as f32 in WASM memory, for the compressed caches:
 * they dequantise (q8/q4) or rematerialise (XQuant) the positions a block of queries reads
 * into the staging buffers, then the WASM attention kernels run over them (wasm-cache.ts
 * attendCausal: the decode kernel for one token, attention_tokens_f32 for a block) with the
 * query heads split across the worker pool. Staging layout
 * (positions, nKvHeads, headDim); staged row 0 holds position `base`.
 */
import { ContextLengthError, ShapeError } from "../../errors.ts";
import type { AttentionInput } from "../../ops/types.ts";
import type { Pool } from "../../kernels/pool.ts";
import type { Kernels } from "../../kernels/wasm.ts";
import type { CacheShape } from "./reference-cache.ts";
import { allocAttentionBuffers, attendCausal, attentionBuffersBytes } from "./wasm-cache.ts";

export interface StagedAttention {
  /** f32 views of the staging buffers, (contextLength, kvDim) each; valid until memory grows. */
  views(): { k: Float32Array; v: Float32Array };
  /**
   * Causal attention of q (n, nHeads*headDim) at positions startPos.. over staged keys and
   * values of positions base..startPos+n-1; returns (n, nHeads*headDim).
   */
  run(q: Float32Array, n: number, startPos: number, base: number): Float32Array;
  /** First position a block of queries starting at startPos reads (sliding window aware). */
  firstNeeded(startPos: number): number;
}

/** WASM bytes the staging buffers and kernel scratch take. */
export function stagedAttentionBytes(shape: CacheShape): number {
  const kvDim = shape.numKvHeads * shape.headDim;
  return 2 * shape.contextLength * kvDim * 4 + attentionBuffersBytes(shape) + 2 * 64;
}

export function createStagedAttention(kernels: Kernels, pool: Pool | undefined, shape: CacheShape): StagedAttention {
  const { numKvHeads, headDim, contextLength } = shape;
  const kvDim = numKvHeads * headDim;
  const kPtr = kernels.arena.alloc(contextLength * kvDim * 4, 64);
  const vPtr = kernels.arena.alloc(contextLength * kvDim * 4, 64);
  const buffers = allocAttentionBuffers(kernels, shape);
  const firstNeeded = (pos: number) => shape.slidingWindow === undefined ? 0 : Math.max(0, pos + 1 - shape.slidingWindow);

  return {
    views: () => ({
      k: new Float32Array(kernels.memory.buffer, kPtr, contextLength * kvDim),
      v: new Float32Array(kernels.memory.buffer, vPtr, contextLength * kvDim),
    }),
    firstNeeded,
    run(q, n, startPos, base) {
      return attendCausal(kernels, pool, "f32", buffers, shape, { q, n, startPos, base, kCache: kPtr, vCache: vPtr });
    },
  };
}

/** The checks every attention state makes on a block of new tokens (as the reference cache). */
export function checkAttentionInput(shape: CacheShape, input: AttentionInput, cachedLength: number): void {
  const { n, startPos, q, k, v } = input;
  const kvDim = shape.numKvHeads * shape.headDim;
  if (startPos + n > shape.contextLength) throw new ContextLengthError(startPos, n, shape.contextLength);
  if (startPos > cachedLength) throw new ShapeError("attention", `start position <= cached length ${cachedLength}`, String(startPos));
  if (k.length !== n * kvDim || v.length !== n * kvDim || q.length !== n * shape.numHeads * shape.headDim) {
    throw new ShapeError("attention", `q ${n}x${shape.numHeads * shape.headDim}, k/v ${n}x${kvDim}`, `${q.length}, ${k.length}, ${v.length}`);
  }
}
