/** GGUF reader: real vocab-only files, writer round trips per dtype, names/config, q/k un-permutation. */

import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { UnsupportedModelError } from "../../runtime/errors.ts";
import { f16ToF32, f32ToF16 } from "../../runtime/import/dtypes.ts";
import { parseGguf, readGguf, readGgufTensor } from "../../runtime/import/gguf.ts";
import { importGguf } from "../../runtime/import/gguf-model.ts";
import { ggufToHfName, hfToGgufName } from "../../runtime/import/gguf-names.ts";
import { GgufValueType } from "../../runtime/import/gguf-types.ts";
import { encodeGguf, type GgufWriteOptions, writeGguf } from "../../quantizer/export/gguf-write.ts";
import { memorySource } from "../../runtime/import/byte-source.ts";
import { permuteHfToMeta, permuteMetaToHf } from "../../runtime/import/rope-permute.ts";
import { FFN, HEAD_DIM, HEADS, HIDDEN, KV_HEADS, seeded, tinyGguf, tinyWeights, VOCAB } from "./gguf-fixtures.ts";
import { expectTypedError, tempDir, testShared } from "./import-util.ts";

function writeTemp(options: GgufWriteOptions, name = "m.gguf"): string {
  const file = path.join(tempDir(), name);
  writeGguf(file, options);
  return file;
}

describe("GGUF: real vocab-only files", () => {
  testShared("llama-spm: header, typed metadata, no tensors", ["gguf-vocab/ggml-vocab-llama-spm.gguf"], (file) => {
    const g = readGguf(file);
    expect(g.version).toBe(3);
    expect(g.tensorInfos.length).toBe(0);
    expect(g.alignment).toBe(32);
    expect(g.metadata.get("general.architecture")).toBe("llama");
    const tokens = g.metadata.get("tokenizer.ggml.tokens") as string[];
    expect(tokens.length).toBe(32000);
    expect(tokens.slice(0, 4)).toEqual(["<unk>", "<s>", "</s>", "<0x00>"]);
    expect((g.metadata.get("tokenizer.ggml.scores") as number[]).length).toBe(32000);
    expect(g.metadata.get("tokenizer.ggml.bos_token_id")).toBe(1);
    expect(g.metadata.get("tokenizer.ggml.add_bos_token")).toBe(true);
    expect(g.metadataTypes.get("llama.attention.layer_norm_rms_epsilon")).toBe(GgufValueType.FLOAT32);
  });

  testShared("gpt-2 and phi-3: merges and chat template strings", ["gguf-vocab/ggml-vocab-gpt-2.gguf", "gguf-vocab/ggml-vocab-phi-3.gguf"], (gpt2, phi3) => {
    const merges = readGguf(gpt2).metadata.get("tokenizer.ggml.merges") as string[];
    expect(merges[0]).toBe("Ġ t");
    const phi = readGguf(phi3);
    expect(String(phi.metadata.get("tokenizer.chat_template"))).toContain("<|user|>");
    expect((phi.metadata.get("tokenizer.ggml.tokens") as string[]).length).toBe(32064);
  });

  testShared("an unsupported architecture (bert) is an UnsupportedModelError listing the supported ones", ["gguf-vocab/ggml-vocab-bert-bge.gguf"], async (file) => {
    const err = await expectTypedError(() => importGguf(file), UnsupportedModelError, { message: /"bert".*supported: llama, qwen2, qwen3/ });
    expect((err as UnsupportedModelError).supported).toEqual(["llama", "qwen2", "qwen3"]);
  });

  testShared("llama-spm imports with a config from metadata and no tensors", ["gguf-vocab/ggml-vocab-llama-spm.gguf"], async (file) => {
    const m = await importGguf(file);
    expect(m.format).toBe("gguf");
    expect(m.tensors.size).toBe(0);
    expect(m.config).toMatchObject({ model_type: "llama", hidden_size: 4096, num_hidden_layers: 32, vocab_size: 32000 });
    const vocab = (m.tokenizer!.tokenizerJson["model"] as { vocab: Record<string, number> }).vocab;
    expect(vocab["<s>"]).toBe(1);
  });
});

describe("GGUF: dequantisation", () => {
  test("F32 exact, F16/BF16 to their rounding, Q8_0 and Q4_0 exact on representable grids", () => {
    const f32 = seeded(64, 7);
    const q8 = Float32Array.from({ length: 64 }, (_, i) => ((i * 37) % 255 - 127) * 0.5); // amax 63.5 → d 0.5
    q8[5] = 63.5;
    const q4 = Float32Array.from({ length: 64 }, (_, i) => ((i * 5) % 16 - 8) * 0.5); // min -4 → d 0.5
    q4[0] = -4;
    const bytes = encodeGguf({
      metadata: { "general.architecture": "llama" },
      tensors: [
        { name: "a", shape: [2, 32], data: f32 },
        { name: "b", shape: [2, 32], data: f32, dtype: "F16" },
        { name: "c", shape: [2, 32], data: f32, dtype: "BF16" },
        { name: "d", shape: [2, 32], data: q8, dtype: "Q8_0" },
        { name: "e", shape: [2, 32], data: q4, dtype: "Q4_0" },
      ],
    });
    const g = parseGguf(memorySource(bytes, "mem.gguf"));
    const read = (name: string) => {
      const info = g.tensorInfos.find((t) => t.name === name)!;
      return Array.from(readGgufTensor(g, info));
    };
    expect(g.tensorInfos.map((t) => t.type.name)).toEqual(["F32", "F16", "BF16", "Q8_0", "Q4_0"]);
    expect(g.tensorInfos[3]!.dims).toEqual([32, 2]);
    expect(g.tensorInfos[3]!.shape).toEqual([2, 32]);
    expect(read("a")).toEqual(Array.from(f32));
    expect(read("b")).toEqual(Array.from(f32, (v) => f16ToF32(f32ToF16(v))));
    read("c").forEach((v, i) => expect(Math.abs(v - f32[i]!)).toBeLessThanOrEqual(Math.abs(f32[i]!) * 2 ** -8));
    expect(read("d")).toEqual(Array.from(q8));
    expect(read("e")).toEqual(Array.from(q4));
  });

  test("hand-built Q8_0 and Q4_0 blocks decode to the documented values (nibble order)", () => {
    const bytes = encodeGguf({
      metadata: {},
      tensors: [
        { name: "q8", shape: [32], data: new Float32Array(32), dtype: "Q8_0" },
        { name: "q4", shape: [32], data: new Float32Array(32), dtype: "Q4_0" },
      ],
    });
    const g0 = parseGguf(memorySource(bytes, "mem.gguf"));
    const [q8, q4] = g0.tensorInfos;
    bytes.set([0x00, 0x34], q8!.offset); // d = 0.25
    for (let j = 0; j < 32; j++) bytes[q8!.offset + 2 + j] = (j - 16) & 0xff;
    bytes.set([0x00, 0x3c], q4!.offset); // d = 1
    for (let j = 0; j < 16; j++) bytes[q4!.offset + 2 + j] = j | ((15 - j) << 4);
    const g = parseGguf(memorySource(bytes, "mem.gguf"));
    expect(Array.from(readGgufTensor(g, g.tensorInfos[0]!))).toEqual(Array.from({ length: 32 }, (_, j) => (j - 16) * 0.25));
    const expected = [...Array.from({ length: 16 }, (_, j) => j - 8), ...Array.from({ length: 16 }, (_, j) => 7 - j)];
    expect(Array.from(readGgufTensor(g, g.tensorInfos[1]!))).toEqual(expected);
  });
});

describe("GGUF: model import", () => {
  test("rope permutation: HF → Meta on a known array, and its inverse", () => {
    // One head of 4 rows, one column: HF halves [0,1 | 2,3] interleave to pairs (0,2), (1,3).
    expect(Array.from(permuteHfToMeta(Float32Array.from([0, 1, 2, 3]), 1, 1))).toEqual([0, 2, 1, 3]);
    expect(Array.from(permuteMetaToHf(Float32Array.from([0, 2, 1, 3]), 1, 1))).toEqual([0, 1, 2, 3]);
    const w = seeded(2 * 8 * 3, 9);
    expect(Array.from(permuteMetaToHf(permuteHfToMeta(w, 2, 3), 2, 3))).toEqual(Array.from(w));
  });

  test("llama: HF names, config from metadata, q/k rows back in rotate-half order", async () => {
    const m = await importGguf(writeTemp(tinyGguf("llama")));
    const weights = tinyWeights();
    for (const [gg, { shape, data }] of weights) {
      const t = m.tensors.get(ggufToHfName(gg)!)!;
      expect(t.shape).toEqual(shape);
      expect(Array.from(t.read())).toEqual(Array.from(data));
    }
    expect([...m.tensors.keys()].sort()).toContain("model.layers.0.self_attn.q_proj.weight");
    expect(m.tensors.has("lm_head.weight")).toBe(false);
    expect(m.config).toEqual({
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      hidden_size: HIDDEN,
      intermediate_size: FFN,
      num_hidden_layers: 1,
      num_attention_heads: HEADS,
      num_key_value_heads: KV_HEADS,
      rms_norm_eps: Math.fround(1e-6),
      rope_theta: 500000,
      max_position_embeddings: 128,
      vocab_size: VOCAB,
      tie_word_embeddings: true,
      attention_bias: false,
      bos_token_id: 1,
      eos_token_id: 2,
    });
    expect(Object.keys(m.chatTemplates)).toEqual(["default", "tool_use"]);
    expect(m.generationConfig).toEqual({ bos_token_id: 1, eos_token_id: 2 });
  });

  test("Q8_0 llama q/k: dequantised then un-permuted", async () => {
    const m = await importGguf(writeTemp(tinyGguf("llama", "Q8_0")));
    const q = m.tensors.get("model.layers.0.self_attn.q_proj.weight")!;
    expect(q.dtype).toBe("Q8_0");
    const ref = tinyWeights().get("blk.0.attn_q.weight")!.data;
    const got = q.read();
    for (let i = 0; i < ref.length; i++) expect(Math.abs(got[i]! - ref[i]!)).toBeLessThan(1 / 127 + 1e-3);
  });

  test("qwen2/qwen3 are not permuted; biases, q/k norms, head_dim, lm_head map", async () => {
    const bias = seeded(HIDDEN, 42);
    const norm = seeded(HEAD_DIM, 43);
    const lm = seeded(VOCAB * HIDDEN, 44);
    const opts = tinyGguf("qwen3", "F32", { "qwen3.attention.key_length": HEAD_DIM });
    const file = writeTemp({
      ...opts,
      tensors: [
        ...opts.tensors,
        { name: "blk.0.attn_q.bias", shape: [HIDDEN], data: bias },
        { name: "blk.0.attn_k_norm.weight", shape: [HEAD_DIM], data: norm },
        { name: "output.weight", shape: [VOCAB, HIDDEN], data: lm },
      ],
    });
    const m = await importGguf(file);
    const q = tinyWeights().get("blk.0.attn_q.weight")!.data;
    expect(Array.from(m.tensors.get("model.layers.0.self_attn.q_proj.weight")!.read())).toEqual(Array.from(q));
    expect(Array.from(m.tensors.get("model.layers.0.self_attn.q_proj.bias")!.read())).toEqual(Array.from(bias));
    expect(Array.from(m.tensors.get("model.layers.0.self_attn.k_norm.weight")!.read())).toEqual(Array.from(norm));
    expect(Array.from(m.tensors.get("lm_head.weight")!.read())).toEqual(Array.from(lm));
    expect(m.config).toMatchObject({ model_type: "qwen3", head_dim: HEAD_DIM, tie_word_embeddings: false, attention_bias: true });
  });

  test("a qwen3 GGUF without key_length states llama.cpp's head size (n_embd / n_head), not Qwen3Config's 128", async () => {
    const m = await importGguf(writeTemp(tinyGguf("qwen3")));
    expect(m.config.head_dim).toBe(HIDDEN / HEADS);
  });

  test("names map both ways", () => {
    for (const gg of [...tinyWeights().keys(), "output.weight", "blk.3.attn_v.bias", "blk.11.attn_q_norm.weight"]) {
      expect(hfToGgufName(ggufToHfName(gg)!)).toBe(gg);
    }
    expect(ggufToHfName("blk.2.ffn_down.weight")).toBe("model.layers.2.mlp.down_proj.weight");
    expect(ggufToHfName("rope_freqs.weight")).toBeUndefined();
  });

  test("llama-3 rope_freqs becomes rope_scaling; linear scaling keys map", async () => {
    const opts = tinyGguf("llama");
    const factors = Float32Array.from([1, 1, 3.2922621029408843, 32]); // llama.cpp's formula, head_dim 8, theta 5e5, factor 32
    const m = await importGguf(writeTemp({ ...opts, tensors: [...opts.tensors, { name: "rope_freqs.weight", shape: [4], data: factors }] }));
    expect(m.config["rope_scaling"]).toEqual({
      rope_type: "llama3",
      factor: 32,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    });
    expect(m.tensors.has("rope_freqs.weight")).toBe(false);
    const lin = await importGguf(writeTemp(tinyGguf("llama", "F32", { "llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": 4 })));
    expect(lin.config["rope_scaling"]).toEqual({ type: "linear", rope_type: "linear", factor: 4 });
  });

  test("writeGguf and encodeGguf produce the same bytes; alignment is honoured", () => {
    const opts = { ...tinyGguf("qwen2", "Q4_0"), alignment: 64 };
    const file = writeTemp(opts);
    expect(Buffer.from(fs.readFileSync(file)).equals(Buffer.from(encodeGguf(opts)))).toBe(true);
    const g = readGguf(file);
    expect(g.alignment).toBe(64);
    for (const t of g.tensorInfos) expect(t.offset % 64).toBe(0);
  });
});

describe("GGUF: models crumb refuses, saying why", () => {
  test("a split GGUF, a mixture of experts and partial rotary embeddings are UnsupportedModelErrors", async () => {
    await expectTypedError(() => importGguf(writeTemp(tinyGguf("llama", "F32", { "split.count": 3, "split.no": 0 }), "split.gguf")), UnsupportedModelError, {
      message: /part 1 of a GGUF split into 3 files; merge them first/,
    });
    await expectTypedError(() => importGguf(writeTemp(tinyGguf("qwen2", "F32", { "qwen2.expert_count": 8 }), "moe.gguf")), UnsupportedModelError, {
      message: /mixture of 8 experts/,
    });
    await expectTypedError(() => importGguf(writeTemp(tinyGguf("llama", "F32", { "llama.rope.dimension_count": HEAD_DIM / 2 }), "rot.gguf")), UnsupportedModelError, {
      message: /rope\.dimension_count is 4 but the head size is 8/,
    });
  });

  test("sliding window and end-of-turn ids come from the metadata", async () => {
    const m = await importGguf(writeTemp(tinyGguf("llama", "F32", { "llama.attention.sliding_window": 4096, "tokenizer.ggml.eot_token_id": 7 }), "swa.gguf"));
    expect(m.config).toMatchObject({ sliding_window: 4096, eos_token_id: [2, 7] });
    expect(m.generationConfig).toEqual({ bos_token_id: 1, eos_token_id: [2, 7] });
  });
});
