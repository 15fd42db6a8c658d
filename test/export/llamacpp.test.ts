/**
 * llama.cpp (node-llama-cpp's prebuilt CPU build, offline) on files crumb exports:
 * - stories260K (real llama2.c weights, tok512) exported as F32 and F16: llama.cpp's greedy
 *   run from BOS is the golden run llama2.c's run.c produces (255 tokens).
 * - F16 exports of tiny random llama, mistral, qwen2 and qwen3 models, and every block type
 *   crumb writes (Q8_0, Q4_0, Q4_1, Q6_K, Q2_K; TQ2_0 from a crumb ternary model; the default
 *   export of a crumb GPTQ q4 file): llama.cpp generates 24 greedy tokens, then scores that
 *   sequence again returning its logits at every step; crumb's fp32 reference engine runs
 *   the same tokens on the weights read back from the file. Every logit of every step must
 *   agree within EPS: 0.02 for F16 (llama.cpp rounds activations and its KV cache to f16),
 *   0.25 for the block types (it also rounds activations to 8-bit blocks; measured 0.06 to
 *   0.13 against a logit spread of about 8). A wrong block layout, tensor name, RoPE order or
 *   head layout moves logits by whole units. How many greedy tokens agree is printed.
 * - Tokenizers exported from tokenizer.json: llama.cpp tokenizes llama.cpp's own vocab test
 *   inputs to the ids Hugging Face produces (Llama 2 and Phi-3 SentencePiece BPE, GPT-2 and
 *   Llama 3 byte-level BPE).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeCheckpointFile } from "../../runtime/format/file.ts";
import { createReferenceEngine } from "../../runtime/engine/reference-engine.ts";
import type { ModelSource, TokenizerFiles } from "../../runtime/models/types.ts";
import { BYTE_TO_UNICODE, byteLevelBpeJson, byteLevelSetup } from "../../runtime/tokenizer/byte-level.ts";
import { loadTokenizerFile } from "../../runtime/tokenizer/load-file.ts";
import { exportGguf, type GgufExportType } from "../../quantizer/export/gguf-export.ts";
import { importModel } from "../../runtime/import/index.ts";
import { readGguf } from "../../runtime/import/gguf.ts";
import { quantizeModel } from "../../quantizer/quantize.ts";
import { createRandomModel } from "../fixtures/random-model.ts";
import { loadFixtureTokenizer } from "../fixtures/write-model.ts";
import { haveFiles, modelPath, readJson, readVocabVectors } from "../shared-data.ts";
import { readExportedGguf } from "./gguf-weights.ts";

const available = haveFiles(
  "stories260K/stories260K.bin",
  "stories260K/tok512.bin",
  "stories260K/expected_greedy_t0.json",
  "hf-tokenizers/llama2/tokenizer.json",
  "hf-tokenizers/gpt2/tokenizer.json",
  "hf-tokenizers/phi-3-mini/tokenizer.json",
  "tiktoken/llama3/tokenizer.model",
  "gguf-vocab/ggml-vocab-llama-spm.gguf.inp",
);
const dir = mkdtempSync(join(tmpdir(), "crumb-llamacpp-"));
const PROMPT = [1, 403, 407, 261, 378];
const STEPS = 24;
/** Logit slack for llama.cpp's activation rounding (f16, or Q8_0/Q8_1/Q8_K blocks); see the header. */
const EPS = { F16: 0.02, quantized: 0.25 };

type Llama = Awaited<ReturnType<typeof import("node-llama-cpp").getLlama>>;
let llama: Llama | undefined;
beforeAll(async () => {
  if (!available) return;
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
});
afterAll(async () => {
  await llama?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function llamaGreedy(path: string, prompt: readonly number[], n: number): Promise<number[]> {
  const model = await llama!.loadModel({ modelPath: path });
  const context = await model.createContext({ contextSize: 512, threads: 1 });
  const ids: number[] = [];
  for await (const id of context.getSequence().evaluate(prompt as never, { temperature: 0, yieldEogToken: true })) {
    ids.push(id as number);
    if (ids.length >= n) break;
  }
  await context.dispose();
  await model.dispose();
  return ids;
}

/**
 * llama.cpp's greedy run from `prompt` (STEPS tokens, or up to an end-of-generation token),
 * then its logits at every step of that run, against crumb's on `source`: the largest logit
 * difference, the steps compared and how many greedy tokens agree.
 */
async function compareWithCrumb(path: string, source: ModelSource, prompt: readonly number[]): Promise<{ maxDiff: number; equal: number; steps: number }> {
  const theirs = await llamaGreedy(path, prompt, STEPS);
  expect(theirs.length).toBeGreaterThanOrEqual(8);
  const sequence = [...prompt, ...theirs.slice(0, -1)];
  const model = await llama!.loadModel({ modelPath: path });
  const context = await model.createContext({ contextSize: 512, threads: 1 });
  const items = sequence.map((t, i) => (i >= prompt.length - 1 ? [t, { generateNext: { logits: true } }] : t));
  const results = await context.getSequence().controlledEvaluate(items as never);
  await context.dispose();
  await model.dispose();
  const vocab = Number(source.config.vocab_size);
  const ours = createReferenceEngine(source, { contextLength: 512 }).forward(sequence, { allLogits: true });
  let maxDiff = 0;
  let equal = 0;
  let diverged = false;
  for (let step = 0; step < theirs.length; step++) {
    const at = prompt.length - 1 + step;
    const logits = results[at]?.next?.logits as Map<number, number> | undefined;
    expect(logits?.size).toBe(vocab);
    for (const [token, value] of logits!) maxDiff = Math.max(maxDiff, Math.abs(value - ours[at * vocab + token]!));
    let best = 0;
    for (let t = 1; t < vocab; t++) if (ours[at * vocab + t]! > ours[at * vocab + best]!) best = t;
    if (best !== theirs[step]) diverged = true;
    if (!diverged) equal++;
  }
  return { maxDiff, equal, steps: theirs.length };
}

const tok512 = (): TokenizerFiles => loadTokenizerFile(modelPath("stories260K/tok512.bin"));

/**
 * A small Qwen2-style byte-level tokenizer (the 256 byte tokens, a few merges, Qwen's chat
 * markers) so the qwen models' embedding stays small; real byte-level vocabularies are
 * checked against llama.cpp's test vectors below.
 */
function smallQwenTokenizer(): TokenizerFiles {
  const tokens = [...BYTE_TO_UNICODE];
  const merges: [string, string][] = [];
  for (const word of ["Ġt", "he", "Ġa", "in", "Ġthe", "er", "on", "Ġs", "re", "at"]) {
    const [left, right] = word === "Ġthe" ? ["Ġt", "he"] : [word.slice(0, 1), word.slice(1)];
    merges.push([left, right]);
    tokens.push(word);
  }
  const added = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"].map((content, i) => ({ id: tokens.length + i, content, special: true }));
  const tokenizerJson = byteLevelBpeJson({ setup: byteLevelSetup("qwen2"), tokens, merges, added, addBosToken: false });
  return { tokenizerJson, tokenizerConfig: { eos_token: "<|im_end|>" } };
}
const spec = (arch: string, vocab: number) => ({ arch, hidden: 256, intermediate: 512, layers: 2, heads: 4, kvHeads: 2, vocab, seed: 11, maxPositions: 512 });

describe.skipIf(!available)("llama.cpp runs crumb's exports", () => {
  test("stories260K as F32 and F16: llama.cpp's greedy run from BOS is the golden run (255 tokens)", async () => {
    const golden = readJson<{ ids: number[] }>("stories260K/expected_greedy_t0.json");
    const source = await importModel(modelPath("stories260K/stories260K.bin"), { tokenizer: modelPath("stories260K/tok512.bin") });
    for (const type of ["F32", "F16"] as const) {
      const path = join(dir, `stories260K-${type}.gguf`);
      exportGguf(source, path, { type });
      expect(await llamaGreedy(path, [1], golden.ids.length)).toEqual(golden.ids);
    }
  }, 60_000);

  for (const [arch, family] of [["llama", "tok512"], ["mistral", "tok512"], ["qwen2", "qwen"], ["qwen3", "qwen"]] as const) {
    test(`F16 export of a random ${arch}: llama.cpp's logits are crumb's`, async () => {
      const tokenizer = family === "tok512" ? tok512() : smallQwenTokenizer();
      const source = createRandomModel(spec(arch, family === "tok512" ? 512 : 269), tokenizer);
      const path = join(dir, `${arch}-F16.gguf`);
      exportGguf(source, path, { type: "F16" });
      if (family === "qwen") expect(readGguf(path).metadata.get("tokenizer.ggml.pre")).toBe("qwen2");
      const prompt = family === "tok512" ? PROMPT : [84, 260, 265, 72, 262];
      const { maxDiff, equal, steps } = await compareWithCrumb(path, await importModel(path), prompt);
      expect(maxDiff).toBeLessThanOrEqual(EPS.F16);
      console.log(`${arch} F16: llama.cpp greedy = crumb greedy for ${equal}/${steps} tokens; largest logit difference ${maxDiff.toFixed(4)}`);
    }, 60_000);
  }

  test("Q8_0, Q4_0, Q4_1, Q6_K and Q2_K exports of a random llama: llama.cpp's logits are crumb's on the same blocks", async () => {
    const source = createRandomModel(spec("llama", 512), tok512());
    for (const type of ["Q8_0", "Q4_0", "Q4_1", "Q6_K", "Q2_K"] as GgufExportType[]) {
      const path = join(dir, `llama-${type}.gguf`);
      exportGguf(source, path, { type, outputType: type, embeddingType: type });
      expect(readGguf(path).tensorInfos.find((t) => t.name === "blk.0.ffn_up.weight")!.type.name).toBe(type);
      const { maxDiff, equal, steps } = await compareWithCrumb(path, readExportedGguf(path), PROMPT);
      expect(maxDiff).toBeLessThanOrEqual(EPS.quantized);
      console.log(`llama ${type}: greedy equal for ${equal}/${steps} tokens; largest logit difference ${maxDiff.toFixed(4)}`);
    }
  }, 90_000);

  test("crumb files: GPTQ q4 g32 with default types (Q4_1, Q8_0 embeddings, Q6_K head) and ternary as TQ2_0", async () => {
    const source = createRandomModel(spec("llama", 512), tok512());
    for (const [bits, method, type] of [[4, "gptq", undefined], ["ternary", "absmean", "TQ2_0"]] as const) {
      const result = await quantizeModel(source, { bits, method, group: 64, calibrationTokens: 64, report: false, xquant: false });
      const packed = join(dir, `crumb-${bits}.q`);
      await writeCheckpointFile(packed, { header: result.header, tensors: result.tensors });
      const path = join(dir, `crumb-${bits}.gguf`);
      exportGguf(await importModel(packed), path, { type });
      const names = new Map(readGguf(path).tensorInfos.map((t) => [t.name, t.type.name]));
      expect(names.get("blk.1.ffn_down.weight")).toBe(type ?? "Q4_1");
      expect(names.get("output.weight")).toBe("Q6_K");
      const { maxDiff, equal, steps } = await compareWithCrumb(path, readExportedGguf(path), PROMPT);
      expect(maxDiff).toBeLessThanOrEqual(EPS.quantized);
      console.log(`crumb ${bits} -> ${type ?? "default"}: greedy equal for ${equal}/${steps} tokens; largest logit difference ${maxDiff.toFixed(4)}`);
    }
  }, 120_000);
});

describe.skipIf(!available)("llama.cpp tokenizes with the exported tokenizer as Hugging Face does", () => {
  const cases = [
    { name: "llama2 (SentencePiece BPE → llama)", files: () => loadFixtureTokenizer("llama2"), vectors: "gguf-vocab/ggml-vocab-llama-spm.gguf" },
    { name: "phi-3 (SentencePiece BPE → llama)", files: () => loadFixtureTokenizer("phi-3"), vectors: "gguf-vocab/ggml-vocab-phi-3.gguf" },
    { name: "gpt2 (byte-level → gpt2, pre gpt-2)", files: () => loadFixtureTokenizer("gpt2"), vectors: "gguf-vocab/ggml-vocab-gpt-2.gguf" },
    {
      name: "llama3 (tiktoken → byte-level, pre llama-bpe)",
      files: () => loadTokenizerFile(modelPath("tiktoken/llama3/tokenizer.model")),
      vectors: "gguf-vocab/ggml-vocab-llama-bpe.gguf",
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const files = c.files();
      const vocab = Math.max(...Object.values((files.tokenizerJson.model as { vocab: Record<string, number> }).vocab), ...(files.tokenizerJson.added_tokens as { id: number }[]).map((a) => a.id)) + 1;
      const source = createRandomModel({ arch: "llama", hidden: 32, intermediate: 64, layers: 1, heads: 1, vocab, seed: 1 }, files);
      const path = join(dir, `vocab-${vocab}.gguf`);
      exportGguf({ ...source, chatTemplates: { default: "{{ messages[0]['content'] }}" } }, path, { type: "F16" });
      expect(readGguf(path).metadata.get("tokenizer.chat_template")).toBe("{{ messages[0]['content'] }}");
      const model = await llama!.loadModel({ modelPath: path, vocabOnly: true });
      const mismatches: string[] = [];
      const vectors = readVocabVectors(c.vectors);
      for (const { text, ids } of vectors) {
        const got = model.tokenize(text, false) as number[];
        if (JSON.stringify(got) !== JSON.stringify(ids)) mismatches.push(`${JSON.stringify(text)}: ${got} != ${ids}`);
      }
      await model.dispose();
      expect(mismatches).toEqual([]);
      expect(vectors.length).toBeGreaterThan(20);
    }, 60_000);
  }
});
