/**
 * XQuant attention state (arXiv 2508.10395): instead of keys and values, cache what they are
 * computed from and rematerialise K and V for every cached position at every step.
 * - Multi-head models: the post-norm layer input X (hidden per position, half of K+V),
 *   quantised per token (asymmetric, groups of 128 along hidden); K, V = projector(X̂), which
 *   is the architecture's projectKv (bias, q/k norm, RoPE at each row's position).
 * - Grouped-query models (X would be larger than K+V): the SVD latents X·Uk, quantised per
 *   channel (blocks of positions, like KIVI keys; latent channel 0 kept in f16 at ≤ 2 bits,
 *   the paper's outlier note), and X·Uv, quantised per token; K and V are rebuilt through the
 *   small Σ·Bᵀ matrices (xquant-svd.ts), again inside projectKv so the bias, k_norm and RoPE
 *   follow the model's own code: XQuant rebuilds the pre-norm projection, so k_norm must be
 *   re-applied, and RoPE per position after reconstruction.
 * The newest `window` positions stay unquantised. The block being processed uses the k and v
 * the model just computed; only older positions are rematerialised.
 */
import type { AttentionInput, KvProjector } from "../../ops/types.ts";
import { MAX_TOKENS_PER_CALL, type WasmActivation, type WasmOps } from "../../ops/wasm-ops.ts";
import { checkCodeBits } from "./kv-quant.ts";
import type { CacheShape } from "./reference-cache.ts";
import { createRowStore, getStoreState, putStoreState, type RowStore, type RowStoreOptions } from "./row-store.ts";
import { createWasmRowDequantizer, rowDequantizerBytes } from "./wasm-row-dequantizer.ts";
import { createStagedAttention, type StagedAttention, stagedAttentionBytes } from "./staged-attention.ts";
import { checkMeta, type KvCache, type KvCacheState, type StateArray } from "./types.ts";
import { checkAttentionInput } from "./wasm-cache.ts";
import type { LatentCodec } from "./xquant-svd.ts";

export interface XquantOptions {
  /** Bits of the cached X or latents; default 4. */
  readonly bits?: number;
  /** Channels per group (X, value latents); default 128. */
  readonly group?: number;
  /** Positions per block of the key latents' per-channel groups; default 32. */
  readonly keyBlock?: number;
  /** Newest positions kept unquantised; default 128. */
  readonly window?: number;
}

export interface XquantSources {
  readonly hidden: number;
  /** Multi-head path: K and V from X. */
  readonly projector: KvProjector<WasmActivation>;
  /** Grouped-query path: the SVD latent codec; when absent, X is cached. */
  readonly latent?: LatentCodec;
}

/** One cached stream per layer and what it needs. */
interface StreamSpec extends Omit<RowStoreOptions, "capacity"> {
  readonly name: string;
}

function streamsFor(shape: CacheShape, hidden: number, rank: number | undefined, options: XquantOptions): StreamSpec[] {
  const bits = checkCodeBits(options.bits ?? 4, "xquant bits");
  const group = options.group ?? 128;
  const window = options.window ?? 128;
  if (rank === undefined) return [{ name: "x", width: hidden, bits, axis: "token", group: Math.min(group, hidden), window }];
  return [
    { name: "lk", width: rank, bits, axis: "channel", group: options.keyBlock ?? 32, window, exactChannels: bits <= 2 ? [0] : [] },
    { name: "lv", width: rank, bits, axis: "token", group: Math.min(group, rank), window },
  ];
}

/** Compact bytes per position and fixed bytes of an XQuant cache. */
export function xquantCacheBytes(shape: CacheShape, hidden: number, rank: number | undefined, options: XquantOptions) {
  let perLayer = 0;
  let windows = 0;
  const streams = streamsFor(shape, hidden, rank, options);
  for (const s of streams) {
    const block = s.axis === "channel" ? s.group : 1;
    perLayer += Math.ceil((s.width * s.bits) / 8) + (s.axis === "channel" ? (4 * s.width) / s.group : 4 * Math.ceil(s.width / s.group)) +
      2 * (s.exactChannels?.length ?? 0);
    windows += (s.window + block) * s.width * 4;
  }
  const widest = Math.max(...streams.map((s) => s.width));
  const rematInput = MAX_TOKENS_PER_CALL * streams.reduce((w, s) => w + s.width, 0) * 4;
  return {
    perToken: shape.numLayers * perLayer,
    fixed: shape.numLayers * windows + stagedAttentionBytes(shape) + rowDequantizerBytes(widest) + rematInput,
  };
}

export function createXquantCache(
  ops: WasmOps,
  shape: CacheShape,
  sources: XquantSources,
  options: XquantOptions = {},
): KvCache & { rematerialize(layer: number, from: number, to: number): { k: Float32Array; v: Float32Array } } {
  const { kernels, pool } = ops.queue;
  const kvDim = shape.numKvHeads * shape.headDim;
  const rank = sources.latent?.rank;
  const specs = streamsFor(shape, sources.hidden, rank, options);
  const width = specs.reduce((w, s) => w + s.width, 0); // encoded row: the streams side by side
  const stores: RowStore[][] = [];
  const dequantizer = createWasmRowDequantizer(kernels, Math.max(...specs.map((s) => s.width)), pool);
  for (let l = 0; l < shape.numLayers; l++) {
    stores.push(specs.map((s) => createRowStore({ ...s, capacity: shape.contextLength, dequantizer })));
  }
  const staged: StagedAttention = createStagedAttention(ops, shape);
  // Encoded rows (X or latents) of up to a tile of positions, as the projection reads them.
  const input = ops.createState({ rows: width }, MAX_TOKENS_PER_CALL, shape.contextLength).rows;
  const meta = { specs, numLayers: shape.numLayers, kvDim, contextLength: shape.contextLength };
  const bytes = xquantCacheBytes(shape, sources.hidden, rank, options);

  const encode = (layer: number, x: WasmActivation, n: number) => sources.latent === undefined ? ops.read(x, n) : sources.latent.encode(layer, x, n);
  const decode = (layer: number, n: number, first: number, k: WasmActivation, v: WasmActivation) =>
    sources.latent === undefined ? sources.projector(layer, input, n, first, k, v) : sources.latent.decode(layer, input, n, first, k, v);

  // Scratch for one tile of encoded rows and its streams: rematerialisation reads every cached
  // position of every layer on each step, and fresh arrays per tile were garbage the JS engine
  // left uncollected (1.1B q2 at ctx 1024: 3.5 GB peak RSS, 0.56 GB after a collection).
  const tileRows = new Float32Array(MAX_TOKENS_PER_CALL * width);
  const tileParts = specs.map((s) => new Float32Array(MAX_TOKENS_PER_CALL * s.width));

  /** Encoded rows from..to-1 of a layer (at most a tile), (to - from, width): a view of the scratch. */
  const readEncoded = (layer: number, from: number, to: number): Float32Array => {
    const n = to - from;
    const out = tileRows.subarray(0, n * width);
    if (specs.length === 1) {
      stores[layer][0].read(from, to, out, 0);
      return out;
    }
    let col = 0;
    specs.forEach((s, i) => {
      const part = tileParts[i];
      stores[layer][i].read(from, to, part, 0);
      for (let r = 0; r < n; r++) {
        for (let c = 0; c < s.width; c++) out[r * width + col + c] = part[r * s.width + c];
      }
      col += s.width;
    });
    return out;
  };

  const appendEncoded = (layer: number, rows: Float32Array, n: number, first: number) => {
    let col = 0;
    specs.forEach((s, i) => {
      let part = rows;
      if (specs.length > 1) {
        part = n <= MAX_TOKENS_PER_CALL ? tileParts[i] : new Float32Array(n * s.width);
        for (let r = 0; r < n; r++) {
          for (let c = 0; c < s.width; c++) part[r * s.width + c] = rows[r * width + col + c];
        }
      }
      stores[layer][i].append(part, n, first);
      col += s.width;
    });
  };

  /** Queues rematerialised K and V of positions from..to-1 into the staging rows from outRow. */
  const rematerializeInto = (layer: number, from: number, to: number, outRow: number) => {
    for (let p = from; p < to; p += MAX_TOKENS_PER_CALL) {
      const m = Math.min(MAX_TOKENS_PER_CALL, to - p);
      ops.write(input, m, readEncoded(layer, p, p + m));
      const rows = staged.rowsFrom(outRow + p - from);
      decode(layer, m, p, rows.k, rows.v);
    }
  };

  const cache = {
    shape,
    mode: "xquant" as const,
    meta,
    bytesPerToken: bytes.perToken,
    fixedBytes: bytes.fixed,
    length: () => stores[0][0].length(),
    truncate(pos: number) {
      for (const layer of stores) for (const s of layer) s.truncate(pos);
    },
    attend(attention: AttentionInput<WasmActivation>) {
      const { layer, q, k, v, n, startPos, x, out } = attention;
      checkAttentionInput(shape, attention, stores[layer][0].length());
      ops.flush(); // x, k and v computed; the staging free to overwrite
      appendEncoded(layer, encode(layer, x, n), n, startPos);
      const base = staged.firstNeeded(startPos);
      rematerializeInto(layer, base, startPos, 0);
      ops.flush();
      const view = staged.views();
      view.k.set(ops.read(k, n), (startPos - base) * kvDim);
      view.v.set(ops.read(v, n), (startPos - base) * kvDim);
      staged.run(q, out, n, startPos, base);
    },
    /** K and V of cached positions from..to-1 rebuilt from the cache (tests and sessions). */
    rematerialize(layer: number, from: number, to: number) {
      rematerializeInto(layer, from, to, 0);
      ops.flush();
      const view = staged.views();
      return { k: view.k.slice(0, (to - from) * kvDim), v: view.v.slice(0, (to - from) * kvDim) };
    },
    exportState(): KvCacheState {
      const arrays: Record<string, StateArray> = {};
      stores.forEach((layer, l) => layer.forEach((s, i) => putStoreState(arrays, `${specs[i].name}${l}`, s.exportState())));
      return { mode: "xquant", length: cache.length(), meta, arrays };
    },
    importState(state: KvCacheState) {
      checkMeta("xquant", JSON.parse(JSON.stringify(meta)), state);
      stores.forEach((layer, l) => layer.forEach((s, i) => s.importState(getStoreState(state.arrays, `${specs[i].name}${l}`))));
    },
  };
  return cache;
}
