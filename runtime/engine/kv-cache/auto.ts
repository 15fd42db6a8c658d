/**
 * `--kv auto` and the memory sizes of every mode: the total bytes a cache of a mode needs at
 * a context length (compact per-position bytes × positions + windows, accumulators and
 * staging), and the choice of the fastest mode whose total fits a budget. Speed order
 * measured on this project's CI-class machine (README.md in this folder): f16 first (the
 * WASM kernel reads it directly), then q8 and q4 (dequantise every step), then xquant and
 * xquant-cl (rematerialise K and V every step through the projection matmuls).
 */
import { InvalidArgumentError } from "../../errors.ts";
import { formatBytes } from "../../kernels/wasm.ts";
import type { KvOptions } from "./create-kv-cache.ts";
import { usesLatents } from "./create-kv-cache.ts";
import { kiviCacheBytes } from "./kivi-cache.ts";
import type { CacheShape } from "./reference-cache.ts";
import { stagedAttentionBytes } from "./staged-attention.ts";
import type { KvMode } from "./types.ts";
import { wasmCacheBytes } from "./wasm-cache.ts";
import { xquantCacheBytes } from "./xquant-cache.ts";
import { xquantClCacheBytes } from "./xquant-cl-cache.ts";

/** Fastest first; auto takes the first that fits. */
export const AUTO_ORDER: readonly KvMode[] = ["f16", "q8", "q4", "xquant", "xquant-cl"];

export interface KvSize {
  readonly mode: KvMode;
  /** Compact bytes per cached position (all layers). */
  readonly bytesPerToken: number;
  /** Everything at the shape's context length: cache, windows, accumulators, staging. */
  readonly totalBytes: number;
  /** The part that lives in WASM memory (the rest is JS heap). */
  readonly wasmBytes: number;
}

export function kvCacheSize(mode: KvMode, shape: CacheShape, hidden: number, options: KvOptions = {}): KvSize {
  const ctx = shape.contextLength;
  switch (mode) {
    case "f32":
    case "f16": {
      const total = wasmCacheBytes(shape, mode);
      return { mode, bytesPerToken: 2 * shape.numLayers * shape.numKvHeads * shape.headDim * (mode === "f32" ? 4 : 2), totalBytes: total, wasmBytes: total };
    }
    case "q8":
    case "q4": {
      const b = kiviCacheBytes(shape, { ...options.kivi, bits: mode === "q8" ? 8 : 4 });
      return { mode, bytesPerToken: b.perToken, totalBytes: b.perToken * ctx + b.fixed, wasmBytes: stagedAttentionBytes(shape) };
    }
    case "xquant": {
      const latents = usesLatents(shape);
      const kvDim = shape.numKvHeads * shape.headDim;
      const b = xquantCacheBytes(shape, hidden, latents ? kvDim : undefined, options.xquant ?? {});
      // The latent codec's f16 matrices: encode (2·rank, hidden) and two rebuilds (kvDim, 2·rank) per layer.
      const codec = latents ? shape.numLayers * 2 * (2 * kvDim * hidden + 2 * kvDim * 2 * kvDim) : 0;
      return { mode, bytesPerToken: b.perToken, totalBytes: b.perToken * ctx + b.fixed + codec, wasmBytes: stagedAttentionBytes(shape) + codec };
    }
    case "xquant-cl": {
      const b = xquantClCacheBytes(shape, hidden, options.xquantCl ?? {});
      return { mode, bytesPerToken: b.perToken, totalBytes: b.perToken * ctx + b.fixed, wasmBytes: stagedAttentionBytes(shape) };
    }
  }
}

/** The fastest mode whose total fits `budget` bytes; InvalidArgumentError naming the bytes when none does. */
export function chooseKvMode(budget: number, shape: CacheShape, hidden: number, options: KvOptions = {}): KvSize {
  if (!(budget > 0)) {
    throw new InvalidArgumentError("kv-budget", `--kv-budget must be a positive number of bytes, got ${budget}`);
  }
  const sizes = AUTO_ORDER.map((mode) => kvCacheSize(mode, shape, hidden, options));
  const fit = sizes.find((s) => s.totalBytes <= budget);
  if (fit !== undefined) return fit;
  const smallest = sizes.reduce((a, b) => (b.totalBytes < a.totalBytes ? b : a));
  throw new InvalidArgumentError(
    "kv-budget",
    `no KV cache mode fits --kv-budget ${budget} bytes (${formatBytes(budget)}) at context ${shape.contextLength}: ` +
      sizes.map((s) => `${s.mode} needs ${s.totalBytes} bytes`).join(", ") +
      `; raise the budget to at least ${smallest.totalBytes} bytes or lower --ctx`,
  );
}

/** Parses a byte count such as "512MB", "1.5GiB", "200000" (k/M/G are powers of 1024). */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(i?b?)\s*$/i.exec(text);
  if (m === null) {
    throw new InvalidArgumentError("kv-budget", `--kv-budget must be a byte count like 200000, 512MB or 1.5GiB, got "${text}"`);
  }
  const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as "" | "k" | "m" | "g"];
  return Math.round(Number(m[1]) * unit);
}
