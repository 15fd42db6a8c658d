/**
 * Breaks of the GGUF pull and export (issue 14), one per writer or rule, each applied by hand
 * and its tests seen to fail before it was recorded here.
 */
import type { Mutation } from "./types.ts";

export const mutations: Mutation[] = [
  {
    name: "Q4_1 writer: weights 0-15 and 16-31 swap nibbles",
    file: "quantizer/export/blocks/q4-1.ts",
    find: "out[at + 4 + j] = code(j) | (code(j + 16) << 4);",
    replace: "out[at + 4 + j] = code(j + 16) | (code(j) << 4);",
    tests: ["test/export/blocks.test.ts"],
  },
  {
    name: "Q4_1 transcode: the offset is always the grid's lowest level (no shift or reflection search)",
    file: "quantizer/export/blocks/q4-1.ts",
    find: "for (let s = 0; s <= 15 - span && best.err > 0; s++) {",
    replace: "for (let s = 0; s <= 0 && best.err > 0; s++) {",
    tests: ["test/export/blocks.test.ts"],
    filter: "offset",
  },
  {
    name: "Q6_K writer: the high 2 bits of a code go to the mirrored qh field",
    file: "quantizer/export/blocks/q6-k.ts",
    find: "qh: 128 + 32 * n + l, qhShift: 2 * t };",
    replace: "qh: 128 + 32 * n + l, qhShift: 2 * (3 - t) };",
    tests: ["test/export/blocks.test.ts"],
  },
  {
    name: "Q6_K writer: sub-block scales rounded against +127 instead of -128",
    file: "quantizer/export/blocks/q6-k.ts",
    find: "putF16(out, at + 208, maxScale / -128);",
    replace: "putF16(out, at + 208, maxScale / 127);",
    tests: ["test/export/blocks.test.ts"],
  },
  {
    name: "TQ2_0 writer: 2-bit fields packed by weight index mod 4",
    file: "quantizer/export/blocks/tq2-0.ts",
    find: "shift: 2 * ((i >> 5) & 3) };",
    replace: "shift: 2 * (i & 3) };",
    tests: ["test/export/blocks.test.ts"],
  },
  {
    name: "TQ2_0 ternary transcode: block scale is the mean over all 256 weights, zeros included",
    file: "quantizer/export/blocks/tq2-0.ts",
    find: "count === 0 ? 0 : sum / count);",
    replace: "count === 0 ? 0 : sum / QK_K);",
    tests: ["test/export/blocks.test.ts"],
  },
  {
    name: "Q8_0/Q4_0 transcode: a grid is accepted without checking the values are on it",
    file: "quantizer/export/blocks/symmetric-grid.ts",
    find: "if (q < lo || q > hi || Math.fround(q * d) !== v[j]) return undefined;",
    replace: "if (q < lo || q > hi) return undefined;",
    tests: ["test/export/blocks.test.ts"],
  },
  {
    name: "llama q/k rows written in Hugging Face order (no RoPE permutation)",
    file: "quantizer/export/gguf-export.ts",
    find: 'const rotary = ggufArch === "llama" && /\\.attn_[qk]\\.(weight|bias)$/.test(name);',
    replace: "const rotary = false;",
    tests: ["test/export/export.test.ts", "test/export/llamacpp.test.ts"],
    filter: "F16",
  },
  {
    name: "metadata: rope.freq_base written as twice the model's theta",
    file: "quantizer/export/gguf-metadata.ts",
    find: "[`${p}rope.freq_base`, f32(args.ropeTheta)],",
    replace: "[`${p}rope.freq_base`, f32(args.ropeTheta * 2)],",
    tests: ["test/export/llamacpp.test.ts"],
    filter: "stories260K",
  },
  {
    name: "SentencePiece tokenizer: scores from merge ranks with the wrong sign",
    file: "quantizer/export/gguf-tokenizer.ts",
    find: "scores[id]! < -rank) scores[id] = -rank;",
    replace: "scores[id]! < rank) scores[id] = rank;",
    tests: ["test/export/llamacpp.test.ts"],
    filter: "SentencePiece",
  },
  {
    name: "byte-level tokenizer: the Llama 3 split written as gpt-2",
    file: "quantizer/export/gguf-tokenizer.ts",
    find: 'if (regex(steps[0]) === LLAMA3_PATTERN) return "llama-bpe";',
    replace: 'if (regex(steps[0]) === LLAMA3_PATTERN) return "gpt-2";',
    tests: ["test/export/llamacpp.test.ts"],
    filter: "llama3",
  },
  {
    name: "default types: the head keeps its storage in low-bit exports (no Q6_K)",
    file: "quantizer/export/type-plan.ts",
    find: 'return lowBit ? "Q6_K" : body;',
    replace: "return body;",
    tests: ["test/export/export.test.ts"],
    filter: "GPTQ",
  },
  {
    name: "pull: quant tags matched case-sensitively",
    file: "quantizer/pull/select-gguf.ts",
    find: "const matches = candidates.filter((c) => c.label.toLowerCase() === wanted);",
    replace: "const matches = candidates.filter((c) => c.label === quant);",
    tests: ["test/pull/pull-gguf.test.ts"],
  },
  {
    name: "pull: a split GGUF set missing a part is downloaded anyway",
    file: "quantizer/pull/select-gguf.ts",
    find: "if (chosen.missing > 0) {",
    replace: "if (chosen.missing > 99) {",
    tests: ["test/pull/pull-gguf.test.ts"],
  },
  {
    name: "pull: a llama2.c .bin without its tokenizer",
    file: "quantizer/pull/select-include.ts",
    find: "const tokenizer = llama2cTokenizerFor(model.path, files);",
    replace: "const tokenizer = undefined;",
    tests: ["test/pull/pull-gguf.test.ts"],
  },
];
