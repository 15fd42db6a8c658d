/**
 * llama.cpp (node-llama-cpp's prebuilt CPU build, offline) on files crumb exports:
 * - stories260K (real llama2.c weights, tok512) exported as F32 and F16: llama.cpp's greedy
 *   run from BOS is the golden run llama2.c's run.c produces (255 tokens).
 * - F16 exports of tiny random llama, mistral, qwen2 and qwen3 models, and every block type
 *   crumb writes (Q8_0, Q4_0, Q4_1, Q6_K, Q2_K; TQ2_0 from a crumb ternary model; the default
 *   export of a crumb GPTQ q4 file): llama.cpp's greedy tokens are crumb's on the same
 *   weights. crumb runs its fp32 reference engine on the weights read back from the file and
 *   is fed llama.cpp's tokens; each token llama.cpp picks must be crumb's argmax or within
 *   EPS of it (llama.cpp rounds activations to f16 or 8-bit blocks, so exact near-ties may
 *   swap; a wrong layout, name, RoPE order or hyperparameter moves logits by whole units).
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
import { loadTokenizerFile } from "../../runtime/tokenizer/load-file.ts";
import { exportGguf, type GgufExportType } from "../../quantizer/export/gguf-export.ts";
import { importModel } from "../../quantizer/import/index.ts";
import { readGguf } from "../../quantizer/import/gguf.ts";
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
/** Logit slack for llama.cpp's activation rounding (f16, or Q8_0/Q8_1/Q8_K blocks). */
const EPS = { F16: 0.01, quantized: 0.05 };

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
  for await (const id of context.getSequence().evaluate(prompt as never, { temperature: 0 })) {
    ids.push(id as number);
    if (ids.length >= n) break;
  }
  await context.dispose();
  await model.dispose();
  return ids;
}

/** crumb fed llama.cpp's tokens: the largest gap between crumb's best logit and llama.cpp's pick, and how many picks agree from the start. */
function crumbAgainst(source: ModelSource, prompt: readonly number[], theirs: readonly number[]): { maxGap: number; equal: number } {
  const engine = createReferenceEngine(source, { contextLength: 512 });
  let logits = engine.forward([...prompt]);
  let maxGap = 0;
  let equal = 0;
  let diverged = false;
  for (const id of theirs) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    maxGap = Math.max(maxGap, logits[best]! - logits[id]!);
    if (best !== id) diverged = true;
    if (!diverged) equal++;
    logits = engine.forward([id]);
  }
  return { maxGap, equal };
}

const tok512 = (): TokenizerFiles => loadTokenizerFile(modelPath("stories260K/tok512.bin"));
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

  for (const [arch, family] of [["llama", "tok512"], ["mistral", "tok512"], ["qwen2", "gpt2"], ["qwen3", "gpt2"]] as const) {
    test(`F16 export of a random ${arch}: llama.cpp's greedy tokens are crumb's`, async () => {
      const tokenizer = family === "tok512" ? tok512() : loadFixtureTokenizer("gpt2");
      const source = createRandomModel(spec(arch, family === "tok512" ? 512 : 50257), tokenizer);
      const path = join(dir, `${arch}-F16.gguf`);
      exportGguf(source, path, { type: "F16" });
      const prompt = family === "tok512" ? PROMPT : [464, 3290, 286, 4881, 318];
      const theirs = await llamaGreedy(path, prompt, STEPS);
      const { maxGap, equal } = crumbAgainst(await importModel(path), prompt, theirs);
      expect(theirs.length).toBe(STEPS);
      expect(maxGap).toBeLessThanOrEqual(EPS.F16);
      console.log(`${arch} F16: llama.cpp greedy = crumb greedy for ${equal}/${STEPS} tokens; largest logit gap at its picks ${maxGap.toFixed(4)}`);
    }, 60_000);
  }

  test("Q8_0, Q4_0, Q4_1, Q6_K and Q2_K exports of a random llama: llama.cpp's picks are crumb's on the same blocks", async () => {
    const source = createRandomModel(spec("llama", 512), tok512());
    for (const type of ["Q8_0", "Q4_0", "Q4_1", "Q6_K", "Q2_K"] as GgufExportType[]) {
      const path = join(dir, `llama-${type}.gguf`);
      exportGguf(source, path, { type, outputType: type, embeddingType: type });
      expect(readGguf(path).tensorInfos.find((t) => t.name === "blk.0.ffn_up.weight")!.type.name).toBe(type);
      const theirs = await llamaGreedy(path, PROMPT, STEPS);
      const { maxGap, equal } = crumbAgainst(readExportedGguf(path), PROMPT, theirs);
      expect(maxGap).toBeLessThanOrEqual(EPS.quantized);
      console.log(`llama ${type}: equal for ${equal}/${STEPS} tokens; largest gap ${maxGap.toFixed(4)}`);
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
      const theirs = await llamaGreedy(path, PROMPT, STEPS);
      const { maxGap, equal } = crumbAgainst(readExportedGguf(path), PROMPT, theirs);
      expect(maxGap).toBeLessThanOrEqual(EPS.quantized);
      console.log(`crumb ${bits} -> ${type ?? "default"}: equal for ${equal}/${STEPS} tokens; largest gap ${maxGap.toFixed(4)}`);
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
      const source = createRandomModel({ arch: "llama", hidden: 64, intermediate: 128, layers: 1, heads: 2, vocab, seed: 1 }, files);
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
