/**
 * The fp32 reference engine: an imported checkpoint, its architecture's forward pass over
 * the reference ops, and an fp32 KV cache. Every fast path is checked against it.
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
  const ctx: ForwardContext = { ops: referenceOps, weights: createReferenceWeights(source), attention: cache };

  return {
    args,
    source,
    contextLength,
    cache,
    forward(tokens, forwardOptions = {}) {
      const startPos = cache.length();
      if (startPos + tokens.length > contextLength) throw new ContextLengthError(startPos + tokens.length, 0, contextLength);
      return arch.forward(args, ctx, tokens, startPos, forwardOptions);
    },
    truncate(pos) {
      cache.truncate(pos);
    },
    reset() {
      cache.truncate(0);
    },
  };
}
