// Golden runs on real weights: stories260K (karpathy/tinyllamas, MIT) through the llama2.c
// import, through the same model converted to Hugging Face layout, and through the CLI.
// Greedy decoding from BOS must reproduce expected_greedy_t0.json.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importModel } from "../runtime/import/index.ts";
import { exportHfDirectory } from "../quantizer/export/hf-export.ts";
import { createReferenceEngine } from "../runtime/engine/reference-engine.ts";
import { generateTokens } from "../runtime/engine/generate-tokens.ts";
import { createSampler } from "../runtime/engine/sampler.ts";
import { createTokenizer } from "../runtime/tokenizer/index.ts";
import { haveFiles, modelPath } from "./shared-data.ts";

const MODEL = "stories260K/stories260K.bin";
const TOKENIZER = "stories260K/tok512.bin";
const GOLDEN = "stories260K/expected_greedy_t0.json";
const EXACT_IDS = 180;
const REPO = new URL("..", import.meta.url).pathname;

const available = haveFiles(MODEL, TOKENIZER, GOLDEN);
const golden = available ? JSON.parse(readFileSync(modelPath(GOLDEN), "utf8")) as { ids: number[]; text: string } : undefined;

function greedy(source: Awaited<ReturnType<typeof importModel>>, count: number): number[] {
  const engine = createReferenceEngine(source);
  return [...generateTokens(engine, [1], { maxTokens: count, sampler: createSampler({ temperature: 0 }) })];
}

describe.skipIf(!available)("stories260K golden run", () => {
  test("llama2.c import: greedy ids from BOS equal the golden ids, and decode to its text", async () => {
    const source = await importModel(modelPath(MODEL), { tokenizer: modelPath(TOKENIZER) });
    const ids = greedy(source, golden!.ids.length);
    expect(ids.slice(0, EXACT_IDS)).toEqual(golden!.ids.slice(0, EXACT_IDS));
    const tokenizer = createTokenizer(source.tokenizer!);
    const text = tokenizer.decode(ids.slice(0, EXACT_IDS), { skipSpecialTokens: true });
    expect(golden!.text.startsWith(text)).toBe(true);
    expect(text.length).toBeGreaterThan(400);
  });

  test("the same model in Hugging Face layout (permuted q/k, tokenizer.json) gives identical ids", async () => {
    const dir = mkdtempSync(join(tmpdir(), "crumb-stories-hf-"));
    try {
      const source = await importModel(modelPath(MODEL), { tokenizer: modelPath(TOKENIZER) });
      exportHfDirectory(source, dir);
      const hf = await importModel(dir);
      expect(hf.format).toBe("hf");
      expect(hf.tokenizer).toBeDefined();
      const ids = greedy(hf, EXACT_IDS);
      expect(ids).toEqual(golden!.ids.slice(0, EXACT_IDS));
      // The exported tokenizer.json is the tok512 conversion: same text for the same ids.
      const text = createTokenizer(hf.tokenizer!).decode(ids, { skipSpecialTokens: true });
      expect(golden!.text.startsWith(text)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("`bun run generate ... -n 180 --temperature 0` prints the golden text on stdout and statistics on stderr", async () => {
    const tokenizer = createTokenizer((await importModel(modelPath(MODEL), { tokenizer: modelPath(TOKENIZER) })).tokenizer!);
    const expected = tokenizer.decode(golden!.ids.slice(0, EXACT_IDS), { skipSpecialTokens: true });
    const proc = Bun.spawnSync(
      ["bun", "run", "generate", modelPath(MODEL), "--tokenizer", modelPath(TOKENIZER), "-n", String(EXACT_IDS), "--temperature", "0"],
      { cwd: REPO, stdout: "pipe", stderr: "pipe" },
    );
    expect(proc.exitCode).toBe(0);
    expect(proc.stdout.toString()).toBe(expected);
    expect(proc.stderr.toString()).toMatch(/180 tokens in [\d.]+ s: [\d.]+ tokens\/s/);
  });
});
