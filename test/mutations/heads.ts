/**
 * Breaks of the output-head work (issue 13, item 6): the tied table's row lookup, the head
 * option and its measured defaults, the calibrated head, GPTQ in blocks of rows, and the
 * bench's heads on both engines. Each was applied by hand in a scratch copy and its tests seen
 * to fail before it was recorded here.
 */
import type { Mutation } from "./types.ts";

export const mutations: Mutation[] = [
  {
    name: "lutRow: the scale vectors read at the lane of rowOfScaleValue(j) instead of its inverse",
    file: "runtime/format/pack-lut.ts",
    find: "const q = 8 * (j >> 3) + 2 * (j & 3) + ((j & 7) >> 2);",
    replace: "const q = 8 * (j >> 3) + ((j & 7) >> 1) + 4 * (j & 1);",
    tests: ["runtime/format/lut-row.test.ts"],
  },
  {
    name: "embedding lookup of a LUT-encoded tied table always returns row 0",
    file: "runtime/ops/wasm-ops.ts",
    find: "lutRow(e, bytes, table.rows, table.cols, token)",
    replace: "lutRow(e, bytes, table.rows, table.cols, 0)",
    tests: ["test/wasm-engine.test.ts"],
    filter: "tied table",
  },
  {
    name: "default head of a 2-bit gptq body is q8 g128 instead of the measured q4 g64",
    file: "quantizer/recipe.ts",
    find: 'if (bits === 2 && method === "gptq") return { format: "q4", group: 64 };',
    replace: 'if (bits === 2 && method === "gptq") return { format: "q8", group: 128 };',
    tests: ["quantizer/recipe.test.ts", "test/bench/bench.test.ts"],
  },
  {
    name: "a tied embedding table is planned as an embedding, not as the head",
    file: "quantizer/recipe.ts",
    find: 'if (name === HEAD || (name === EMBEDDING && tiedHead)) return "head";',
    replace: 'if (name === HEAD) return "head";',
    tests: ["quantizer/recipe.test.ts", "test/quantizer/heads.test.ts"],
  },
  {
    name: "a GGUF head with q8-shaped blocks is re-quantised to the default head without --head",
    file: "quantizer/recipe.ts",
    find: "if (recipe.fromSource || targets.includes(8)) {",
    replace: "if (recipe.fromSource) {",
    tests: ["quantizer/recipe.test.ts"],
  },
  {
    name: "the calibrated head is quantised without its statistics (falls back to rtn)",
    file: "quantizer/quantize.ts",
    find: "emit(calibratedHead, undefined, stats, calibrator.dense);",
    replace: "emit(calibratedHead, undefined, undefined, calibrator.dense);",
    tests: ["test/quantizer/heads.test.ts"],
  },
  {
    name: "head statistics taken before the final RMSNorm",
    file: "quantizer/calibrate-stream.ts",
    find: "const normed = hidden.map((x) => rmsNormInto(new Float32Array(x.length), x, x.length / args.hiddenSize, norm, args.rmsNormEps));",
    replace: "const normed = hidden.map((x) => x.slice(0 * norm.length));",
    tests: ["test/quantizer/heads.test.ts"],
  },
  {
    name: "GPTQ in row blocks: every block reads the first rows of the matrix",
    file: "quantizer/methods/row-chunks.ts",
    find: "weights: input.weights.subarray(r * cols, end * cols)",
    replace: "weights: input.weights.subarray(0, (end - r) * cols)",
    tests: ["quantizer/methods/row-chunks.test.ts"],
  },
  {
    name: "quantize --head is parsed but not passed on",
    file: "quantizer/cli.ts",
    find: "head: values.head as HeadSpec | undefined,",
    replace: "head: undefined,",
    tests: ["test/quantizer/cli.test.ts"],
    filter: "head|bad flags",
  },
  {
    name: "bench: crumb's tied table packed in the untied embedding encoding (q8 g32) instead of the head's",
    file: "bench/models.ts",
    find: 'name === "lm_head.weight" || (isEmbedding && tied) ? HEAD_ENCODINGS[encoding]',
    replace: 'name === "lm_head.weight" ? HEAD_ENCODINGS[encoding]',
    tests: ["test/bench/bench.test.ts"],
    filter: "tied table",
  },
  {
    name: "GGUF export: a tied token_embd gets the embedding type instead of the head's (Q6_K)",
    file: "quantizer/export/type-plan.ts",
    find: 'if (ggufName === "token_embd.weight") return hasOutput ? "embedding" : "output";',
    replace: 'if (ggufName === "token_embd.weight") return "embedding";',
    tests: ["test/bench/bench.test.ts"],
    filter: "tied table",
  },
];
