/**
 * Deliberate breaks of the architecture features (RoPE scaling, q/k norms, biases, Mistral's
 * sliding window) and the tests in test/reference/ that must catch them: the float64
 * transformers-semantics reference (architectures.test.ts), the RoPE tables against the
 * published formulas (rope-frequencies.test.ts) and llama.cpp on the same weights
 * (llama-cpp.test.ts). Each was applied by hand and seen to fail the listed tests (issue 12).
 */
import type { Mutation } from "./types.ts";

const ARCHITECTURES = "test/reference/architectures.test.ts";
const ROPE_TABLES = "test/reference/rope-frequencies.test.ts";
const LLAMA_CPP = "test/reference/llama-cpp.test.ts";

export const mutations: Mutation[] = [
  {
    name: "llama3 RoPE scaling: the smooth blend reversed (kept and divided sides swapped)",
    file: "runtime/models/rope-frequencies.ts",
    find: "return (1 - smooth) * (freq / scaling.factor) + smooth * freq;",
    replace: "return smooth * (freq / scaling.factor) + (1 - smooth) * freq;",
    tests: [ROPE_TABLES, ARCHITECTURES, LLAMA_CPP],
    filter: "llama3|Llama 3\\.1",
  },
  {
    name: "linear RoPE scaling: factor ignored",
    file: "runtime/models/rope-frequencies.ts",
    find: 'case "linear":\n      return freq / scaling.factor;',
    replace: 'case "linear":\n      return freq;',
    tests: [ROPE_TABLES, ARCHITECTURES, LLAMA_CPP],
    filter: "linear",
  },
  {
    name: "qwen3 q/k norms: k_norm uses q_norm's weights",
    file: "runtime/models/llama.ts",
    find: "weights.vector(`${p}.self_attn.k_norm.weight`)",
    replace: "weights.vector(`${p}.self_attn.q_norm.weight`)",
    tests: [ARCHITECTURES],
    filter: "qwen3",
  },
  {
    name: "qwen2 biases: v bias dropped",
    file: "runtime/models/llama.ts",
    find: 'out: v, bias: bias("v_proj") }',
    replace: "out: v }",
    tests: [ARCHITECTURES],
    filter: "qwen2",
  },
  {
    name: "llama attention_bias: o_proj bias dropped",
    file: "runtime/models/llama.ts",
    find: 'proj("self_attn.o_proj", s.h, args.outputBias)',
    replace: 'proj("self_attn.o_proj", s.h, false)',
    tests: [ARCHITECTURES],
    filter: "attention_bias",
  },
  {
    name: "mistral sliding window ignored (config normalisation drops sliding_window)",
    file: "runtime/models/decoder-args.ts",
    find: 'return window === undefined || window === null ? undefined : requireInt(raw, "sliding_window");',
    replace: "return undefined;",
    tests: [ARCHITECTURES],
    filter: "mistral",
  },
  {
    name: "mistral sliding window off by one in the fp32 reference cache (one key too many)",
    file: "runtime/engine/kv-cache/reference-cache.ts",
    find: "Math.max(0, pos - shape.slidingWindow + 1)",
    replace: "Math.max(0, pos - shape.slidingWindow)",
    tests: [ARCHITECTURES],
    filter: "mistral",
  },
  {
    name: "mistral sliding window off by one in the WASM decode step (one key too many)",
    file: "runtime/engine/kv-cache/causal-attention.ts",
    find: "const first = window > 0 ? Math.max(0, end - window) : 0;",
    replace: "const first = window > 0 ? Math.max(0, end - window - 1) : 0;",
    tests: [ARCHITECTURES],
    filter: "mistral",
  },
  {
    name: "mistral sliding window ignored in the WASM prefill block kernel",
    file: "runtime/engine/kv-cache/causal-attention.ts",
    find: "nTokens: n, window, headBegin",
    replace: "nTokens: n, window: 0, headBegin",
    tests: [ARCHITECTURES],
    filter: "mistral",
  },
];
