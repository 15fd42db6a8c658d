/**
 * GGUF exporter: block encoders against their decoders and the source weights, the written
 * file read back with crumb's GGUF reader, and llama.cpp (node-llama-cpp) loading every
 * exported type; an F32 export generates the same greedy ids in llama.cpp as crumb's
 * reference engine (which proves names, metadata and the RoPE row permutation), and for each
 * quantised type llama.cpp's first token is among the top 5 of crumb's reference engine run
 * on the same dequantised blocks (a wrong block layout would pick a random token).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRandomModel } from "../../test/fixtures/random-model.ts";
import { loadFixtureTokenizer } from "../../test/fixtures/write-model.ts";
import { haveFiles, modelPath } from "../../test/shared-data.ts";
import { createEngine } from "../../runtime/engine/engine.ts";
import { createReferenceEngine } from "../../runtime/engine/reference-engine.ts";
import type { ModelSource } from "../../runtime/models/types.ts";
import { decodeQ4_0, decodeQ8_0 } from "../../runtime/import/dtypes.ts";
import { readGguf, readGgufTensor } from "../../runtime/import/gguf.ts";
import { importGguf } from "../../runtime/import/gguf-model.ts";
import { permuteHfToMeta } from "../../runtime/import/rope-permute.ts";
import { decodeQ2_K, decodeTq2_0, encodeQ2_K, encodeTq2_0, ternarizeBlocks } from "./gguf-blocks.ts";
import { encodeGgufTensor, exportGguf, type GgufExportType } from "./gguf-export.ts";
import { randomFloats } from "../../test/fixtures/matmul-fixtures.ts";

const VOCAB = "gguf-vocab/ggml-vocab-llama-spm.gguf";
const available = haveFiles(VOCAB, "hf-tokenizers/llama2/tokenizer.json");
const dir = mkdtempSync(join(tmpdir(), "crumb-gguf-export-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SPEC = { arch: "llama", hidden: 256, intermediate: 512, layers: 2, heads: 4, kvHeads: 2, vocab: 32000, seed: 7 };
const PROMPT = [1, 450, 4996, 17354, 1701, 432, 17204];

/** The source with every matrix replaced by its GGUF encoding, decoded (embeddings Q8_0). */
function dequantised(source: ModelSource, type: "Q4_0" | "TQ2_0" | "Q2_K"): ModelSource {
  const roundTrip = (t: string, w: Float32Array): Float32Array => {
    const bytes = encodeGgufTensor(t as GgufExportType, w);
    if (t === "Q8_0") return decodeQ8_0(bytes, w.length);
    return t === "Q4_0" ? decodeQ4_0(bytes, w.length) : t === "TQ2_0" ? decodeTq2_0(bytes, w.length) : decodeQ2_K(bytes, w.length);
  };
  const tensors = new Map([...source.tensors].map(([name, e]) => [name, {
    ...e,
    read: () => (e.shape.length === 1 ? e.read() : roundTrip(name === "model.embed_tokens.weight" ? "Q8_0" : type, e.read())),
  }]));
  return { ...source, tensors };
}

function topK(logits: Float32Array, k: number): number[] {
  return [...logits.keys()].sort((a, b) => logits[b] - logits[a]).slice(0, k);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe("ggml block encoders", () => {
  const x = randomFloats(256 * 8, 11, 0.05);

  test("TQ2_0 decodes to the absmean ternarisation of each 256-block", () => {
    const bytes = encodeTq2_0(x);
    expect(bytes.length).toBe(8 * 66);
    const { trits, scales } = ternarizeBlocks(x);
    const decoded = decodeTq2_0(bytes, x.length);
    for (let i = 0; i < x.length; i++) {
      const d = scales[i >> 8];
      expect(Math.abs(decoded[i] - trits[i] * d)).toBeLessThanOrEqual(d * 1e-3);
    }
    // every code is 0, 1 or 2 (never the unused 3)
    for (let b = 0; b < 8; b++) for (let j = 0; j < 64; j++) for (let s = 0; s < 8; s += 2) expect((bytes[b * 66 + j] >> s) & 3).toBeLessThan(3);
    expect(new Set(trits)).toEqual(new Set([-1, 0, 1]));
  });

  test("TQ2_0 places weight 128h + 32n + m in byte 32h + m, bits 2n", () => {
    const one = new Float32Array(256);
    one[128 + 64 + 5] = 1; // h = 1, n = 2, m = 5: the only non-zero, so d = 1/256 and t = +1
    const bytes = encodeTq2_0(one);
    expect((bytes[32 + 5] >> 4) & 3).toBe(2);
    expect(bytes[0]).toBe(0b01010101);
  });

  test("Q2_K round-trips within half a quantisation step per sub-block", () => {
    const bytes = encodeQ2_K(x);
    expect(bytes.length).toBe(8 * 84);
    const decoded = decodeQ2_K(bytes, x.length);
    for (let s = 0; s < x.length / 16; s++) {
      const sub = x.subarray(16 * s, 16 * s + 16);
      const range = Math.max(...sub) - Math.min(0, ...sub);
      // 4-bit scale and min rounding adds up to one step of the block's 1/15 grids.
      expect(maxAbsDiff(decoded.subarray(16 * s, 16 * s + 16), sub)).toBeLessThan(range / 2 + 0.02);
    }
    const mse = x.reduce((a, v, i) => a + (v - decoded[i]) ** 2, 0) / x.length;
    const variance = x.reduce((a, v) => a + v * v, 0) / x.length;
    expect(mse / variance).toBeLessThan(0.15);
  });

  test("rows that do not tile a 256-block are refused with the way out", () => {
    expect(() => encodeQ2_K(new Float32Array(100))).toThrow(/Q4_0 or F16/);
  });
});

describe.skipIf(!available)("GGUF export", () => {
  // Built on first use and dropped after the block: bun keeps finished test files in memory.
  let model: ModelSource | undefined;
  const sourceModel = (): ModelSource => (model ??= createRandomModel(SPEC, loadFixtureTokenizer("llama2")));
  const files = new Map<GgufExportType, string>();
  afterAll(() => {
    model = undefined;
    files.clear();
  });
  const exportAs = (type: GgufExportType): string => {
    if (!files.has(type)) {
      const path = join(dir, `tiny-${type}.gguf`);
      exportGguf(sourceModel(), path, { type, vocabGguf: modelPath(VOCAB) });
      files.set(type, path);
    }
    return files.get(type)!;
  };

  test("F16 and Q4_0 read back with crumb's GGUF reader (q/k rows in Meta order)", () => {
    for (const [type, tolerance] of [["F16", 1e-3], ["Q4_0", 0.25]] as const) {
      const gguf = readGguf(exportAs(type));
      expect(gguf.metadata.get("general.architecture")).toBe("llama");
      expect(gguf.metadata.get("llama.attention.head_count_kv")).toBe(2);
      expect((gguf.metadata.get("tokenizer.ggml.tokens") as string[]).length).toBe(32000);
      const byName = new Map(gguf.tensorInfos.map((t) => [t.name, t]));
      expect(byName.get("token_embd.weight")!.type.name).toBe(type === "F16" ? "F16" : "Q8_0");
      expect(byName.get("blk.0.attn_norm.weight")!.type.name).toBe("F32");
      const q = sourceModel().tensors.get("model.layers.1.self_attn.q_proj.weight")!;
      const expected = permuteHfToMeta(q.read(), 4, 256);
      const info = byName.get("blk.1.attn_q.weight")!;
      expect(info.type.name).toBe(type);
      expect(info.shape).toEqual([256, 256]);
      const got = readGgufTensor(gguf, info);
      // Q4_0 error is at most half a step of max|w|/8 per 32-block; w ~ N(0, 1/256)
      expect(maxAbsDiff(got, expected)).toBeLessThan(tolerance);
    }
  }, 30_000);

  test("TQ2_0 and Q2_K tensors hold the encoders' bytes for the source weights", () => {
    for (const type of ["TQ2_0", "Q2_K"] as const) {
      const gguf = readGguf(exportAs(type));
      const info = gguf.tensorInfos.find((t) => t.name === "blk.0.ffn_down.weight")!;
      expect(info.type.name).toBe(type);
      const w = sourceModel().tensors.get("model.layers.0.mlp.down_proj.weight")!.read();
      const bytes = gguf.source.read(info.offset, info.byteLength);
      const decoded = type === "TQ2_0" ? decodeTq2_0(bytes, info.numel) : decodeQ2_K(bytes, info.numel);
      const reference = type === "TQ2_0" ? decodeTq2_0(encodeTq2_0(w), w.length) : decodeQ2_K(encodeQ2_K(w), w.length);
      expect(maxAbsDiff(decoded, reference)).toBe(0);
    }
  }, 30_000);

  test("rope_scaling is written as llama.cpp reads it and imports back (linear keys, llama3 rope_freqs)", async () => {
    const tiny = { arch: "llama", hidden: 256, intermediate: 64, layers: 1, heads: 4, vocab: 320, ropeTheta: 500000 };
    const llama3 = { rope_type: "llama3", factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    for (const ropeScaling of [{ type: "linear", factor: 4 }, llama3]) {
      const path = join(dir, `rope-${ropeScaling.factor}.gguf`);
      exportGguf(createRandomModel({ ...tiny, ropeScaling }), path, { type: "F32", vocabGguf: modelPath(VOCAB) });
      expect((await importGguf(path)).config.rope_scaling).toMatchObject(ropeScaling);
    }
  });

  test("llama.cpp loads every exported type and generates; F32 matches crumb's greedy ids", async () => {
    const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
    const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
    const generate = async (path: string, n: number): Promise<number[]> => {
      const model = await llama.loadModel({ modelPath: path });
      const context = await model.createContext({ contextSize: 64, threads: 1 });
      const ids: number[] = [];
      for await (const id of context.getSequence().evaluate(PROMPT as never, { temperature: 0 })) {
        ids.push(id as number);
        if (ids.length >= n) break;
      }
      await context.dispose();
      await model.dispose();
      return ids;
    };
    try {
      expect((await generate(exportAs("F16"), 4)).length).toBe(4);
      for (const type of ["Q4_0", "TQ2_0", "Q2_K"] as const) {
        const ids = await generate(exportAs(type), 4);
        expect(ids.length).toBe(4);
        for (const id of ids) expect(id >= 0 && id < 32000).toBe(true);
        // llama.cpp quantises activations too (Q8_0 / Q8_K), so near-ties may swap: top 5.
        const logits = createReferenceEngine(dequantised(sourceModel(), type), { contextLength: 64 }).forward(PROMPT);
        expect(topK(logits, 5)).toContain(ids[0]);
      }
      const theirs = await generate(exportAs("F32"), 10);
      const engine = createEngine(sourceModel(), { contextLength: 64 });
      const ours: number[] = [];
      for await (const ev of engine.generate(PROMPT, { maxTokens: 10, temperature: 0, stopAtEos: false })) {
        if (ev.type === "token") ours.push(ev.id);
      }
      await engine.dispose();
      expect(theirs).toEqual(ours);
    } finally {
      await llama.dispose();
    }
  }, 90_000);
});
