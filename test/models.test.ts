// Model harness: every architecture on tiny random configs (GQA, tied embeddings, biases,
// q/k norms, rope scaling): logits shape, cached step-by-step decoding equals one full
// forward pass, and a fixed seed reproduces sampled output.
import { describe, expect, test } from "bun:test";
import { createReferenceEngine } from "../runtime/engine/reference-engine.ts";
import { generateTokens } from "../runtime/engine/generate-tokens.ts";
import { createSampler } from "../runtime/engine/sampler.ts";
import { SUPPORTED_MODEL_TYPES } from "../runtime/models/registry.ts";
import { ConfigError, ContextLengthError, FormatError, UnsupportedModelError } from "../runtime/errors.ts";
import { createRandomModel, type RandomModelSpec } from "./fixtures/random-model.ts";

const BASE = { hidden: 64, intermediate: 96, layers: 2, vocab: 97, seed: 7 } as const;

const CASES: Array<[string, RandomModelSpec]> = [
  ["llama multi-head", { ...BASE, arch: "llama", heads: 4 }],
  ["llama GQA 8/2 tied", { ...BASE, arch: "llama", heads: 8, kvHeads: 2, tieEmbeddings: true }],
  ["llama3 rope scaling", {
    ...BASE,
    arch: "llama",
    heads: 4,
    kvHeads: 2,
    ropeTheta: 500000,
    ropeScaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
  }],
  ["mistral alias", { ...BASE, arch: "mistral", heads: 4, kvHeads: 1 }],
  ["mistral sliding window 4", { ...BASE, arch: "mistral", heads: 4, kvHeads: 2, slidingWindow: 4 }],
  ["qwen2 biases GQA tied", { ...BASE, arch: "qwen2", heads: 4, kvHeads: 2, tieEmbeddings: true }],
  ["qwen3 q/k norm, head_dim 32", { ...BASE, arch: "qwen3", heads: 4, kvHeads: 2, headDim: 32 }],
];

const TOKENS = [1, 17, 42, 5, 96, 33, 8, 61, 2, 77, 14];

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

describe("architectures", () => {
  test("the registry lists every architecture of the foundation issue", () => {
    for (const type of ["llama", "mistral", "qwen2", "qwen3"]) expect(SUPPORTED_MODEL_TYPES).toContain(type);
  });

  for (const [label, spec] of CASES) {
    test(`${label}: cached decoding equals a full forward pass`, () => {
      const full = createReferenceEngine(createRandomModel(spec));
      const all = full.forward(TOKENS, { allLogits: true });
      expect(all.length).toBe(TOKENS.length * spec.vocab!);
      expect(all.every(Number.isFinite)).toBe(true);

      const stepwise = createReferenceEngine(createRandomModel(spec));
      // Prefill a block of 4, then one token at a time.
      const logitsAfterBlock = stepwise.forward(TOKENS.slice(0, 4));
      expect(maxAbsDiff(logitsAfterBlock, all.subarray(3 * spec.vocab!, 4 * spec.vocab!))).toBeLessThan(1e-4);
      for (let t = 4; t < TOKENS.length; t++) {
        const logits = stepwise.forward([TOKENS[t]]);
        expect(logits.length).toBe(spec.vocab!);
        expect(maxAbsDiff(logits, all.subarray(t * spec.vocab!, (t + 1) * spec.vocab!))).toBeLessThan(1e-4);
      }
    });
  }

  test("logits depend on position (RoPE is applied) and on earlier tokens (attention works)", () => {
    const spec = CASES[1][1];
    const engine = createReferenceEngine(createRandomModel(spec));
    const a = engine.forward([5, 9]);
    engine.reset();
    const b = engine.forward([6, 9]);
    expect(maxAbsDiff(a, b)).toBeGreaterThan(1e-3);
  });

  test("a sliding window limits what late positions see", () => {
    const spec: RandomModelSpec = { ...BASE, arch: "mistral", heads: 4, kvHeads: 2 };
    const windowed = createReferenceEngine(createRandomModel({ ...spec, slidingWindow: 4 })).forward(TOKENS, { allLogits: true });
    const full = createReferenceEngine(createRandomModel(spec)).forward(TOKENS, { allLogits: true });
    const v = spec.vocab!;
    // Positions 0..3 see the same keys either way; the last one does not.
    expect(maxAbsDiff(windowed.subarray(0, 4 * v), full.subarray(0, 4 * v))).toBeLessThan(1e-5);
    expect(maxAbsDiff(windowed.subarray(-v), full.subarray(-v))).toBeGreaterThan(1e-3);
  });

  test("a fixed seed reproduces sampled output; another seed differs", () => {
    const spec = CASES[4][1];
    const run = (seed: number) => {
      const engine = createReferenceEngine(createRandomModel(spec));
      const sampler = createSampler({ temperature: 1.5, topK: 40, topP: 0.95, seed });
      return [...generateTokens(engine, [1, 5], { maxTokens: 24, sampler })];
    };
    expect(run(42)).toEqual(run(42));
    expect(run(42)).not.toEqual(run(43));
  });

  test("greedy decoding is deterministic and stops at a stop token", () => {
    const spec = CASES[0][1];
    const engine = createReferenceEngine(createRandomModel(spec));
    const ids = [...generateTokens(engine, [1], { maxTokens: 12, sampler: createSampler({ temperature: 0 }) })];
    expect(ids.length).toBe(12);
    const engine2 = createReferenceEngine(createRandomModel(spec));
    const stopped = [...generateTokens(engine2, [1], {
      maxTokens: 12,
      sampler: createSampler({ temperature: 0 }),
      stopTokenIds: [ids[3]],
    })];
    expect(stopped).toEqual(ids.slice(0, ids.indexOf(ids[3]) + 1));
  });
});

describe("bad configs and checkpoints", () => {
  test("unknown model_type lists the supported ones", () => {
    const model = createRandomModel({ ...BASE, arch: "llama", heads: 4 });
    const bad = { ...model, config: { ...model.config, model_type: "gpt_neox" } };
    expect(() => createReferenceEngine(bad)).toThrow(UnsupportedModelError);
    expect(() => createReferenceEngine(bad)).toThrow(/gpt_neox.*supported: llama/);
  });

  test("a missing required key names it", () => {
    const model = createRandomModel({ ...BASE, arch: "llama", heads: 4 });
    const config = { ...model.config };
    delete config.hidden_size;
    expect(() => createReferenceEngine({ ...model, config })).toThrow(ConfigError);
    expect(() => createReferenceEngine({ ...model, config })).toThrow(/hidden_size/);
  });

  test("heads not divisible by kv heads is refused", () => {
    const model = createRandomModel({ ...BASE, arch: "llama", heads: 4 });
    const config = { ...model.config, num_key_value_heads: 3 };
    expect(() => createReferenceEngine({ ...model, config })).toThrow(/multiple of num_key_value_heads/);
  });

  test("a missing tensor is named", () => {
    const model = createRandomModel({ ...BASE, arch: "qwen2", heads: 4 });
    const tensors = new Map(model.tensors);
    tensors.delete("model.layers.1.self_attn.k_proj.bias");
    expect(() => createReferenceEngine({ ...model, tensors })).toThrow(FormatError);
    expect(() => createReferenceEngine({ ...model, tensors })).toThrow(/model\.layers\.1\.self_attn\.k_proj\.bias/);
  });

  test("a prompt plus max tokens beyond the context raises ContextLengthError", () => {
    const engine = createReferenceEngine(createRandomModel({ ...BASE, arch: "llama", heads: 4 }), { contextLength: 8 });
    const sampler = createSampler({ temperature: 0 });
    expect(() => [...generateTokens(engine, [1, 2, 3], { maxTokens: 6, sampler })]).toThrow(ContextLengthError);
  });
});
