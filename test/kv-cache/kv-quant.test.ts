// The KV quantisers against their reference twin (fakeQuantize), their error bound, and the
// row store's full-precision window, truncation and state round trip.
import { describe, expect, test } from "bun:test";
import { createRandom } from "../../runtime/engine/sampler.ts";
import {
  CODE_BITS,
  decodeChannelParams,
  dequantizeChannelRow,
  dequantizeRowGroups,
  fakeQuantize,
  packCodes,
  packedRowBytes,
  quantizeChannelBlock,
  quantizeRowGroups,
  unpackCodes,
} from "../../runtime/engine/kv-cache/kv-quant.ts";
import { createRowStore } from "../../runtime/engine/kv-cache/row-store.ts";
import { InvalidArgumentError, ShapeError } from "../../runtime/errors.ts";
import { checkCodeBits } from "../../runtime/engine/kv-cache/kv-quant.ts";
import { createRopeTable, wasmRotation } from "../../runtime/engine/kv-cache/rope-table.ts";
import { createWasmRowDequantizer, DEQUANT_CHUNK_ROWS, DEQUANT_SLOTS } from "../../runtime/engine/kv-cache/wasm-row-dequantizer.ts";
import { createPool, disposePool } from "../../runtime/threads/pool.ts";
import { loadKernels } from "../../runtime/kernels/wasm.ts";

function randomRows(count: number, seed: number, scale = 3): Float32Array {
  const random = createRandom(seed);
  return Float32Array.from({ length: count }, () => (random() - 0.3) * scale);
}

describe("bit packing", () => {
  for (const bits of CODE_BITS) {
    test(`${bits}-bit codes round-trip at odd widths`, () => {
      for (const width of [1, 7, 33, 128]) {
        const random = createRandom(width * bits);
        const codes = Uint8Array.from({ length: width }, () => Math.floor(random() * 2 ** bits));
        const packed = new Uint8Array(3 + packedRowBytes(width, bits));
        packCodes(codes, width, bits, packed, 3);
        const back = new Uint8Array(width + 1);
        unpackCodes(packed, 3, width, bits, back);
        expect(Array.from(back.subarray(0, width))).toEqual(Array.from(codes));
      }
    });
  }
});

describe("quantisers equal the reference twin", () => {
  for (const bits of CODE_BITS) {
    test(`per token, ${bits} bits`, () => {
      const width = 100, group = 32;
      const row = randomRows(width, bits);
      const dst = new Uint8Array(packedRowBytes(width, bits));
      const params = new Uint16Array(2 * Math.ceil(width / group));
      const codes = new Uint8Array(width);
      quantizeRowGroups(row, 0, width, group, bits, codes, dst, 0, params, 0);
      const out = new Float32Array(width);
      dequantizeRowGroups(dst, 0, width, group, bits, params, 0, codes, out, 0);
      for (let c0 = 0; c0 < width; c0 += group) {
        const part = row.subarray(c0, Math.min(width, c0 + group));
        const twin = fakeQuantize(part, bits);
        expect(Array.from(out.subarray(c0, c0 + part.length))).toEqual(Array.from(twin));
        const range = Math.max(...part) - Math.min(...part);
        for (let i = 0; i < part.length; i++) expect(Math.abs(twin[i] - part[i])).toBeLessThanOrEqual((range / (2 ** bits - 1)) * 0.5 * 1.002 + 2e-3);
      }
    });

    test(`per channel, ${bits} bits`, () => {
      const rows = 8, width = 12;
      const block = randomRows(rows * width, 50 + bits);
      const dst = new Uint8Array(rows * packedRowBytes(width, bits));
      const params = new Uint16Array(2 * width);
      const codes = new Uint8Array(width);
      quantizeChannelBlock(block, rows, width, bits, codes, dst, 0, params, 0);
      const decoded = new Float32Array(2 * width);
      decodeChannelParams(params, 0, width, decoded);
      const out = new Float32Array(rows * width);
      for (let r = 0; r < rows; r++) dequantizeChannelRow(dst, r * packedRowBytes(width, bits), width, bits, decoded, codes, out, r * width);
      for (let c = 0; c < width; c++) {
        const column = Array.from({ length: rows }, (_, r) => block[r * width + c]);
        const twin = fakeQuantize(column, bits);
        expect(Array.from({ length: rows }, (_, r) => out[r * width + c])).toEqual(Array.from(twin));
      }
    });
  }

  test("a constant group is exact and unsupported widths are refused", () => {
    expect(Array.from(fakeQuantize([0.5, 0.5, 0.5], 2))).toEqual([0.5, 0.5, 0.5]);
    expect(() => checkCodeBits(5, "kv bits")).toThrow(InvalidArgumentError);
  });
});

describe("row store", () => {
  const width = 16;
  test("keeps the newest rows exact, quantises older blocks, truncates and round-trips its state", () => {
    for (const axis of ["token", "channel"] as const) {
      const store = createRowStore({ width, capacity: 64, bits: 4, axis, group: axis === "channel" ? 4 : 8, window: 6 });
      const block = axis === "channel" ? 4 : 1;
      const rows = randomRows(40 * width, 7);
      store.append(rows.subarray(0, 25 * width), 25, 0);
      // Quantised while at least window + block rows are newer than the block's start.
      expect(store.quantizedEnd()).toBe(Math.floor((25 - 6) / block) * block);
      const out = new Float32Array(25 * width);
      store.read(0, 25, out, 0);
      const q = store.quantizedEnd();
      expect(Array.from(out.subarray(q * width))).toEqual(Array.from(rows.subarray(q * width, 25 * width)));
      let maxErr = 0;
      for (let i = 0; i < q * width; i++) maxErr = Math.max(maxErr, Math.abs(out[i] - rows[i]));
      expect(maxErr).toBeGreaterThan(0);
      expect(maxErr).toBeLessThan(0.25); // range ≤ 3, 15 levels: step/2 ≈ 0.1

      const saved = store.exportState();
      // Truncating into a quantised block keeps that block's rows (as dequantised) in the window.
      store.truncate(10);
      expect(store.length()).toBe(10);
      const afterTruncate = new Float32Array(10 * width);
      store.read(0, 10, afterTruncate, 0);
      expect(Array.from(afterTruncate)).toEqual(Array.from(out.subarray(0, 10 * width)));
      store.append(rows.subarray(10 * width, 12 * width), 2, 10);
      expect(store.length()).toBe(12);

      const copy = createRowStore({ width, capacity: 64, bits: 4, axis, group: axis === "channel" ? 4 : 8, window: 6 });
      copy.importState(saved);
      const restored = new Float32Array(25 * width);
      copy.read(0, 25, restored, 0);
      expect(Array.from(restored)).toEqual(Array.from(out));
      expect(() => createRowStore({ width, capacity: 64, bits: 8, axis, group: 4, window: 6 }).importState({ ...saved, codes: new Uint8Array(1) })).toThrow(ShapeError);
    }
  });

  test("exact channels are kept in f16", () => {
    const store = createRowStore({ width, capacity: 32, bits: 2, axis: "channel", group: 4, window: 0, exactChannels: [0] });
    const rows = randomRows(8 * width, 9);
    for (let r = 0; r < 8; r++) rows[r * width] = 100 * (r + 1); // an outlier channel
    store.append(rows, 8, 0);
    expect(store.quantizedEnd()).toBe(8);
    const out = new Float32Array(8 * width);
    store.read(0, 8, out, 0);
    for (let r = 0; r < 8; r++) expect(out[r * width]).toBe(100 * (r + 1));
  });

  test("the WASM dequantiser and RoPE read what the plain loops read (bit for bit; RoPE within f32 rounding)", () => {
    const kernels = loadKernels();
    const [heads, headDim, capacity] = [3, 32, 600];
    const kvDim = heads * headDim;
    const invFreq = Float32Array.from({ length: headDim / 2 }, (_, i) => 10000 ** (-2 * i / headDim));
    const rope = createRopeTable(invFreq, heads, headDim, capacity);
    const dequantizer = createWasmRowDequantizer(kernels, kvDim);
    const mark = kernels.arena.mark();
    const staging = kernels.arena.alloc(capacity * kvDim * 4, 64);
    try {
      for (const bits of [8, 4, 3] as const) {
        for (const axis of ["token", "channel"] as const) {
          const keys = axis === "channel";
          const make = (wasm: boolean) => createRowStore({
            width: kvDim, capacity, bits, axis, group: keys ? 32 : 24, window: 5,
            dequantizer: wasm ? dequantizer : undefined,
            transform: keys
              ? { toStored: (r, n, f) => rope.rotate(r, n, f, -1), fromStored: wasm ? wasmRotation(kernels, rope, heads, headDim) : (r, n, f) => rope.rotate(r, n, f, 1) }
              : undefined,
          });
          const [plain, wasm] = [make(false), make(true)];
          const rows = randomRows(capacity * kvDim, bits);
          for (const store of [plain, wasm]) store.append(rows, capacity, 0);
          expect(wasm.quantizedEnd()).toBeGreaterThan(DEQUANT_SLOTS * DEQUANT_CHUNK_ROWS + 1); // several kernel calls (no pool: one slot spans the block)
          const want = new Float32Array(capacity * kvDim);
          plain.read(1, capacity, want, 1);
          const got = new Float32Array(kernels.memory.buffer, staging, capacity * kvDim);
          got.fill(0);
          wasm.read(1, capacity, got, 1); // straight into WASM memory
          const copied = new Float32Array(capacity * kvDim);
          wasm.read(1, capacity, copied, 1); // through the scratch buffer (and RoPE's plain loop)
          expect(Array.from(copied)).toEqual(Array.from(want));
          let worst = 0;
          for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
          if (keys) expect(worst).toBeLessThan(1e-5);
          else expect(worst).toBe(0);
        }
      }
    } finally {
      kernels.arena.release(mark);
    }
  });

  test("per-channel blocks longer than the dequantiser's chunk are read in pieces that share their parameters", () => {
    const kernels = loadKernels();
    const dequantizer = createWasmRowDequantizer(kernels, 16);
    const make = (wasm: boolean) => createRowStore({ width: 16, capacity: 700, bits: 4, axis: "channel", group: 300, window: 5, dequantizer: wasm ? dequantizer : undefined });
    const [plain, wasm] = [make(false), make(true)];
    const rows = randomRows(700 * 16, 21);
    for (const store of [plain, wasm]) store.append(rows, 700, 0);
    expect(wasm.quantizedEnd()).toBe(600);
    const [want, got] = [new Float32Array(690 * 16), new Float32Array(690 * 16)];
    plain.read(10, 700, want, 0);
    wasm.read(10, 700, got, 0);
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  test("with a worker pool, a read's chunks dequantise as parallel batches to the same bytes", async () => {
    const kernels = loadKernels();
    const pool = await createPool({ threads: 2, kernels });
    try {
      const [width, capacity] = [24, 1400]; // more chunks than one batch of DEQUANT_SLOTS
      expect(capacity).toBeGreaterThan((DEQUANT_SLOTS + 1) * DEQUANT_CHUNK_ROWS);
      const staging = kernels.arena.alloc(capacity * width * 4, 64);
      for (const axis of ["token", "channel"] as const) {
        const make = (dequantizer?: ReturnType<typeof createWasmRowDequantizer>) =>
          createRowStore({ width, capacity, bits: 4, axis, group: axis === "channel" ? 32 : 8, window: 3, dequantizer });
        const stores = [make(), make(createWasmRowDequantizer(kernels, width)), make(createWasmRowDequantizer(kernels, width, pool))];
        const rows = randomRows(capacity * width, 31);
        for (const store of stores) store.append(rows, capacity, 0);
        const want = new Float32Array(capacity * width);
        stores[0].read(2, capacity, want, 0);
        for (const store of stores.slice(1)) {
          const copied = new Float32Array((capacity - 2) * width);
          store.read(2, capacity, copied, 0); // through the slots' scratch
          expect(Array.from(copied)).toEqual(Array.from(want.subarray(0, copied.length)));
          const direct = new Float32Array(kernels.memory.buffer, staging, (capacity - 2) * width);
          direct.fill(0);
          store.read(2, capacity, direct, 0); // straight into WASM memory
          expect(Array.from(direct)).toEqual(Array.from(want.subarray(0, copied.length)));
        }
      }
      // RoPE of the staged keys, split by rows across the pool: the same floats as one call.
      const [heads, headDim] = [2, 12];
      const rope = createRopeTable(Float32Array.from({ length: headDim / 2 }, (_, i) => 10000 ** (-2 * i / headDim)), heads, headDim, capacity);
      const rows = new Float32Array(kernels.memory.buffer, staging, (capacity - 5) * width);
      const input = randomRows(rows.length, 41);
      rows.set(input);
      wasmRotation(kernels, rope, heads, headDim)(rows, capacity - 5, 5);
      const single = Array.from(rows);
      rows.set(input);
      wasmRotation(kernels, rope, heads, headDim, pool)(rows, capacity - 5, 5);
      expect(Array.from(rows)).toEqual(single);
    } finally {
      await disposePool(pool);
    }
  });
});
