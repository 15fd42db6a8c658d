/**
 * llama.cpp (node-llama-cpp's prebuilt CPU binary, offline) on the same weights as crumb:
 * crumb's GGUF exporter (quantizer/export/) writes a tiny random model as an F32 GGUF, and
 * llama.cpp's logits at every prompt position must equal the float64 reference of
 * ./hf-reference.ts within 1e-4 absolute (f32 KV cache, no flash attention), and llama.cpp's
 * greedy tokens must equal those of crumb's fp32 reference engine, crumb's WASM engine on an
 * f32 packed file, and the float64 reference.
 *
 * What the exporter covers, and so what this can check: it writes llama.cpp's "llama"
 * architecture for model_type llama and mistral only, with rope_scaling linear and llama3;
 * qwen2 and qwen3 are refused (asserted below; llama.cpp has qwen2/qwen3 graphs, the exporter
 * does not write them), so their biases and q/k norms are not compared with llama.cpp. Mistral's
 * sliding window is not exported (llama.cpp's llama graph has none, as with llama.cpp's own
 * converter), so the mistral model here has a window no shorter than the sequence and checks
 * the alias only; test/reference/architectures.test.ts checks the window itself.
 *
 * Skips, naming the reason, when node-llama-cpp cannot load its binary here.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Llama, LlamaContextSequence } from "node-llama-cpp";
import { exportGguf } from "../../quantizer/export/gguf-export.ts";
import { generateTokens } from "../../runtime/engine/generate-tokens.ts";
import { createReferenceEngine } from "../../runtime/engine/reference-engine.ts";
import { createSampler } from "../../runtime/engine/sampler.ts";
import type { WasmBackend } from "../../runtime/engine/wasm-backend.ts";
import { haveFiles, modelPath } from "../shared-data.ts";
import { f32WasmBackend, hfModelSource } from "./crumb-models.ts";
import { type HfConfig, randomHfWeights, readHfConfig, referenceLogits } from "./hf-reference.ts";

const VOCAB_GGUF = "gguf-vocab/ggml-vocab-llama-spm.gguf";
const TOLERANCE = 1e-4;
const CONTEXT = 64;
const PROMPT = [1, 17, 42, 5, 96, 33, 8];
const GENERATED = 16;

/** node-llama-cpp and its prebuilt binary, or why they cannot run here. */
async function loadLlamaCpp(): Promise<{ llama: Llama } | { reason: string }> {
  if (!haveFiles(VOCAB_GGUF)) return { reason: `${modelPath(VOCAB_GGUF)} is missing` };
  try {
    const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
    return { llama: await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error }) };
  } catch (error) {
    return { reason: `node-llama-cpp cannot load its prebuilt binary: ${(error as Error).message.split("\n")[0]}` };
  }
}

const loaded = await loadLlamaCpp();
const dir = mkdtempSync(join(tmpdir(), "crumb-llama-cpp-"));
const backends: WasmBackend[] = [];
afterAll(async () => {
  for (const backend of backends) await backend.dispose();
  backends.length = 0;
  if ("llama" in loaded) await loaded.llama.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const BASE: HfConfig = {
  hidden_size: 64,
  intermediate_size: 96,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  // The exporter copies a real SentencePiece vocab, which needs at least 259 entries.
  vocab_size: 320,
  max_position_embeddings: CONTEXT,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
};

const CASES: { label: string; config: HfConfig; seed: number }[] = [
  { label: "llama, grouped-query (4 heads, 2 kv heads)", config: { ...BASE, model_type: "llama" }, seed: 21 },
  {
    label: "llama, tied embeddings, multi-head, theta 500000",
    config: { ...BASE, model_type: "llama", num_key_value_heads: 4, tie_word_embeddings: true, rope_theta: 500000 },
    seed: 22,
  },
  {
    label: "mistral alias (sliding window 64 >= the sequence)",
    config: { ...BASE, model_type: "mistral", num_key_value_heads: 1, sliding_window: CONTEXT },
    seed: 23,
  },
  {
    label: "llama, rope_scaling linear (factor 4)",
    config: { ...BASE, model_type: "llama", rope_scaling: { type: "linear", factor: 4 } },
    seed: 24,
  },
  {
    label: "llama, rope_scaling llama3 (factor 8, low 1, high 4, original 64)",
    config: {
      ...BASE,
      model_type: "llama",
      rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
    },
    seed: 25,
  },
  { label: "qwen2, q/k/v biases", config: { ...BASE, model_type: "qwen2" }, seed: 26 },
  { label: "qwen3, q/k norms, head_dim 32 (not hidden / heads)", config: { ...BASE, model_type: "qwen3", head_dim: 32 }, seed: 27 },
];

function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

if (!("llama" in loaded)) {
  test.skip(`llama.cpp comparison skipped: ${loaded.reason}`, () => {});
} else {
  const { llama } = loaded;
  for (const c of CASES) {
    describe(c.label, () => {
      const hp = readHfConfig(c.config);
      const weights = randomHfWeights(hp, c.seed);
      const source = hfModelSource(c.config, hp, weights);
      let gguf: string;

      beforeAll(() => {
        gguf = join(dir, `${c.seed}.gguf`);
        exportGguf(source, gguf, { type: "F32", vocabGguf: modelPath(VOCAB_GGUF) });
      });

      /** Runs `use` on a fresh llama.cpp context with an f32 KV cache. */
      async function withLlamaCpp<T>(use: (sequence: LlamaContextSequence) => Promise<T>): Promise<T> {
        const model = await llama.loadModel({ modelPath: gguf });
        const context = await model.createContext({
          contextSize: CONTEXT,
          threads: 1,
          flashAttention: false,
          experimentalKvCacheKeyType: "F32",
          experimentalKvCacheValueType: "F32",
        });
        try {
          return await use(context.getSequence());
        } finally {
          await context.dispose();
          await model.dispose();
        }
      }

      test("llama.cpp's logits at every prompt position equal the float64 reference", async () => {
        const want = referenceLogits(hp, weights, PROMPT);
        const outputs = await withLlamaCpp((sequence) =>
          sequence.controlledEvaluate(PROMPT.map((token) => [token, { generateNext: { logits: true } }]))
        );
        let maxDiff = 0;
        for (let t = 0; t < PROMPT.length; t++) {
          const logits = outputs[t]?.next.logits;
          expect(logits?.size).toBe(hp.vocab);
          for (const [token, logit] of logits!) maxDiff = Math.max(maxDiff, Math.abs(logit - want[t * hp.vocab + token]));
        }
        expect(maxDiff).toBeLessThan(TOLERANCE);
      });

      test("greedy tokens: llama.cpp = crumb's reference engine = crumb's WASM engine = float64 reference", async () => {
        const theirs = await withLlamaCpp(async (sequence) => {
          const ids: number[] = [];
          for await (const id of sequence.evaluate(PROMPT, { temperature: 0, yieldEogToken: true })) {
            ids.push(id);
            if (ids.length === GENERATED) break;
          }
          return ids;
        });
        const greedy = { maxTokens: GENERATED, sampler: createSampler({ temperature: 0 }) };
        const reference = [...generateTokens(createReferenceEngine(source, { contextLength: CONTEXT }), PROMPT, greedy)];
        const wasm = await f32WasmBackend(source, join(dir, `${c.seed}.crumb`), CONTEXT);
        backends.push(wasm);
        const fast = [...generateTokens(wasm, PROMPT, greedy)];
        const exact: number[] = [];
        for (let i = 0; i < GENERATED; i++) {
          const sequence = [...PROMPT, ...exact];
          exact.push(argmax(referenceLogits(hp, weights, sequence).subarray((sequence.length - 1) * hp.vocab)));
        }
        expect(theirs).toEqual(exact);
        expect(reference).toEqual(exact);
        expect(fast).toEqual(exact);
      });
    });
  }
}
