/**
 * The two kernel builds (kernels-wasm/build.sh): the relaxed-SIMD binary validates on this
 * engine and the loader picks it (unless CRUMB_KERNELS=simd128 forces the baseline), both
 * export the same functions, and every LUT encoding computes bit for bit the same in both
 * (relaxed instructions are only used where their results are fully specified).
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import process from "node:process";
import { type Encoding, encodingName } from "../format/encoding.ts";
import { buildLut, createLut, createPackedMatrix, gemm } from "./matmul.ts";
import { quantizeRtn, randomFloats } from "../../test/fixtures/matmul-fixtures.ts";
import { Arena, instantiateKernels, type Kernels, kernelVariant } from "./wasm.ts";

const read = (name: string) => new Uint8Array(readFileSync(new URL(`../../kernels-wasm/pkg/${name}.wasm`, import.meta.url)));
const baselineBytes = read("crumb_kernels");
const relaxedBytes = read("crumb_kernels_relaxed");

function kernelsFrom(bytes: Uint8Array<ArrayBuffer>): Kernels {
  const memory = new WebAssembly.Memory({ initial: 32, maximum: 65536, shared: true });
  const instance = instantiateKernels(memory, undefined, new WebAssembly.Module(bytes));
  return { ...instance, arena: new Arena(memory, Number(instance.exports.__heap_base.value)) };
}

describe("kernel binaries: relaxed SIMD and baseline SIMD128", () => {
  test("both validate here, export the same functions, and the loader picks the relaxed one", () => {
    expect(WebAssembly.validate(baselineBytes)).toBe(true);
    expect(WebAssembly.validate(relaxedBytes)).toBe(true);
    const names = (b: Uint8Array<ArrayBuffer>) => WebAssembly.Module.exports(new WebAssembly.Module(b)).map((e) => e.name).sort();
    expect(names(relaxedBytes)).toEqual(names(baselineBytes));
    expect(relaxedBytes).not.toEqual(baselineBytes);
    expect(kernelVariant()).toBe(process.env.CRUMB_KERNELS === "simd128" ? "simd128" : "relaxed-simd");
  });

  const plain = kernelsFrom(baselineBytes);
  const fast = kernelsFrom(relaxedBytes);
  const encodings: Encoding[] = [
    { kind: "bitplane", bits: 2, group: 32, scales: "zero-point" },
    { kind: "bitplane", bits: 3, group: 128, scales: "per-plane" },
    { kind: "bitplane", bits: 4, group: 64, scales: "zero-point" },
    { kind: "ternary", group: 64, planes: 2 },
  ];
  for (const e of encodings) {
    test(`${encodingName(e)}: identical in both binaries (1 and 11 tokens)`, () => {
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
