/**
 * Builds the attention state of a `--kv` mode for the WASM backend: f32/f16 (wasm-cache.ts),
 * q8/q4 (kivi-cache.ts), xquant (xquant-cache.ts: X for multi-head models, SVD latents for
 * grouped-query ones) and xquant-cl (xquant-cl-cache.ts). XQuant modes get K/V back through
 * the architecture's projectKv bound to the backend's ops and weights.
 */
import type { KvProjector } from "../../ops/types.ts";
import type { WasmActivation, WasmOps } from "../../ops/wasm-ops.ts";
import { createKiviCache } from "./kivi-cache.ts";
import type { CacheShape } from "./reference-cache.ts";
import type { KvCache, KvMode } from "./types.ts";
import { createWasmCache } from "./wasm-cache.ts";
import { createXquantCache, type XquantOptions } from "./xquant-cache.ts";
import { createXquantClCache, type XquantClOptions } from "./xquant-cl-cache.ts";
import type { LatentCodec } from "./xquant-svd.ts";

/** Tuning of the compressed modes; every field has a default. */
export interface KvOptions {
  /** q8/q4: positions per key block and channels per value group (32), full-precision window (32). */
  readonly kivi?: { readonly group?: number; readonly valueGroup?: number; readonly window?: number };
  readonly xquant?: XquantOptions;
  readonly xquantCl?: XquantClOptions;
}

export interface KvCacheSources {
  /** The backend's ops: their kernel queue runs the cache's kernels too. */
  readonly ops: WasmOps;
  readonly shape: CacheShape;
  readonly hidden: number;
  readonly invFreq: Float32Array;
  /** K and V of a layer from its normed inputs X (the architecture's projectKv). */
  readonly projector: KvProjector<WasmActivation>;
  /** The SVD latent codec (grouped-query xquant); built only when asked for. */
  readonly latent: () => LatentCodec;
}

/** Whether xquant caches SVD latents (grouped-query) rather than X. */
export function usesLatents(shape: Pick<CacheShape, "numHeads" | "numKvHeads">): boolean {
  return shape.numKvHeads < shape.numHeads;
}

export function createKvCache(mode: KvMode, sources: KvCacheSources, options: KvOptions = {}): KvCache {
  const { ops, shape } = sources;
  switch (mode) {
    case "f32":
    case "f16":
      return createWasmCache(ops.queue, shape, mode);
    case "q8":
    case "q4":
      return createKiviCache(ops, shape, { ...options.kivi, bits: mode === "q8" ? 8 : 4, invFreq: sources.invFreq });
    case "xquant":
      return createXquantCache(ops, shape, {
        hidden: sources.hidden,
        projector: sources.projector,
        latent: usesLatents(shape) ? sources.latent() : undefined,
      }, options.xquant);
    case "xquant-cl":
      return createXquantClCache(ops, shape, { hidden: sources.hidden, projector: sources.projector }, options.xquantCl);
  }
}
