/**
 * Deliberate breaks of the GGUF import (issue 14): one per block decoder, the grid data, the
 * transcoder and the llama q/k un-permutation, each with the tests that must catch it. Each was
 * applied by hand and its tests seen to fail before it was recorded here (the decoder breaks
 * also fail test/gguf/ggml-oracle.test.ts, against llama.cpp's ggml, where it runs).
 */
import type { Mutation } from "./types.ts";

const DECODERS = ["test/gguf/ggml-decoders.test.ts"];
const LEGACY = "runtime/import/ggml-legacy.ts";
const K = "runtime/import/ggml-kquants.ts";
const I = "runtime/import/ggml-iquants.ts";
const T = "runtime/import/ggml-ternary.ts";

export const mutations: Mutation[] = [
  { name: "Q4_0: codes centred on 7", file: LEGACY, find: "(nibble(src, at + 2, k) - 8) * d", replace: "(nibble(src, at + 2, k) - 7) * d", tests: DECODERS },
  { name: "Q4_1: min subtracted", file: LEGACY, find: "f32(f32(nibble(src, at + 4, k) * d) + m)", replace: "f32(f32(nibble(src, at + 4, k) * d) - m)", tests: DECODERS },
  { name: "Q5_0: fifth bit weighs 8", file: LEGACY, find: "nibble(src, at + 6, k) | (((qh >>> k) & 1) << 4)", replace: "nibble(src, at + 6, k) | (((qh >>> k) & 1) << 3)", tests: DECODERS },
  { name: "Q5_1: fifth bits shifted by one weight", file: LEGACY, find: "nibble(src, at + 8, k) | (((qh >>> k) & 1) << 4)", replace: "nibble(src, at + 8, k) | (((qh >>> (k + 1)) & 1) << 4)", tests: DECODERS },
  { name: "Q8_0: codes read unsigned", file: LEGACY, find: "f32(i8At(src, at + 2 + k) * d)", replace: "f32(src[at + 2 + k]! * d)", tests: DECODERS },
  { name: "Q2_K: min taken from the scale nibble", file: K, find: "const ml = f32(dmin * (byte >> 4));", replace: "const ml = f32(dmin * (byte & 15));", tests: DECODERS },
  { name: "Q3_K: high-bit sense inverted", file: K, find: "(high === 1 ? 0 : 4)", replace: "(high === 1 ? 4 : 0)", tests: DECODERS },
  { name: "Q4_K: upper sub-blocks' min high bits from the wrong byte", file: K, find: "const min = (src[sc + s + 4]! >> 4) | ((src[sc + s]! >> 6) << 4);", replace: "const min = (src[sc + s + 4]! >> 4) | ((src[sc + s - 4]! >> 6) << 4);", tests: DECODERS },
  { name: "Q5_K: fifth bit weighs 32", file: K, find: "& 1) === 1) q += 16;", replace: "& 1) === 1) q += 32;", tests: DECODERS },
  { name: "Q6_K: high bit pairs of the quarters swapped", file: K, find: "(src[at + 128 + 32 * h + l]! >> (2 * k)) & 3", replace: "(src[at + 128 + 32 * h + l]! >> (2 * (k ^ 1))) & 3", tests: DECODERS },
  { name: "Q8_K: scale read big-endian", file: K, find: "getFloat32(0, true)", replace: "getFloat32(0, false)", tests: DECODERS },
  { name: "IQ2_XXS: scale divided by 8 instead of 4", file: I, find: "const dl = f32(f32(d * (0.5 + (w >>> 28))) * 0.25);", replace: "const dl = f32(f32(d * (0.5 + (w >>> 28))) * 0.125);", tests: DECODERS },
  { name: "IQ2_XS: sign pattern index truncated to 6 bits", file: I, find: "KSIGNS_IQ2XS[q >> 9]!", replace: "KSIGNS_IQ2XS[(q >> 9) & 63]!", tests: DECODERS },
  { name: "IQ2_S: grid index loses its tenth bit", file: I, find: "(((qh >> (2 * l)) & 3) << 8)", replace: "(((qh >> (2 * l)) & 1) << 8)", tests: DECODERS },
  { name: "IQ3_XXS: the two grid points of a group swapped", file: I, find: "IQ3XXS_GRID, src[q]!, src[q + 1]!", replace: "IQ3XXS_GRID, src[q + 1]!, src[q]!", tests: DECODERS },
  { name: "IQ3_S: second point's ninth bit from the first's", file: I, find: "const b = src[q + 1]! | (((qh >> (2 * l + 1)) & 1) << 8);", replace: "const b = src[q + 1]! | (((qh >> (2 * l)) & 1) << 8);", tests: DECODERS },
  { name: "IQ1_S: delta sign inverted", file: I, find: "const delta = (qh & 0x8000) !== 0 ? -0.125 : 0.125;", replace: "const delta = (qh & 0x8000) !== 0 ? 0.125 : -0.125;", tests: DECODERS },
  { name: "IQ1_M: scale of the second group pair from the first", file: I, find: "(6 * (ib & 1) + 3 * (l >> 1))", replace: "(6 * (ib & 1) + 3 * (l & 1))", tests: DECODERS },
  { name: "IQ4_NL: high nibbles read as low", file: I, find: "out[o + 16 + j] = f32(d * KVALUES_IQ4NL[src[at + 2 + j]! >> 4]!);", replace: "out[o + 16 + j] = f32(d * KVALUES_IQ4NL[src[at + 2 + j]! & 15]!);", tests: DECODERS },
  { name: "IQ4_XS: scale offset 31", file: I, find: "const dl = f32(d * (ls - 32));", replace: "const dl = f32(d * (ls - 31));", tests: DECODERS },
  { name: "TQ1_0: qh trits taken in the wrong order", file: T, find: "else t = tritOf(src[at + 48 + (i & 3)]!, (i - 240) >> 2);", replace: "else t = tritOf(src[at + 48 + ((i >> 2) & 3)]!, i & 3);", tests: DECODERS },
  { name: "TQ2_0: bit pairs from the wrong 32-weight run", file: T, find: "(2 * ((i >> 5) & 3))) & 3;", replace: "(2 * ((i >> 6) & 3))) & 3;", tests: DECODERS },
  {
    name: "IQ3_S grid: one entry mistranscribed (only llama.cpp's ggml can tell)",
    file: "runtime/import/ggml-grids.ts",
    find: "01010101 01010103 01010105",
    replace: "01010101 01010203 01010105",
    tests: ["test/gguf/ggml-oracle.test.ts"],
  },
  {
    name: "transcode: the 4-bit offset (Q4_0's -8d, Q4_1's m, Q4_K's -dmin*m) with the wrong sign",
    file: "quantizer/gguf-transcode.ts",
    find: "    const m = keep(b);",
    replace: "    const m = keep(-b);",
    tests: ["test/gguf/transcode.test.ts", "test/gguf/gguf-quantize.test.ts", "test/gguf/gguf-generate.test.ts"],
  },
  {
    name: "transcode: llama q/k rows kept in Meta order",
    file: "quantizer/gguf-transcode.ts",
    find: "const q = order === undefined ? candidate : reorder(candidate, rows, cols, order);",
    replace: "const q = candidate;",
    tests: ["test/gguf/transcode.test.ts", "test/gguf/gguf-generate.test.ts"],
  },
  {
    name: "import: llama q/k rows not un-permuted",
    file: "runtime/import/gguf-model.ts",
    find: "const rowOrder = role === undefined ? undefined : metaToHfRowOrder(rows, heads);",
    replace: "const rowOrder = undefined;",
    tests: ["test/import/gguf.test.ts", "test/gguf/gguf-generate.test.ts"],
  },
  {
    name: "import: Mistral's sliding window dropped",
    file: "runtime/import/gguf-model.ts",
    find: "sliding_window: num(gguf, `${p}attention.sliding_window`, false),",
    replace: "",
    tests: ["test/import/gguf.test.ts", "test/gguf/gguf-generate.test.ts"],
  },
];
