/**
 * crumb's two engines against an independent float64 forward pass (./hf-reference.ts,
 * written from transformers' modelling semantics) on tiny random models of every supported
 * architecture feature: plain llama, llama with `rope_scaling` linear and llama3, llama with
 * attention_bias (biases on q/k/v and o_proj), mistral with a sliding window shorter than
 * the prompt, qwen2 with random q/k/v biases, qwen3 with distinct q_norm and k_norm weights
 * and a head_dim that is not hidden_size / heads, and qwen3 without head_dim in its config
 * (transformers reads 128).
 *
 * Each model is written as a Hugging Face directory (config.json + model.safetensors) and
 * loaded by crumb's importer; its float32 weights are the reference's weights exactly.
 * (a) the fp32 reference engine crumb runs HF directories on, (b) the WASM engine on a packed
 * file from crumb's quantizer with every tensor kept f32 (`--keep '*=f32' --embeddings f32`)
 * and an f32 KV cache. Both are checked on all-positions logits of one prompt and on cached
 * decoding (a prefill block, then one token per call: for mistral the block and every step
 * lie past the window). Tolerance: max |crumb - reference| < 1e-4 over all logits, absolute;
 * the logits are of order 1 (asserted: max |logit| > 0.5), so this is also below 2e-4
 * relative to the logit scale. Float32 arithmetic against float64 gives at most 3e-6 here.
 *
 * A test that cannot fail is a defect, so each model also names the break its feature
 * guards against and asserts that the reference itself moves far beyond the tolerance under
 * it (the break applied to the code is recorded in test/mutations/architectures.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importModel } from "../../runtime/import/index.ts";
import { createReferenceEngine } from "../../runtime/engine/reference-engine.ts";
import type { WasmBackend } from "../../runtime/engine/wasm-backend.ts";
import { f32WasmBackend, writeHfDirectory } from "./crumb-models.ts";
import { type HfConfig, randomHfWeights, readHfConfig, referenceLogits } from "./hf-reference.ts";

const TOLERANCE = 1e-4;
const CONTEXT = 64;

const dir = mkdtempSync(join(tmpdir(), "crumb-hf-reference-"));
const backends: WasmBackend[] = [];
afterAll(async () => {
  for (const backend of backends) await backend.dispose();
  backends.length = 0; // bun keeps finished test files in memory; drop the WASM memories
  rmSync(dir, { recursive: true, force: true });
});

const BASE: HfConfig = {
  hidden_size: 64,
  intermediate_size: 96,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 128,
  max_position_embeddings: CONTEXT,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
};

/** A break the model's feature guards against, expressed on the reference's inputs. */
interface Break {
  readonly name: string;
  readonly config?: HfConfig;
  readonly weights?: (weights: Map<string, Float32Array>) => void;
}

interface Case {
  readonly label: string;
  readonly config: HfConfig;
  readonly seed: number;
  /** Tokens fed in one prefill block before decoding one at a time. */
  readonly prefill: number;
  readonly breaks: readonly Break[];
}

function perLayer(weights: Map<string, Float32Array>, layers: number, edit: (prefix: string) => void): void {
  for (let l = 0; l < layers; l++) edit(`model.layers.${l}.self_attn.`);
}

const CASES: Case[] = [
  {
    label: "llama",
    config: { ...BASE, model_type: "llama", architectures: ["LlamaForCausalLM"], rope_theta: 500000 },
    seed: 11,
    prefill: 7,
    breaks: [{ name: "rope_theta read as the default 10000", config: { rope_theta: 10000 } }],
  },
  {
    label: "llama, rope_scaling linear (factor 4)",
    config: { ...BASE, model_type: "llama", architectures: ["LlamaForCausalLM"], rope_scaling: { type: "linear", factor: 4 } },
    seed: 12,
    prefill: 7,
    breaks: [{ name: "factor ignored", config: { rope_scaling: null } }],
  },
  {
    // A small original context puts two of the eight frequencies (wavelengths 19.9 and 62.8)
    // in the blended band, one below it and five above, at positions this prompt reaches.
    label: "llama, rope_scaling llama3 (factor 8, low 1, high 4, original 64)",
    config: {
      ...BASE,
      model_type: "llama",
      architectures: ["LlamaForCausalLM"],
      rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
    },
    seed: 13,
    prefill: 7,
    breaks: [
      { name: "scaling ignored", config: { rope_scaling: null } },
      { name: "linear instead of llama3", config: { rope_scaling: { type: "linear", factor: 8 } } },
    ],
  },
  {
    // transformers' LlamaAttention gives o_proj a bias too when attention_bias is set.
    label: "llama, attention_bias (q/k/v/o biases)",
    config: { ...BASE, model_type: "llama", architectures: ["LlamaForCausalLM"], attention_bias: true },
    seed: 18,
    prefill: 7,
    breaks: [{
      name: "o bias dropped",
      weights: (w: Map<string, Float32Array>) => perLayer(w, 2, (p) => w.get(`${p}o_proj.bias`)!.fill(0)),
    }],
  },
  {
    label: "mistral, sliding window 5, multi-query (4 heads, 1 kv head)",
    config: { ...BASE, model_type: "mistral", architectures: ["MistralForCausalLM"], num_key_value_heads: 1, sliding_window: 5 },
    seed: 14,
    prefill: 9,
    breaks: [
      { name: "window ignored", config: { sliding_window: null } },
      { name: "window one too wide", config: { sliding_window: 6 } },
      { name: "window one too narrow", config: { sliding_window: 4 } },
    ],
  },
  {
    label: "qwen2, random q/k/v biases, tied embeddings",
    config: { ...BASE, model_type: "qwen2", architectures: ["Qwen2ForCausalLM"], tie_word_embeddings: true, rope_theta: 1000000 },
    seed: 15,
    prefill: 7,
    breaks: ["q", "k", "v"].map((proj) => ({
      name: `${proj} bias dropped`,
      weights: (w: Map<string, Float32Array>) => perLayer(w, 2, (p) => w.get(`${p}${proj}_proj.bias`)!.fill(0)),
    })),
  },
  {
    label: "qwen3, q_norm and k_norm, head_dim 32 (hidden_size / heads = 16)",
    config: { ...BASE, model_type: "qwen3", architectures: ["Qwen3ForCausalLM"], head_dim: 32, rope_theta: 1000000 },
    seed: 16,
    prefill: 7,
    breaks: [
      {
        name: "k_norm uses q_norm's weights",
        weights: (w) => perLayer(w, 2, (p) => w.set(`${p}k_norm.weight`, w.get(`${p}q_norm.weight`)!)),
      },
      {
        name: "q_norm uses k_norm's weights",
        weights: (w) => perLayer(w, 2, (p) => w.set(`${p}q_norm.weight`, w.get(`${p}k_norm.weight`)!)),
      },
      {
        name: "q_norm/k_norm weights ignored",
        weights: (w) => perLayer(w, 2, (p) => (w.get(`${p}q_norm.weight`)!.fill(1), w.get(`${p}k_norm.weight`)!.fill(1))),
      },
    ],
  },
  {
    // Qwen3Config's head_dim defaults to 128, not hidden_size / heads (16 here).
    label: "qwen3, config without head_dim (transformers' default 128)",
    config: { ...BASE, model_type: "qwen3", architectures: ["Qwen3ForCausalLM"], rope_theta: 1000000 },
    seed: 17,
    prefill: 7,
    breaks: [],
  },
];

// Fixed, arbitrary token ids below the vocabulary: 24 positions, past every window above.
const TOKENS = [1, 17, 42, 5, 96, 33, 8, 61, 2, 77, 14, 120, 9, 58, 3, 101, 44, 27, 66, 12, 90, 6, 71, 38];

function maxAbsDiff(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`length ${got.length}, expected ${want.length}`);
  let max = 0;
  for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(got[i] - want[i]));
  return max;
}

function maxAbs(values: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < values.length; i++) max = Math.max(max, Math.abs(values[i]));
  return max;
}

interface Engine {
  forward(tokens: readonly number[], options?: { allLogits?: boolean }): Float32Array | Promise<Float32Array>;
  reset(): void;
}

/** Logits of every position: the prompt in one call (prefill with allLogits). */
async function allPositions(engine: Engine): Promise<Float32Array> {
  engine.reset();
  return await engine.forward(TOKENS, { allLogits: true });
}

/** Logits of every position: `prefill` tokens in one call, then one token per call. */
async function cachedDecode(engine: Engine, prefill: number, vocab: number): Promise<Float32Array> {
  engine.reset();
  const out = new Float32Array(TOKENS.length * vocab);
  out.set(await engine.forward(TOKENS.slice(0, prefill), { allLogits: true }));
  for (let t = prefill; t < TOKENS.length; t++) out.set(await engine.forward([TOKENS[t]]), t * vocab);
  return out;
}

test("the reference imports nothing of crumb's model, config or RoPE code", () => {
  const text = readFileSync(new URL("./hf-reference.ts", import.meta.url), "utf8");
  const specs = [...text.matchAll(/from\s+["']([^"']+)["']/g)].map((m) => m[1]);
  expect(specs).toEqual(["../fixtures/random-model.ts"]);
});

for (const c of CASES) {
  describe(c.label, () => {
    const hp = readHfConfig(c.config);
    const weights = randomHfWeights(hp, c.seed);
    const want = referenceLogits(hp, weights, TOKENS); // (n, vocab) float64
    let reference: Engine;
    let wasm: WasmBackend;

    beforeAll(async () => {
      const modelDir = join(dir, c.label.replace(/[^a-z0-9]+/gi, "-"));
      writeHfDirectory(modelDir, c.config, hp, weights);
      const source = await importModel(modelDir);
      reference = createReferenceEngine(source, { contextLength: CONTEXT });
      wasm = await f32WasmBackend(source, `${modelDir}.crumb`, CONTEXT);
      backends.push(wasm);
    });

    test("the reference's logits are of order 1 and move under each break it guards against", () => {
      expect(maxAbs(want)).toBeGreaterThan(0.5);
      for (const b of c.breaks) {
        const brokenWeights = new Map([...weights].map(([name, data]) => [name, data.slice()]));
        b.weights?.(brokenWeights);
        const broken = referenceLogits(readHfConfig({ ...c.config, ...b.config }), brokenWeights, TOKENS);
        expect({ break: b.name, moved: maxAbsDiff(broken, want) > 100 * TOLERANCE }).toEqual({ break: b.name, moved: true });
      }
    });

    test("fp32 reference engine (HF directory): all positions of the prompt", async () => {
      expect(maxAbsDiff(await allPositions(reference), want)).toBeLessThan(TOLERANCE);
    });

    test("fp32 reference engine (HF directory): cached decoding, one token per step", async () => {
      expect(maxAbsDiff(await cachedDecode(reference, c.prefill, hp.vocab), want)).toBeLessThan(TOLERANCE);
    });

    test("WASM engine (f32 packed file, f32 KV cache): all positions of the prompt", async () => {
      expect(maxAbsDiff(await allPositions(wasm), want)).toBeLessThan(TOLERANCE);
    });

    test("WASM engine (f32 packed file, f32 KV cache): cached decoding, one token per step", async () => {
      expect(maxAbsDiff(await cachedDecode(wasm, c.prefill, hp.vocab), want)).toBeLessThan(TOLERANCE);
    });
  });
}
