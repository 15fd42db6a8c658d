/**
 * The fp32 reference engine: an imported checkpoint, its architecture's forward pass over
 * the reference ops, and an fp32 KV cache. Every fast path is checked against it. Prompts run
 * in tiles of REFERENCE_TILE tokens, the rows of its run state.
 */
import { ContextLengthError } from "../errors.ts";
import type { ModelSource } from "../models/types.ts";
import { checkTensors, type ModelArgs, resolveModel } from "../models/registry.ts";
import { createReferenceWeights, referenceOps } from "../ops/reference.ts";
import type { ForwardContext, ForwardOptions } from "../ops/types.ts";
import { createReferenceCache, type ReferenceCache } from "./kv-cache/reference-cache.ts";

export interface ReferenceEngine {
  readonly args: ModelArgs;
  readonly source: ModelSource;
  readonly contextLength: number;
  readonly cache: ReferenceCache;
  /**
   * Feeds tokens at the cache's current end and returns the logits of the last one
   * (vocab), or of every one (n, vocab) with allLogits.
   */
  forward(tokens: readonly number[], options?: ForwardOptions): Float32Array;
  /** Drops cached positions from `pos` on. */
  truncate(pos: number): void;
  /** Empties the KV cache. */
  reset(): void;
}

/** Tokens per forward tile. */
export const REFERENCE_TILE = 64;

export interface ReferenceEngineOptions {
  /** Positions to cache; defaults to the model's max_position_embeddings (capped at 4096). */
  readonly contextLength?: number;
}

export function createReferenceEngine(source: ModelSource, options: ReferenceEngineOptions = {}): ReferenceEngine {
  const { arch, args } = resolveModel(source.config);
  checkTensors(arch, args, (name) => source.tensors.has(name), source.path);
  const contextLength = options.contextLength ?? Math.min(args.maxPositions, 4096);
  const cache = createReferenceCache({
    numLayers: args.numLayers,
    numHeads: args.numHeads,
    numKvHeads: args.numKvHeads,
    headDim: args.headDim,
    contextLength,
    slidingWindow: args.slidingWindow,
  });
  const state = referenceOps.createState(arch.stateLayout(args), REFERENCE_TILE, contextLength);
  const ctx = { ops: referenceOps, weights: createReferenceWeights(source), attention: cache, state } as unknown as ForwardContext;

  return {
    args,
    source,
    contextLength,
    cache,
    forward(tokens, forwardOptions = {}) {
      const startPos = cache.length();
      if (startPos + tokens.length > contextLength) throw new ContextLengthError(startPos + tokens.length, 0, contextLength);
      const parts: Float32Array[] = [];
      for (let i = 0; i < tokens.length; i += REFERENCE_TILE) {
        const last = i + REFERENCE_TILE >= tokens.length;
        const result = arch.forward(args, ctx, tokens.slice(i, i + REFERENCE_TILE), startPos + i, forwardOptions);
        if (forwardOptions.allLogits || last) parts.push(result);
      }
      if (parts.length === 1) return parts[0];
      const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
      parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
      return out;
    },
    truncate(pos) {
      cache.truncate(pos);
    },
    reset() {
      cache.truncate(0);
    },
  };
}
