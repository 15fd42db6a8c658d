/**
 * XQuant-CL attention state (arXiv 2508.10395, §cross-layer): the post-norm layer inputs X
 * of neighbouring layers are similar, so layer i caches the quantised difference
 * ΔX_i = Q(X_i − X̂_{i−1}) against the reconstruction of the previous layer, and
 * X̂_i = X̂_{i−1} + ΔX̂_i is rebuilt in an f32 accumulator while the layers run. Because every
 * delta is taken against the *quantised* reconstruction, errors do not add up over layers.
 * The first `firstLayers` layers (which hold X itself, or deltas of the largest changes) use
 * `firstBits`, as the paper keeps its first layers at 4 bits. Per token, groups of 128
 * along hidden, newest `window` positions unquantised (stored raw, so the delta of a row is
 * taken when it leaves the window, against the then quantised previous layer). K and V are
 * rematerialised from X̂ with the architecture's projectKv; any model (MHA or GQA) works,
 * since X rather than the per-layer SVD latents is cached.
 * The layers of one block must arrive in order 0, 1, ..., as the forward pass calls them.
 */
import { ShapeError } from "../../errors.ts";
import type { AttentionInput, KvProjector } from "../../ops/types.ts";
import { MAX_TOKENS_PER_CALL, type WasmActivation, type WasmOps } from "../../ops/wasm-ops.ts";
import { checkCodeBits } from "./kv-quant.ts";
import type { CacheShape } from "./reference-cache.ts";
import { createRowStore, getStoreState, putStoreState, type RowStore } from "./row-store.ts";
import { createWasmRowDequantizer, rowDequantizerBytes } from "./wasm-row-dequantizer.ts";
import { createStagedAttention, stagedAttentionBytes } from "./staged-attention.ts";
import { checkMeta, type KvCache, type KvCacheState, type StateArray } from "./types.ts";
import { checkAttentionInput } from "./wasm-cache.ts";

export interface XquantClOptions {
  /** Bits of the deltas; default 3. */
  readonly bits?: number;
  /** Bits of the first layers; default 4. */
  readonly firstBits?: number;
  /** Layers at firstBits; default 1. */
  readonly firstLayers?: number;
  /** Channels per group; default 128. */
  readonly group?: number;
  /** Newest positions kept unquantised; default 128. */
  readonly window?: number;
}

function settings(shape: CacheShape, hidden: number, options: XquantClOptions) {
  const bits = checkCodeBits(options.bits ?? 3, "xquant-cl bits");
  const firstBits = checkCodeBits(options.firstBits ?? 4, "xquant-cl first-layer bits");
  const firstLayers = Math.min(shape.numLayers, options.firstLayers ?? 1);
  return { bits, firstBits, firstLayers, group: Math.min(options.group ?? 128, hidden), window: options.window ?? 128 };
}

/** Compact bytes per position and fixed bytes (windows, accumulator, staging). */
export function xquantClCacheBytes(shape: CacheShape, hidden: number, options: XquantClOptions) {
  const s = settings(shape, hidden, options);
  const layerBytes = (bits: number) => Math.ceil((hidden * bits) / 8) + 4 * Math.ceil(hidden / s.group);
  const perToken = s.firstLayers * layerBytes(s.firstBits) + (shape.numLayers - s.firstLayers) * layerBytes(s.bits);
  // The accumulator grows with the context too: count it per position in `accumulatorPerToken`.
  return {
    perToken,
    accumulatorPerToken: 4 * hidden,
    fixed: shape.numLayers * (s.window + 1) * hidden * 4 + stagedAttentionBytes(shape) + shape.contextLength * hidden * 4 +
      rowDequantizerBytes(hidden) + MAX_TOKENS_PER_CALL * hidden * 4,
  };
}

export function createXquantClCache(
  ops: WasmOps,
  shape: CacheShape,
  sources: { hidden: number; projector: KvProjector<WasmActivation> },
  options: XquantClOptions = {},
): KvCache & { rematerialize(layer: number, from: number, to: number): { k: Float32Array; v: Float32Array } } {
  const { kernels, pool } = ops.queue;
  const { hidden, projector } = sources;
  const s = settings(shape, hidden, options);
  const kvDim = shape.numKvHeads * shape.headDim;
  const accumulator = new Float32Array(shape.contextLength * hidden); // (positions, hidden): X̂ of the layer last processed
  const stores: RowStore[] = [];
  const dequantizer = createWasmRowDequantizer(kernels, hidden, pool);
  for (let l = 0; l < shape.numLayers; l++) {
    const transform = l === 0 ? undefined : {
      // Called for a row leaving the window of layer l: the accumulator holds X̂_{l-1} there.
      toStored(rows: Float32Array, n: number, first: number) {
        for (let i = 0; i < n * hidden; i++) rows[i] -= accumulator[first * hidden + i];
      },
    };
    stores.push(createRowStore({
      width: hidden,
      capacity: shape.contextLength,
      bits: l < s.firstLayers ? s.firstBits : s.bits,
      axis: "token",
      group: s.group,
      window: s.window,
      transform,
      dequantizer,
    }));
  }
  const staged = createStagedAttention(ops, shape);
  const input = ops.createState({ x: hidden }, MAX_TOKENS_PER_CALL, shape.contextLength).x; // X̂ rows a projection reads
  /** Queues K and V of positions from..to-1 from X̂ rows xs (position p at row p) into the staging rows from outRow. */
  const rematerializeInto = (layer: number, xs: Float32Array, from: number, to: number, outRow: number) => {
    for (let p = from; p < to; p += MAX_TOKENS_PER_CALL) {
      const m = Math.min(MAX_TOKENS_PER_CALL, to - p);
      ops.write(input, m, xs.subarray(p * hidden, (p + m) * hidden));
      const rows = staged.rowsFrom(outRow + p - from);
      projector(layer, input, m, p, rows.k, rows.v);
    }
  };
  const meta = { ...s, numLayers: shape.numLayers, hidden, contextLength: shape.contextLength };
  const bytes = xquantClCacheBytes(shape, hidden, s);
  let nextLayer = 0;
  let blockStart = -1;

  return {
    shape,
    mode: "xquant-cl",
    meta,
    bytesPerToken: bytes.perToken,
    fixedBytes: bytes.fixed,
    length: () => stores[0].length(),
    truncate(pos) {
      for (const store of stores) store.truncate(pos);
      nextLayer = 0;
    },
    attend(attention: AttentionInput<WasmActivation>) {
      const { layer, q, k, v, n, startPos, x, out } = attention;
      checkAttentionInput(shape, attention, stores[layer].length());
      ops.flush(); // x, k and v computed; the staging free to overwrite
      if (layer !== 0 && (layer !== nextLayer || startPos !== blockStart)) {
        throw new ShapeError("xquant-cl attention", `layer ${nextLayer} of the block at ${blockStart} (layers run in order)`, `layer ${layer} at ${startPos}`);
      }
      nextLayer = layer + 1;
      blockStart = startPos;
      const store = stores[layer];
      store.append(ops.read(x, n), n, startPos);
      const end = startPos + n;
      // X̂_layer for every cached position: quantised rows add their delta, window rows are X itself.
      const quantized = store.quantizedEnd();
      if (layer === 0) store.read(0, end, accumulator, 0);
      else {
        if (quantized > 0) {
          const delta = new Float32Array(quantized * hidden);
          store.readStored(0, quantized, delta, 0);
          for (let i = 0; i < delta.length; i++) accumulator[i] += delta[i];
        }
        store.read(quantized, end, accumulator, quantized);
      }
      const base = staged.firstNeeded(startPos);
      rematerializeInto(layer, accumulator, base, startPos, 0);
      ops.flush();
      const view = staged.views();
      view.k.set(ops.read(k, n), (startPos - base) * kvDim);
      view.v.set(ops.read(v, n), (startPos - base) * kvDim);
      staged.run(q, out, n, startPos, base);
    },
    /** K and V of cached positions from..to-1 rebuilt through layers 0..layer (tests). */
    rematerialize(layer: number, from: number, to: number) {
      const xs = new Float32Array(to * hidden); // X̂ of rows 0..to-1, accumulated layer by layer
      stores[0].read(0, to, xs, 0);
      for (let l = 1; l <= layer; l++) {
        const quantized = Math.min(stores[l].quantizedEnd(), to);
        const delta = new Float32Array(quantized * hidden);
        stores[l].readStored(0, quantized, delta, 0);
        for (let i = 0; i < delta.length; i++) xs[i] += delta[i];
        stores[l].read(quantized, to, xs, quantized);
      }
      rematerializeInto(layer, xs, from, to, 0);
      ops.flush();
      const view = staged.views();
      return { k: view.k.slice(0, (to - from) * kvDim), v: view.v.slice(0, (to - from) * kvDim) };
    },
    exportState(): KvCacheState {
      const arrays: Record<string, StateArray> = {};
      stores.forEach((store, l) => putStoreState(arrays, `x${l}`, store.exportState()));
      return { mode: "xquant-cl", length: stores[0].length(), meta, arrays };
    },
    importState(state) {
      checkMeta("xquant-cl", meta, state);
      stores.forEach((store, l) => store.importState(getStoreState(state.arrays, `x${l}`)));
      nextLayer = 0;
    },
  };
}
