/**
 * The relaxed-swizzle rewrite of the kernel binary: it validates, the loader uses it on Bun
 * (and Deno: pool.test.ts's smoke run), and every LUT encoding computes bit for bit what the
 * binary as built computes (the rewritten instruction only ever sees indices 0..15).
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { type Encoding, encodingName } from "../format/encoding.ts";
import { buildLut, createLut, createPackedMatrix, gemm } from "./matmul.ts";
import { quantizeRtn, randomFloats } from "./matmul-fixtures.ts";
import { relaxedSwizzleBinary } from "./relaxed-binary.ts";
import { Arena, instantiateKernels, type Kernels, kernelVariant } from "./wasm.ts";

const built = new Uint8Array(readFileSync(new URL("../../kernels-wasm/pkg/crumb_kernels.wasm", import.meta.url)));

function kernelsFrom(bytes: Uint8Array<ArrayBuffer>): Kernels {
  const memory = new WebAssembly.Memory({ initial: 32, maximum: 65536, shared: true });
  const instance = instantiateKernels(memory, undefined, new WebAssembly.Module(bytes));
  return { ...instance, arena: new Arena(memory, Number(instance.exports.__heap_base.value)) };
}

describe("relaxed-swizzle kernel binary", () => {
  const relaxed = relaxedSwizzleBinary(built);

  test("the rewrite validates, keeps every export, and the loader picks it", () => {
    expect(relaxed).toBeDefined();
    expect(WebAssembly.validate(relaxed!)).toBe(true);
    const names = (b: Uint8Array<ArrayBuffer>) => WebAssembly.Module.exports(new WebAssembly.Module(b)).map((e) => e.name);
    expect(names(relaxed!)).toEqual(names(built));
    expect(kernelVariant()).toBe("relaxed-simd");
    // Nothing left to rewrite the second time.
    expect(relaxedSwizzleBinary(relaxed!)).toBeUndefined();
  });

  const plain = kernelsFrom(built);
  const fast = kernelsFrom(relaxed!);
  const encodings: Encoding[] = [
    { kind: "bitplane", bits: 2, group: 32, scales: "zero-point" },
    { kind: "bitplane", bits: 3, group: 128, scales: "per-plane" },
    { kind: "bitplane", bits: 4, group: 64, scales: "zero-point" },
    { kind: "ternary", group: 64, planes: 2 },
  ];
  for (const e of encodings) {
    test(`${encodingName(e)}: identical to the binary as built (1 and 11 tokens)`, () => {
      const [rows, cols] = [67, 300];
      const packed = quantizeRtn(e, randomFloats(rows * cols, 7), rows, cols);
      for (const m of [1, 11]) {
        const x = randomFloats(m * cols, 8 + m, 3);
        const [a, b] = [plain, fast].map((k) => {
          const lut = createLut(k, cols, e.group, m);
          buildLut(k, lut, x, m);
          return gemm(k, createPackedMatrix(k, e, rows, cols, packed), lut, m) as Float32Array;
        });
        expect(b).toEqual(a);
      }
    });
  }
});
