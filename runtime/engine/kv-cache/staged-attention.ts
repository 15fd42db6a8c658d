/**
 * Attention over keys and values staged as f32 in WASM memory, for the compressed caches:
 * they dequantise (q8/q4) or rematerialise (XQuant) the positions a block of queries reads
 * into the staging buffers, then the WASM attention_f32 kernel runs per query token with the
 * query heads split across the worker pool (wasm-cache.ts attendHeads). Staging layout
 * (positions, nKvHeads, headDim); staged row 0 holds position `base`.
 */
import { ContextLengthError, ShapeError } from "../../errors.ts";
import type { AttentionInput } from "../../ops/types.ts";
import { attentionScratchFloats } from "../../kernels/elementwise.ts";
import type { Pool } from "../../kernels/pool.ts";
import type { Kernels } from "../../kernels/wasm.ts";
import type { CacheShape } from "./reference-cache.ts";
import { attendHeads } from "./wasm-cache.ts";

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
  return 2 * shape.contextLength * kvDim * 4 + (attentionScratchFloats(shape.numHeads, shape.contextLength) + 2 * shape.numHeads * shape.headDim) * 4 + 4 * 64;
}

export function createStagedAttention(kernels: Kernels, pool: Pool | undefined, shape: CacheShape): StagedAttention {
  const { numHeads, numKvHeads, headDim, contextLength } = shape;
  const kvDim = numKvHeads * headDim;
  const qDim = numHeads * headDim;
  const kPtr = kernels.arena.alloc(contextLength * kvDim * 4, 64);
  const vPtr = kernels.arena.alloc(contextLength * kvDim * 4, 64);
  const qPtr = kernels.arena.alloc(qDim * 4, 64);
  const outPtr = kernels.arena.alloc(qDim * 4, 64);
  const scratchPtr = kernels.arena.alloc(attentionScratchFloats(numHeads, contextLength) * 4, 64);
  const firstNeeded = (pos: number) => shape.slidingWindow === undefined ? 0 : Math.max(0, pos + 1 - shape.slidingWindow);

  return {
    views: () => ({
      k: new Float32Array(kernels.memory.buffer, kPtr, contextLength * kvDim),
      v: new Float32Array(kernels.memory.buffer, vPtr, contextLength * kvDim),
    }),
    firstNeeded,
    run(q, n, startPos, base) {
      const out = new Float32Array(n * qDim);
      for (let t = 0; t < n; t++) {
        const end = startPos + t + 1;
        const first = firstNeeded(end - 1);
        const kvLen = end - first;
        const memory = kernels.memory.buffer;
        new Float32Array(memory, qPtr, qDim).set(q.subarray(t * qDim, (t + 1) * qDim));
        attendHeads(kernels, pool, "f32", {
          q: qPtr,
          kCache: kPtr + (first - base) * kvDim * 4,
          vCache: vPtr + (first - base) * kvDim * 4,
          out: outPtr,
          scratch: scratchPtr,
          nHeads: numHeads,
          nKvHeads: numKvHeads,
          headDim,
          kvLen,
        });
        out.set(new Float32Array(kernels.memory.buffer, outPtr, qDim), t * qDim);
      }
      return out;
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
