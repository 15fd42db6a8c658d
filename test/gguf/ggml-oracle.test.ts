/**
 * The importer's decoders against llama.cpp's ggml itself (ggml-native.ts): blocks that
 * ggml_quantize_chunk (what llama-quantize runs) made from Gaussian weights, and random bytes,
 * decode bit for bit as ggml's dequantize_row_<type> decodes them. IQ1_S, IQ1_M, IQ2_XS and
 * IQ2_S get random bytes only: their quantisers first build search tables that take 2-12 s
 * here (ggml_quantize_init), and every bit pattern of random bytes is a valid block. Runs on Bun wherever
 * node-llama-cpp ships a CPU build (Linux x64/arm64); under CI=true a missing library fails.
 */
import { describe, expect, test } from "bun:test";
import { blockFormat, dequantizeGgml } from "../../runtime/import/ggml-dequantize.ts";
import { ggmlNativeExpected, loadGgmlNative } from "./ggml-native.ts";

const TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ2_XXS", "IQ2_XS", "IQ2_S",
  "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M", "IQ4_NL", "IQ4_XS", "TQ1_0", "TQ2_0"];

function gaussian(n: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 2 ** 32;
  return Float32Array.from({ length: n }, () => scale * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

function sameBits(a: Float32Array, b: Float32Array): number {
  const ua = new Uint32Array(a.buffer);
  const ub = new Uint32Array(b.buffer);
  let diff = 0;
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i] && !(Number.isNaN(a[i]!) && Number.isNaN(b[i]!))) diff++;
  return diff;
}

/** Quantised by ggml in the test; the rest are checked on random bytes. */
const GGML_QUANTISED = TYPES.filter((t) => !["IQ1_S", "IQ1_M", "IQ2_XS", "IQ2_S"].includes(t));

const run = ggmlNativeExpected() || process.env.CI === "true" ? describe : describe.skip;

run("decoders equal llama.cpp's ggml", () => {
  for (const type of TYPES) {
    test(type, async () => {
      const ggml = await loadGgmlNative();
      const f = blockFormat(type)!;
      if (GGML_QUANTISED.includes(type)) {
        const rows = 4;
        const cols = 1024;
        const x = gaussian(rows * cols, 7 + type.length, 0.02);
        const blocks = ggml.quantize(type, x, rows, cols, (cols / f.blockSize) * f.typeSize);
        const ours = dequantizeGgml(type, blocks, rows * cols);
        expect(sameBits(ours, ggml.dequantize(type, blocks, rows * cols))).toBe(0);
        // ggml's blocks are a quantisation of x, not noise.
        let err = 0;
        let norm = 0;
        for (let i = 0; i < x.length; i++) {
          err += (ours[i]! - x[i]!) ** 2;
          norm += x[i]! ** 2;
        }
        expect(Math.sqrt(err / norm)).toBeLessThan(type.startsWith("TQ") ? 0.9 : 0.6);
      }
      let seed = 0x0dd + type.charCodeAt(1);
      const random = Uint8Array.from({ length: 32 * f.typeSize }, () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) >>> 24));
      expect(sameBits(dequantizeGgml(type, random, 32 * f.blockSize), ggml.dequantize(type, random, 32 * f.blockSize))).toBe(0);
    });
  }
});
