/**
 * The compressed-cache dequantisers (kv_dequant_token/_channel) equal their twins in
 * runtime/engine/kv-cache/kv-quant.ts bit for bit, on the SIMD path (16-channel chunks) and
 * the scalar one (widths and groups that are not multiples of 16), for every code width; the
 * wrappers reject bad arguments with typed errors.
 */
import { describe, expect, test } from "bun:test";
import { KernelError, ShapeError } from "../errors.ts";
import {
  type CodeBits,
  decodeChannelParams,
  dequantizeChannelRow,
  dequantizeRowGroups,
  packedRowBytes,
  quantizeChannelBlock,
  quantizeRowGroups,
} from "../engine/kv-cache/kv-quant.ts";
import { kvDequantChannel, kvDequantToken } from "./kv-dequant.ts";
import { alloc, getF32, randomF32, withArena } from "../../test/fixtures/kernel-data.ts";
import { loadKernels } from "./wasm.ts";

const kern = loadKernels();
const BITS: CodeBits[] = [2, 3, 4, 8];

function putBytes(data: Uint8Array | Uint16Array): number {
  const ptr = kern.arena.alloc(Math.max(1, data.byteLength), 2);
  new Uint8Array(kern.memory.buffer, ptr, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return ptr;
}

const bitsOf = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe("kv_dequant_token equals dequantizeRowGroups", () => {
  for (const bits of BITS) {
    for (const [width, group, rows] of [[768, 32, 70], [256, 128, 3], [100, 20, 5], [37, 16, 3]]) {
      test(`${bits} bits, width ${width}, group ${group}, ${rows} rows`, () => {
        withArena(kern, () => {
          const x = randomF32(width + bits, rows * width, 2);
          const rowBytes = packedRowBytes(width, bits);
          const perRow = 2 * Math.ceil(width / group);
          const codes = new Uint8Array(rows * rowBytes);
          const params = new Uint16Array(rows * perRow);
          const scratch = new Uint8Array(width);
          for (let r = 0; r < rows; r++) quantizeRowGroups(x, r * width, width, group, bits, scratch, codes, r * rowBytes, params, r * perRow);
          const want = new Float32Array(rows * width);
          for (let r = 0; r < rows; r++) dequantizeRowGroups(codes, r * rowBytes, width, group, bits, params, r * perRow, scratch, want, r * width);
          const out = alloc(kern, rows * width);
          kvDequantToken(kern, { codes: putBytes(codes), params: putBytes(params), out, rows, width, group, bits });
          expect(bitsOf(getF32(kern, out, rows * width))).toEqual(bitsOf(want));
        });
      });
    }
  }
});

describe("kv_dequant_channel equals dequantizeChannelRow", () => {
  for (const bits of BITS) {
    for (const [width, rows, block] of [[768, 70, 32], [50, 7, 7], [37, 1, 4], [64, 9, 4]]) {
      test(`${bits} bits, width ${width}, ${rows} rows in blocks of ${block}`, () => {
        withArena(kern, () => {
          const x = randomF32(width * bits, rows * width, 3);
          const rowBytes = packedRowBytes(width, bits);
          const blocks = Math.ceil(rows / block);
          const codes = new Uint8Array(rows * rowBytes);
          const params = new Uint16Array(blocks * 2 * width);
          const scratch = new Uint8Array(width);
          const decoded = new Float32Array(2 * width);
          const want = new Float32Array(rows * width);
          for (let b = 0; b < blocks; b++) {
            const r0 = b * block;
            const n = Math.min(block, rows - r0);
            quantizeChannelBlock(x.subarray(r0 * width), n, width, bits, scratch, codes, r0 * rowBytes, params, b * 2 * width);
            decodeChannelParams(params, b * 2 * width, width, decoded);
            for (let r = r0; r < r0 + n; r++) dequantizeChannelRow(codes, r * rowBytes, width, bits, decoded, scratch, want, r * width);
          }
          const out = alloc(kern, rows * width);
          kvDequantChannel(kern, { codes: putBytes(codes), params: putBytes(params), out, rows, width, bits, block });
          expect(bitsOf(getF32(kern, out, rows * width))).toEqual(bitsOf(want));
        });
      });
    }
  }
});

describe("argument checks", () => {
  test("bad widths, groups and code widths throw ShapeError; bad pointers KernelError", () => {
    withArena(kern, () => {
      const codes = putBytes(new Uint8Array(64));
      const params = putBytes(new Uint16Array(64));
      const out = alloc(kern, 64);
      const ok = { codes, params, out, rows: 2, width: 16, bits: 8, block: 2 };
      expect(() => kvDequantToken(kern, { ...ok, group: 16, bits: 5 })).toThrow(ShapeError);
      expect(() => kvDequantToken(kern, { ...ok, group: 0 })).toThrow(ShapeError);
      expect(() => kvDequantChannel(kern, { ...ok, width: 0 })).toThrow(ShapeError);
      expect(() => kvDequantChannel(kern, { ...ok, block: 0 })).toThrow(ShapeError);
      expect(() => kvDequantChannel(kern, { ...ok, rows: 4, block: 1 })).toThrow(KernelError); // 4 parameter sets run into out
      expect(() => kvDequantChannel(kern, { ...ok, params: params + 1 })).toThrow(KernelError);
      expect(() => kvDequantChannel(kern, { ...ok, out: out + 2 })).toThrow(KernelError);
      expect(() => kvDequantToken(kern, { ...ok, group: 16, codes: kern.memory.buffer.byteLength - 8 })).toThrow(KernelError);
      expect(() => kvDequantChannel(kern, { ...ok, out: codes })).toThrow(KernelError);
    });
  });
});
