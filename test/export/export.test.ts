/**
 * exportGguf end to end, read back. For every type the exporter writes (F16, Q8_0, Q4_0,
 * Q4_1, Q6_K, TQ2_0) the weights a reader gets from the file equal, bit for bit, the weights
 * the exporter says it wrote: through crumb's own GGUF importer for F16/Q8_0/Q4_0 and through
 * the independent spec decoders (ggml-decoders.ts) for all six, which must agree with each
 * other; the llama q/k permutation, shapes, names, metadata and tokenizer survive; writing
 * the read-back weights again gives the same bytes. A crumb GPTQ q4 g32 file exported with
 * the default types keeps its q8 embeddings exactly and its zero-point groups' step and codes
 * in Q4_1, moving each 32-weight block by at most the f16 rounding of its offset.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeCheckpointFile } from "../../runtime/format/file.ts";
import { resolveModel } from "../../runtime/models/registry.ts";
import type { ModelSource } from "../../runtime/models/types.ts";
import { createTokenizer } from "../../runtime/tokenizer/tokenizer.ts";
import { loadTokenizerFile } from "../../runtime/tokenizer/load-file.ts";
import { exportGguf, type ExportedTensor } from "../../quantizer/export/gguf-export.ts";
import { CODECS, encodeTensor, type GgufExportType } from "../../quantizer/export/tensor-codec.ts";
import { readGguf } from "../../runtime/import/gguf.ts";
import { importGguf } from "../../runtime/import/gguf-model.ts";
import { hfToGgufName } from "../../runtime/import/gguf-names.ts";
import { importModel } from "../../runtime/import/index.ts";
import { permuteHfToMeta, permuteMetaToHf } from "../../runtime/import/rope-permute.ts";
import { quantizeModel } from "../../quantizer/quantize.ts";
import { createRandomModel } from "../fixtures/random-model.ts";
import { haveFiles, modelPath } from "../shared-data.ts";
import { readExportedGguf, tensorBytes } from "./gguf-weights.ts";

const TOKENIZER = "stories260K/tok512.bin";
const available = haveFiles(TOKENIZER);
const dir = mkdtempSync(join(tmpdir(), "crumb-export-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Rows of 256 and 512 fill every block type; tok512 keeps the embedding small.
const spec = (arch: string) => ({ arch, hidden: 256, intermediate: 512, layers: 2, heads: 4, kvHeads: 2, vocab: 512, seed: 11, maxPositions: 128 });

function same(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** What the exporter writes for a source tensor, as a reader should see it (HF row order). */
function intended(source: ModelSource, hfName: string, type: GgufExportType): Float32Array {
  const entry = source.tensors.get(hfName)!;
  if (entry.shape.length === 1 && !hfName.includes("_proj.bias")) return entry.read();
  const { args } = resolveModel(source.config);
  const heads = hfName.includes("q_proj") ? args.numHeads : hfName.includes("k_proj") ? args.numKvHeads : 0;
  const llama = args.modelType === "llama";
  const cols = entry.shape.length > 1 ? entry.shape[1]! : 1;
  const values = llama && heads > 0 ? permuteHfToMeta(entry.read(), heads, cols) : entry.read();
  const t = entry.shape.length === 1 ? "F32" : type;
  const decoded = CODECS[t].decode(encodeTensor(values, entry.dtype, t).bytes, values.length);
  return llama && heads > 0 ? permuteMetaToHf(decoded, heads, cols) : decoded;
}

describe.skipIf(!available)("export → read back, every type", () => {
  let model: ModelSource | undefined;
  const source = () => (model ??= createRandomModel(spec("llama"), loadTokenizerFile(modelPath(TOKENIZER))));
  afterAll(() => (model = undefined));

  for (const type of ["F16", "Q8_0", "Q4_0", "Q4_1", "Q6_K", "TQ2_0"] as const) {
    test(`${type}: readers see exactly what the exporter wrote; writing it again gives the same bytes`, () => {
      const path = join(dir, `llama-${type}.gguf`);
      const lines: string[] = [];
      const written = exportGguf(source(), path, { type, outputType: type, embeddingType: type, log: (l) => void lines.push(l) });
      expect(written.length).toBe(source().tensors.size);
      expect(lines.length).toBeGreaterThanOrEqual(written.length);
      const viaSpec = readExportedGguf(path);
      const viaCrumb = ["F16", "Q8_0", "Q4_0"].includes(type) ? importGguf(path) : undefined;
      for (const [name, entry] of source().tensors) {
        const expected = intended(source(), name, type);
        const got = viaSpec.tensors.get(name)!;
        expect(got.shape).toEqual(entry.shape);
        expect(same(got.read(), expected)).toBe(true);
        if (viaCrumb !== undefined) expect(same(viaCrumb.tensors.get(name)!.read(), expected)).toBe(true);
      }
      const gguf = readGguf(path);
      for (const t of gguf.tensorInfos) expect(t.type.name).toBe(t.shape.length === 1 ? "F32" : type);
      for (const key of ["hidden_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers", "vocab_size", "rms_norm_eps", "rope_theta"]) {
        expect(viaSpec.config[key]).toBeCloseTo(source().config[key] as number, 6);
      }
      const text = "Once upon a time, there was a little dog.";
      expect(createTokenizer(viaSpec.tokenizer!).encode(text)).toEqual(createTokenizer(source().tokenizer!).encode(text));

      if (type !== "Q6_K") {
        // Idempotent: the read-back weights are on the type's grid, so a second export is byte-identical.
        const again = join(dir, `llama-${type}-again.gguf`);
        exportGguf(viaCrumb ?? viaSpec, again, { type, outputType: type, embeddingType: type });
        const second = readGguf(again);
        for (const t of gguf.tensorInfos) expect(tensorBytes(second, t.name)).toEqual(tensorBytes(gguf, t.name));
      }
    }, 60_000);
  }

  test("qwen2 is written as is (NeoX RoPE: no q/k permutation), biases in F32", () => {
    const qwen = createRandomModel(spec("qwen2"), loadTokenizerFile(modelPath(TOKENIZER)));
    const path = join(dir, "qwen2-F16.gguf");
    exportGguf(qwen, path, { type: "F16" });
    const back = importGguf(path);
    expect(readGguf(path).metadata.get("general.architecture")).toBe("qwen2");
    for (const name of ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.bias"]) {
      expect(same(back.tensors.get(name)!.read(), intended(qwen, name, "F16"))).toBe(true);
    }
    const raw = readExportedGguf(path); // no un-permutation for qwen2 either way
    expect(same(raw.tensors.get("model.layers.0.self_attn.q_proj.weight")!.read(), intended(qwen, "model.layers.0.self_attn.q_proj.weight", "F16"))).toBe(true);
  }, 60_000);
});

describe.skipIf(!available)("metadata and type rules", () => {
  const small = (extra: Record<string, unknown>) =>
    createRandomModel({ arch: "llama", hidden: 256, intermediate: 512, layers: 1, heads: 4, kvHeads: 2, vocab: 512, seed: 2, maxPositions: 4096, ...extra }, loadTokenizerFile(modelPath(TOKENIZER)));

  test("llama3 RoPE scaling is written as rope_freqs.weight and read back as the same rope_scaling; linear as keys", () => {
    const llama3 = { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    const path = join(dir, "llama3.gguf");
    const lines: string[] = [];
    exportGguf(small({ ropeScaling: llama3, ropeTheta: 500000 }), path, { type: "F16", log: (l) => void lines.push(l) });
    expect(readGguf(path).tensorInfos.find((t) => t.name === "rope_freqs.weight")?.shape).toEqual([32]);
    expect(importGguf(path).config.rope_scaling).toMatchObject(llama3);
    expect(lines).toContain("llama3 rope scaling written as rope_freqs.weight (32 frequency factors)");
    const linear = join(dir, "linear.gguf");
    exportGguf(small({ ropeScaling: { rope_type: "linear", factor: 4 } }), linear, { type: "F16" });
    expect(readGguf(linear).metadata.get("llama.rope.scaling.type")).toBe("linear");
    expect(importGguf(linear).config.rope_scaling).toMatchObject({ rope_type: "linear", factor: 4 });
    const qwen = createRandomModel({ ...spec("qwen2"), ropeScaling: llama3 }, loadTokenizerFile(modelPath(TOKENIZER)));
    expect(() => exportGguf(qwen, join(dir, "qwen-llama3.gguf"), { type: "F16" })).toThrow(/llama3 rope scaling on a qwen2 model/);
  });

  test("a Mistral sliding window shorter than the context is reported; the tied head gets the head's type", () => {
    const lines: string[] = [];
    const mistral = createRandomModel({ ...spec("mistral"), maxPositions: 4096, slidingWindow: 1024, tieEmbeddings: true }, loadTokenizerFile(modelPath(TOKENIZER)));
    const written = exportGguf(mistral, join(dir, "mistral.gguf"), { type: "Q4_0", log: (l) => void lines.push(l) });
    expect(lines.some((l) => l.includes("sliding window of 1024 positions; llama.cpp's llama architecture has none"))).toBe(true);
    expect(readGguf(join(dir, "mistral.gguf")).metadata.get("general.architecture")).toBe("llama");
    const types = new Map(written.map((t) => [t.name, t.type]));
    expect(types.has("output.weight")).toBe(false);
    expect(types.get("token_embd.weight")).toBe("Q6_K"); // the tied embedding is the head
    expect(types.get("blk.0.ffn_up.weight")).toBe("Q4_0");
  });

  test("rows a block does not divide fall back as llama-quantize does; unknown types and missing tokenizers are refused", () => {
    const odd = createRandomModel({ arch: "llama", hidden: 96, intermediate: 160, layers: 1, heads: 2, vocab: 512, seed: 3 }, loadTokenizerFile(modelPath(TOKENIZER)));
    const lines: string[] = [];
    const written = exportGguf(odd, join(dir, "odd.gguf"), { type: "TQ2_0", log: (l) => void lines.push(l) });
    const types = new Map(written.map((t) => [t.name, t.type]));
    expect(types.get("blk.0.attn_q.weight")).toBe("Q4_0"); // 96 columns: TQ2_0 → Q4_0
    expect(types.get("output.weight")).toBe("Q8_0"); // Q6_K → Q8_0
    expect(lines.find((l) => l.startsWith("blk.0.attn_q.weight"))).toContain("rows of 96 do not fill TQ2_0 blocks of 256: Q4_0");
    expect(() => exportGguf(odd, join(dir, "bad.gguf"), { type: "Q5_K" as GgufExportType })).toThrow(/--type Q5_K is not a type crumb writes/);
    expect(() => exportGguf({ ...odd, tokenizer: undefined }, join(dir, "none.gguf"), {})).toThrow(/carries no tokenizer.*--tokenizer/);
  });
});

describe.skipIf(!available)("a crumb GPTQ q4 g32 file, default types", () => {
  test("q8 embeddings → Q8_0 exactly; zero-point groups → Q4_1 with step and codes kept; head → Q6_K", async () => {
    const src = createRandomModel(spec("llama"), loadTokenizerFile(modelPath(TOKENIZER)));
    const result = await quantizeModel(src, { bits: 4, group: 32, method: "gptq", calibrationTokens: 64, report: false, xquant: false });
    const q4 = join(dir, "model.q4");
    await writeCheckpointFile(q4, { header: result.header, tensors: result.tensors });
    const crumb = await importModel(q4);
    const path = join(dir, "model-q4.gguf");
    const lines: string[] = [];
    const written = exportGguf(crumb, path, { log: (l) => void lines.push(l) });
    const types = new Map(written.map((t: ExportedTensor) => [t.name, t.type]));
    expect(types.get("token_embd.weight")).toBe("Q8_0");
    expect(types.get("output.weight")).toBe("Q6_K");
    expect(types.get("blk.0.attn_q.weight")).toBe("Q4_1");
    const gguf = readGguf(path);
    expect(gguf.metadata.get("general.file_type")).toBe(3); // LLAMA_FTYPE_MOSTLY_Q4_1
    const back = readExportedGguf(path);
    expect(same(back.tensors.get("model.embed_tokens.weight")!.read(), crumb.tensors.get("model.embed_tokens.weight")!.read())).toBe(true);
    let blocks = 0;
    let exactBlocks = 0;
    let worstStepShare = 0;
    for (const [name, entry] of crumb.tensors) {
      if (!/layers\.\d+\.(self_attn|mlp)\..*weight$/.test(name)) continue;
      expect(entry.dtype).toBe("q4g32zp");
      const mine = entry.read();
      const theirs = back.tensors.get(name)!.read();
      // The Q4_1 blocks as written (GGUF row order), for each block's offset m and step d.
      const raw = tensorBytes(gguf, hfToGgufName(name)!);
      const llamaRows = name.includes("q_proj") || name.includes("k_proj");
      const heads = name.includes("q_proj") ? 4 : 2;
      const cols = entry.shape[1]!;
      const rowsInFile = llamaRows ? permuteHfToMeta(Float32Array.from({ length: entry.shape[0]! }, (_, r) => r), heads, 1) : undefined;
      for (let b = 0; b < mine.length / 32; b++) {
        const row = Math.floor((b * 32) / cols);
        const fileRow = rowsInFile === undefined ? row : rowsInFile.indexOf(row);
        const fileBlock = fileRow * (cols / 32) + ((b * 32) % cols) / 32;
        const d = Math.abs(CODECS.F16.decode(raw.subarray(20 * fileBlock, 20 * fileBlock + 2), 1)[0]!);
        const m = CODECS.F16.decode(raw.subarray(20 * fileBlock + 2, 20 * fileBlock + 4), 1)[0]!;
        const diffs = Array.from({ length: 32 }, (_, j) => theirs[32 * b + j]! - mine[32 * b + j]!);
        const ulp32 = 2 ** -23 * Math.max(...mine.subarray(32 * b, 32 * b + 32).map(Math.abs));
        for (const e of diffs) expect(Math.abs(e - diffs[0]!)).toBeLessThanOrEqual(2 * ulp32);
        expect(Math.abs(diffs[0]!)).toBeLessThanOrEqual(2 ** -11 * Math.abs(m) + 2 * ulp32);
        blocks++;
        if (diffs.every((e) => e === 0)) exactBlocks++;
        if (d > 0) worstStepShare = Math.max(worstStepShare, Math.abs(diffs[0]!) / d);
      }
    }
    expect(blocks).toBeGreaterThan(0);
    expect(worstStepShare).toBeLessThan(0.01);
    const q41Lines = lines.filter((l) => l.includes("q4g32zp -> Q4_1"));
    expect(q41Lines.length).toBe(14);
    expect(q41Lines.every((l) => l.includes("grid kept") || l.includes(": exact"))).toBe(true);
    expect(lines.find((l) => l.startsWith("output.weight"))).toContain("requantised by round-to-nearest");
    console.log(`crumb gptq q4g32 -> Q4_1: ${exactBlocks} of ${blocks} blocks bit-exact, the rest shifted by at most ${(100 * worstStepShare).toFixed(2)}% of their step`);
  }, 120_000);
});
