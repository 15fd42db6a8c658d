/**
 * One quantised stream of rows (one per position) of a compressed attention state: keys,
 * values, X or latents of one layer. The newest rows stay in full precision (KIVI's residual
 * window, XQuant's "newest ≤128 tokens"): a block of `block` rows is quantised once at
 * least `window` newer rows exist, so between `window` and `window + block - 1` rows are
 * exact. Per-token streams quantise each row alone (block 1); per-channel streams quantise
 * blocks of rows with one (min, step) per channel (KIVI keys).
 *
 * A `transform` maps rows to their stored form just before quantisation and back after
 * dequantisation (KIVI: undo RoPE so keys are quantised per channel before RoPE; XQuant-CL:
 * subtract the previous layer's reconstruction). Truncating into a quantised block moves
 * that block's surviving rows back into the window in their (lossy) dequantised form.
 */
import { ShapeError } from "../../errors.ts";
import {
  type CodeBits,
  decodeChannelParams,
  dequantizeChannelRow,
  dequantizeRowGroups,
  packedRowBytes,
  quantizeChannelBlock,
  quantizeRowGroups,
} from "./kv-quant.ts";
import { f16ToF32, f32ToF16 } from "../../format/pack-f16.ts";
import type { StateArray } from "./types.ts";
import type { RowDequantizer } from "./wasm-row-dequantizer.ts";

export interface RowTransform {
  /** In place on rows (n, width) at positions first..first+n-1, before quantisation. */
  toStored?(rows: Float32Array, n: number, first: number): void;
  /** In place, the inverse, after dequantisation. */
  fromStored?(rows: Float32Array, n: number, first: number): void;
}

export interface RowStoreOptions {
  readonly width: number;
  /** Rows the store can hold (the context length). */
  readonly capacity: number;
  readonly bits: CodeBits;
  /** "token": groups of `group` channels within a row; "channel": blocks of `group` rows per channel. */
  readonly axis: "token" | "channel";
  readonly group: number;
  /** Newest rows kept unquantised (at least). */
  readonly window: number;
  /** Channels stored as f16 beside the codes (XQuant keeps latent channel 0 exact at 2 bits). */
  readonly exactChannels?: readonly number[];
  readonly transform?: RowTransform;
  /** Dequantises packed rows (the WASM kernels); the plain loops of kv-quant.ts otherwise. */
  readonly dequantizer?: RowDequantizer;
}

/** The store's content in its compact form (sessions save it). */
export interface RowStoreState {
  readonly length: number;
  readonly quantized: number;
  readonly codes: Uint8Array;
  readonly params: Uint16Array;
  readonly exact: Uint16Array;
  readonly window: Float32Array;
}

export interface RowStore {
  readonly options: RowStoreOptions;
  /** Compact bytes per quantised row (codes, parameters, exact channels). */
  readonly bytesPerRow: number;
  /** Bytes of the full-precision window buffer. */
  readonly windowBytes: number;
  length(): number;
  /** Rows before this position are quantised. */
  quantizedEnd(): number;
  /** Appends n rows at position `first` (dropping rows from `first` on first). */
  append(rows: Float32Array, n: number, first: number): void;
  /** Rows from..to-1 (transform undone) into out from row outRow. */
  read(from: number, to: number, out: Float32Array, outRow: number): void;
  /** Rows from..to-1 of the quantised part in stored form (transform not undone). */
  readStored(from: number, to: number, out: Float32Array, outRow: number): void;
  truncate(pos: number): void;
  exportState(): RowStoreState;
  importState(state: RowStoreState): void;
}

export function createRowStore(options: RowStoreOptions): RowStore {
  const { width, capacity, bits, axis, group, window } = options;
  if (!Number.isInteger(group) || group < 1) throw new ShapeError("row store", "a positive group", String(group));
  const block = axis === "channel" ? group : 1;
  const rowBytes = packedRowBytes(width, bits);
  const exactChannels = options.exactChannels ?? [];
  const groupsPerRow = Math.ceil(width / group);
  const blocks = Math.ceil(capacity / block);
  const paramsPerBlock = axis === "channel" ? 2 * width : 2 * groupsPerRow; // per block (channel) or per row (token)
  const codes = new Uint8Array(blocks * block * rowBytes);
  const params = new Uint16Array((axis === "channel" ? blocks : capacity) * paramsPerBlock);
  const exact = new Uint16Array(blocks * block * exactChannels.length);
  const windowRows = window + block;
  const fp = new Float32Array(windowRows * width); // rows quantized..length-1
  const scratchCodes = new Uint8Array(width);
  const decoded = new Float32Array(2 * width);
  let length = 0;
  let quantized = 0;

  // The oldest block's rows while they are quantised (a transform may change them in place);
  // one buffer for the store's life: a fresh copy per block was 180 MB of garbage in one
  // 4K-token prefill of a 1.1B model, which the JS engine did not collect before it ended.
  const oldest = new Float32Array(block * width);
  const quantizeOldest = () => {
    const rows = oldest;
    rows.set(fp.subarray(0, block * width));
    options.transform?.toStored?.(rows, block, quantized);
    for (let r = 0; r < block; r++) {
      for (let i = 0; i < exactChannels.length; i++) {
        exact[(quantized + r) * exactChannels.length + i] = f32ToF16(rows[r * width + exactChannels[i]]);
      }
    }
    if (axis === "channel") {
      quantizeChannelBlock(rows, block, width, bits, scratchCodes, codes, quantized * rowBytes, params, (quantized / block) * paramsPerBlock);
    } else {
      quantizeRowGroups(rows, 0, width, group, bits, scratchCodes, codes, quantized * rowBytes, params, quantized * paramsPerBlock);
    }
    fp.copyWithin(0, block * width, (length - quantized) * width);
    quantized += block;
  };

  const readStored = (from: number, to: number, out: Float32Array, outRow: number) => {
    if (options.dequantizer !== undefined) dequantizeRows(options.dequantizer, from, to, out, outRow);
    else dequantizeRowsPlain(from, to, out, outRow);
    // A plain loop: this runs for every cached row of every layer on each step, and a
    // callback per row left enough garbage to grow Bun's RSS by hundreds of MB at 4K.
    for (let p = from; p < to && exactChannels.length > 0; p++) {
      const outAt = (outRow + p - from) * width;
      for (let i = 0; i < exactChannels.length; i++) out[outAt + exactChannels[i]] = f16ToF32(exact[p * exactChannels.length + i]);
    }
  };

  // The twin of the kernel path: kv-quant.ts's loops, row by row.
  const dequantizeRowsPlain = (from: number, to: number, out: Float32Array, outRow: number) => {
    let lastBlock = -1;
    for (let p = from; p < to; p++) {
      const outAt = (outRow + p - from) * width;
      if (axis === "channel") {
        const b = Math.floor(p / block);
        if (b !== lastBlock) decodeChannelParams(params, b * paramsPerBlock, width, decoded);
        lastBlock = b;
        dequantizeChannelRow(codes, p * rowBytes, width, bits, decoded, scratchCodes, out, outAt);
      } else {
        dequantizeRowGroups(codes, p * rowBytes, width, group, bits, params, p * paramsPerBlock, scratchCodes, out, outAt);
      }
    }
  };

  // The kernel path: whole runs of rows per call (a per-channel run starting inside a block
  // first finishes that block, so the rest starts on a block boundary).
  const dequantizeRows = (d: RowDequantizer, from: number, to: number, out: Float32Array, outRow: number) => {
    if (axis === "token") {
      d.token(codes, from * rowBytes, params, from * paramsPerBlock, to - from, width, group, bits, out, outRow * width);
      return;
    }
    for (let p = from; p < to;) {
      const b = Math.floor(p / block);
      const end = p % block === 0 ? to : Math.min(to, (b + 1) * block);
      d.channel(codes, p * rowBytes, params, b * paramsPerBlock, end - p, width, bits, p % block === 0 ? block : end - p, out, (outRow + p - from) * width);
      p = end;
    }
  };

  const store: RowStore = {
    options,
    bytesPerRow: rowBytes + (axis === "channel" ? (4 * width) / block : 4 * groupsPerRow) + 2 * exactChannels.length,
    windowBytes: fp.byteLength,
    length: () => length,
    quantizedEnd: () => quantized,

    append(rows, n, first) {
      if (first > length) throw new ShapeError("row store append", `a position <= ${length}`, String(first));
      if (first + n > capacity) throw new ShapeError("row store append", `positions < ${capacity}`, String(first + n));
      if (rows.length < n * width) throw new ShapeError("row store append", `${n}x${width} values`, String(rows.length));
      store.truncate(first);
      // Runs of rows up to the next full window (one view per run, not per row).
      for (let r = 0; r < n;) {
        const m = Math.min(n - r, window + block - (length - quantized));
        fp.set(rows.subarray(r * width, (r + m) * width), (length - quantized) * width);
        length += m;
        r += m;
        if (length - quantized >= window + block) quantizeOldest();
      }
    },

    readStored(from, to, out, outRow) {
      if (from < 0 || to > quantized) throw new ShapeError("row store read", `quantised rows in [0, ${quantized})`, `[${from}, ${to})`);
      readStored(from, to, out, outRow);
    },

    read(from, to, out, outRow) {
      if (from < 0 || to > length || from > to) throw new ShapeError("row store read", `rows in [0, ${length})`, `[${from}, ${to})`);
      const qTo = Math.min(to, quantized);
      if (from < qTo) {
        readStored(from, qTo, out, outRow);
        options.transform?.fromStored?.(out.subarray(outRow * width, (outRow + qTo - from) * width), qTo - from, from);
      }
      const fpFrom = Math.max(from, quantized);
      if (fpFrom < to) out.set(fp.subarray((fpFrom - quantized) * width, (to - quantized) * width), (outRow + fpFrom - from) * width);
    },

    truncate(pos) {
      if (pos >= length) return;
      if (pos >= quantized) {
        length = pos;
        return;
      }
      const start = Math.floor(pos / block) * block;
      const rows = new Float32Array((pos - start) * width);
      store.read(start, pos, rows, 0);
      fp.set(rows);
      quantized = start;
      length = pos;
    },

    exportState() {
      const qBlocks = quantized / block;
      return {
        length,
        quantized,
        codes: codes.slice(0, quantized * rowBytes),
        params: params.slice(0, (axis === "channel" ? qBlocks : quantized) * paramsPerBlock),
        exact: exact.slice(0, quantized * exactChannels.length),
        window: fp.slice(0, (length - quantized) * width),
      };
    },

    importState(state) {
      const fits = state.length <= capacity && state.quantized <= state.length && state.quantized % block === 0 &&
        state.codes.length === state.quantized * rowBytes && state.window.length === (state.length - state.quantized) * width &&
        state.length - state.quantized < windowRows && state.exact.length === state.quantized * exactChannels.length &&
        state.params.length === (axis === "channel" ? state.quantized / block : state.quantized) * paramsPerBlock;
      if (!fits) {
        throw new ShapeError("row store restore", `a state of this store's shape (width ${width}, ${bits} bits, block ${block}, window ${window})`, `${state.length} rows, ${state.quantized} quantised`);
      }
      codes.set(state.codes);
      params.set(state.params);
      exact.set(state.exact);
      fp.set(state.window);
      length = state.length;
      quantized = state.quantized;
    },
  };
  return store;
}

/** Adds a store's state to a cache state's arrays under `name`. */
export function putStoreState(arrays: Record<string, StateArray>, name: string, state: RowStoreState): void {
  arrays[`${name}.counts`] = Uint32Array.of(state.length, state.quantized);
  arrays[`${name}.codes`] = state.codes;
  arrays[`${name}.params`] = state.params;
  arrays[`${name}.exact`] = state.exact;
  arrays[`${name}.window`] = state.window;
}

/** Reads back what putStoreState wrote; throws ShapeError when an array is missing or mistyped. */
export function getStoreState(arrays: Readonly<Record<string, StateArray>>, name: string): RowStoreState {
  const get = <T extends StateArray>(key: string, type: new (n: number) => T): T => {
    const a = arrays[`${name}.${key}`];
    if (!(a instanceof type)) throw new ShapeError("cache restore", `array ${name}.${key} (${type.name})`, a === undefined ? "none" : a.constructor.name);
    return a;
  };
  const counts = get("counts", Uint32Array);
  return {
    length: counts[0],
    quantized: counts[1],
    codes: get("codes", Uint8Array),
    params: get("params", Uint16Array),
    exact: get("exact", Uint16Array),
    window: get("window", Float32Array),
  };
}
