/**
 * What every attention state of the WASM engine offers beyond the reference contract: its
 * mode, its compact size (bytes per cached position, fixed buffers) and its content as named
 * arrays, which sessions write to a file and read back (checked against the settings by
 * `checkMeta`).
 */
import { ShapeError } from "../../errors.ts";
import type { WasmActivation } from "../../ops/wasm-ops.ts";
import type { ReferenceCache } from "./reference-cache.ts";

export const KV_MODES = ["f32", "f16", "q8", "q4", "xquant", "xquant-cl"] as const;
export type KvMode = typeof KV_MODES[number];

/** A typed array section of a saved cache. */
export type StateArray = Uint8Array | Uint16Array | Uint32Array | Float32Array;

export interface KvCacheState {
  readonly mode: KvMode;
  /** Positions held. */
  readonly length: number;
  /** Small JSON-able settings the cache must be rebuilt with (bits, groups, windows). */
  readonly meta: Record<string, unknown>;
  readonly arrays: Record<string, StateArray>;
}

/** An attention state of the WASM engine: it reads q, k, v and x from the run state and writes out there. */
export interface KvCache extends ReferenceCache<WasmActivation> {
  readonly mode: KvMode;
  /** Compact bytes per cached position, all layers (the asymptotic cost of one more token). */
  readonly bytesPerToken: number;
  /** Bytes held regardless of length: full-precision windows, staging and accumulators. */
  readonly fixedBytes: number;
  /** The settings a restored cache must match (compared on restore). */
  readonly meta: Record<string, unknown>;
  exportState(): KvCacheState;
  /** Replaces the content; throws ShapeError when the state was saved with other settings. */
  importState(state: KvCacheState): void;
}

/** Throws ShapeError unless a saved state was written by a cache with these settings. */
export function checkMeta(mode: string, meta: Record<string, unknown>, state: KvCacheState): void {
  const want = JSON.stringify({ mode, ...meta });
  const got = JSON.stringify({ mode: state.mode, ...state.meta });
  if (want !== got) throw new ShapeError("cache restore", `a state saved with ${want}`, got);
}
