/**
 * q8 / q4 attention state after KIVI (Liu et al. 2024, "KIVI: a tuning-free asymmetric 2bit
 * quantization for KV cache"): keys quantised per channel over blocks of `group` positions,
 * values per token over groups of `valueGroup` channels, the newest `window` (to
 * window + group - 1) positions in full precision. Keys reach the cache with RoPE applied;
 * they are rotated back before quantisation so the per-channel groups see pre-RoPE channels,
 * as KIVI prescribes (RoPE spreads a channel's outliers over its rotation pair, which widens
 * per-channel ranges), and rotated again after dequantisation (exact inverse rotation, only
 * float rounding). Attention dequantises the positions it reads into f32 staging buffers with the
 * kv_dequant kernels, re-applies RoPE with rope_f32 there, and runs the WASM attention_f32
 * kernel (a fused attention_q4 kernel reading codes directly is the speed-up left, README.md).
 */
import type { AttentionInput } from "../../ops/types.ts";
import type { WasmActivation, WasmOps } from "../../ops/wasm-ops.ts";
import { checkCodeBits } from "./kv-quant.ts";
import type { CacheShape } from "./reference-cache.ts";
import { createRopeTable, wasmRotation } from "./rope-table.ts";
import { createWasmRowDequantizer, rowDequantizerBytes } from "./wasm-row-dequantizer.ts";
import { createRowStore, getStoreState, putStoreState, type RowStore } from "./row-store.ts";
import { createStagedAttention, stagedAttentionBytes } from "./staged-attention.ts";
import { checkMeta, type KvCache, type KvCacheState, type StateArray } from "./types.ts";
import { checkAttentionInput } from "./wasm-cache.ts";

export interface KiviOptions {
  /** 8 (q8) or 4 (q4); 2 and 3 work too. */
  readonly bits: number;
  /** Positions per key quantisation block; default 32. */
  readonly group?: number;
  /** Channels per value group; default 32 (or headDim when smaller). */
  readonly valueGroup?: number;
  /** Newest positions kept in full precision (at least); default 32. */
  readonly window?: number;
  /** RoPE inverse frequencies of the model: keys are quantised before RoPE. */
  readonly invFreq: Float32Array;
}

export function kiviSettings(shape: CacheShape, options: Omit<KiviOptions, "invFreq">) {
  const bits = checkCodeBits(options.bits, "kv bits");
  return {
    bits,
    group: options.group ?? 32,
    valueGroup: options.valueGroup ?? Math.min(32, shape.headDim),
    window: options.window ?? 32,
  };
}

/** Compact bytes per position and fixed bytes (windows, staging, kernel scratch) of a KIVI cache. */
export function kiviCacheBytes(shape: CacheShape, options: Omit<KiviOptions, "invFreq">): { perToken: number; fixed: number } {
  const s = kiviSettings(shape, options);
  const kvDim = shape.numKvHeads * shape.headDim;
  const codes = Math.ceil((kvDim * s.bits) / 8);
  const perToken = shape.numLayers * (2 * codes + (4 * kvDim) / s.group + 4 * Math.ceil(kvDim / s.valueGroup));
  const windowBytes = shape.numLayers * ((s.window + s.group) + (s.window + 1)) * kvDim * 4;
  const ropeTableBytes = shape.contextLength * shape.headDim * 4; // wasmRotation's copy
  return { perToken, fixed: windowBytes + stagedAttentionBytes(shape) + rowDequantizerBytes(kvDim) + ropeTableBytes };
}

export function createKiviCache(ops: WasmOps, shape: CacheShape, options: KiviOptions): KvCache {
  const { kernels, pool } = ops.queue;
  const s = kiviSettings(shape, options);
  const kvDim = shape.numKvHeads * shape.headDim;
  const rope = createRopeTable(options.invFreq, shape.numKvHeads, shape.headDim, shape.contextLength);
  const keyTransform = {
    toStored: (rows: Float32Array, n: number, first: number) => rope.rotate(rows, n, first, -1),
    fromStored: wasmRotation(kernels, rope, shape.numKvHeads, shape.headDim, pool),
  };
  const dequantizer = createWasmRowDequantizer(kernels, kvDim, pool);
  const keys: RowStore[] = [];
  const values: RowStore[] = [];
  for (let l = 0; l < shape.numLayers; l++) {
    const common = { width: kvDim, capacity: shape.contextLength, bits: s.bits, window: s.window, dequantizer };
    keys.push(createRowStore({ ...common, axis: "channel", group: s.group, transform: keyTransform }));
    values.push(createRowStore({ ...common, axis: "token", group: s.valueGroup }));
  }
  const staged = createStagedAttention(ops, shape);
  const mode = s.bits === 8 ? "q8" : "q4";
  const meta = { ...s, numLayers: shape.numLayers, kvDim, contextLength: shape.contextLength };
  const bytes = kiviCacheBytes(shape, s);

  return {
    shape,
    mode,
    meta,
    bytesPerToken: bytes.perToken,
    fixedBytes: bytes.fixed,
    length: () => keys[0].length(),
    truncate(pos) {
      for (let l = 0; l < shape.numLayers; l++) {
        keys[l].truncate(pos);
        values[l].truncate(pos);
      }
    },
    attend(input: AttentionInput<WasmActivation>) {
      const { layer, q, k, v, n, startPos, out } = input;
      checkAttentionInput(shape, input, keys[layer].length());
      ops.flush(); // k and v computed; the staging free to overwrite
      keys[layer].append(ops.read(k, n), n, startPos);
      values[layer].append(ops.read(v, n), n, startPos);
      const base = staged.firstNeeded(startPos);
      const view = staged.views();
      keys[layer].read(base, startPos + n, view.k, 0);
      values[layer].read(base, startPos + n, view.v, 0);
      staged.run(q, out, n, startPos, base);
    },
    exportState(): KvCacheState {
      const arrays: Record<string, StateArray> = {};
      for (let l = 0; l < shape.numLayers; l++) {
        putStoreState(arrays, `k${l}`, keys[l].exportState());
        putStoreState(arrays, `v${l}`, values[l].exportState());
      }
      return { mode, length: keys[0].length(), meta, arrays };
    },
    importState(state) {
      checkMeta(mode, meta, state);
      for (let l = 0; l < shape.numLayers; l++) {
        keys[l].importState(getStoreState(state.arrays, `k${l}`));
        values[l].importState(getStoreState(state.arrays, `v${l}`));
      }
    },
  };
}
