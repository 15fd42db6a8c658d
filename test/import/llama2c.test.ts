/** llama2.c import of the real stories260K checkpoint, HF export round trip, corrupt copies. */

import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError, UnsupportedModelError } from "../../runtime/errors.ts";
import { importModel } from "../../runtime/import/index.ts";
import { exportHfDirectory } from "../../quantizer/export/hf-export.ts";
import { importLlama2c } from "../../runtime/import/llama2c.ts";
import { permuteHfToMeta } from "../../runtime/import/rope-permute.ts";
import { expectTypedError, tempDir, testShared } from "./import-util.ts";

const BIN = "stories260K/stories260K.bin";
const TOK = "stories260K/tok512.bin";

/** Raw little-endian floats of the file starting at a float index. */
function rawFloats(file: string, start: number, n: number): number[] {
  const bytes = fs.readFileSync(file);
  return Array.from({ length: n }, (_, i) => bytes.readFloatLE(28 + (start + i) * 4));
}

describe("llama2.c stories260K", () => {
  testShared("header → config, HF names and shapes, tied classifier", [BIN], async (bin) => {
    const m = await importModel(bin);
    expect(m.format).toBe("llama2c");
    expect(m.config).toMatchObject({
      model_type: "llama",
      hidden_size: 64,
      intermediate_size: 172,
      num_hidden_layers: 5,
      num_attention_heads: 8,
      num_key_value_heads: 4,
      vocab_size: 512,
      max_position_embeddings: 512,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: true,
      bos_token_id: 1,
      eos_token_id: 2,
    });
    expect(m.tensors.size).toBe(2 + 5 * 9);
    expect(m.tensors.has("lm_head.weight")).toBe(false);
    expect(m.tensors.get("model.embed_tokens.weight")!.shape).toEqual([512, 64]);
    expect(m.tensors.get("model.layers.4.self_attn.k_proj.weight")!.shape).toEqual([32, 64]);
    expect(m.tensors.get("model.layers.0.mlp.gate_proj.weight")!.shape).toEqual([172, 64]);
    expect(m.tensors.get("model.layers.0.mlp.down_proj.weight")!.shape).toEqual([64, 172]);
    const embed = m.tensors.get("model.embed_tokens.weight")!.read();
    expect(Array.from(embed.subarray(0, 8))).toEqual(rawFloats(bin, 0, 8));
    expect(embed[0]).toBeCloseTo(-0.29474878, 7);
    const normStart = 512 * 64 + 5 * 64 + 5 * 64 * 64 + 2 * 5 * 32 * 64 + 5 * 64 * 64 + 5 * 64 + 3 * 5 * 172 * 64;
    expect(Array.from(m.tensors.get("model.norm.weight")!.read())).toEqual(rawFloats(bin, normStart, 64));
  });

  testShared("wq/wk are permuted to rotate-half; un-permuting gives the raw rows back", [BIN], (bin) => {
    const m = importLlama2c(bin);
    const wqStart = 512 * 64 + 5 * 64;
    for (const layer of [0, 3]) {
      const q = m.tensors.get(`model.layers.${layer}.self_attn.q_proj.weight`)!.read();
      expect(Array.from(permuteHfToMeta(q, 8, 64))).toEqual(rawFloats(bin, wqStart + layer * 64 * 64, 64 * 64));
      expect(Array.from(q)).not.toEqual(rawFloats(bin, wqStart + layer * 64 * 64, 64 * 64));
      const k = m.tensors.get(`model.layers.${layer}.self_attn.k_proj.weight`)!.read();
      const wkStart = wqStart + 5 * 64 * 64 + layer * 32 * 64;
      expect(Array.from(permuteHfToMeta(k, 4, 64))).toEqual(rawFloats(bin, wkStart, 32 * 64));
    }
    const vStart = wqStart + 5 * 64 * 64 + 5 * 32 * 64;
    const v = m.tensors.get("model.layers.0.self_attn.v_proj.weight")!.read();
    expect(Array.from(v)).toEqual(rawFloats(bin, vStart, 32 * 64)); // v is never permuted
  });

  testShared("tokenizer.bin is converted; export to an HF directory and import it back", [BIN, TOK], async (bin, tok) => {
    const m = await importModel(bin, { tokenizer: tok });
    expect(m.tokenizer).toBeDefined();
    const dir = path.join(tempDir(), "stories260K-hf");
    exportHfDirectory(m, dir);
    for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]) {
      expect(fs.existsSync(path.join(dir, f))).toBe(true);
    }
    const back = await importModel(dir);
    expect(back.format).toBe("hf");
    expect(back.config).toEqual({ ...m.config, torch_dtype: "float32" });
    expect([...back.tensors.keys()].sort()).toEqual([...m.tensors.keys()].sort());
    for (const [name, t] of m.tensors) {
      expect(back.tensors.get(name)!.shape).toEqual(t.shape);
      expect(Array.from(back.tensors.get(name)!.read())).toEqual(Array.from(t.read()));
    }
    expect(back.tokenizer!.tokenizerJson).toEqual(m.tokenizer!.tokenizerJson);
    expect(back.generationConfig).toEqual({ bos_token_id: 1, eos_token_id: 2 });
  });
});

describe("llama2.c corrupt files", () => {
  testShared("truncated copy names the first incomplete tensor and its offset", [BIN], async (bin) => {
    const bytes = fs.readFileSync(bin);
    const file = path.join(tempDir(), "cut.bin");
    fs.writeFileSync(file, bytes.subarray(0, 28 + 512 * 64 * 4 + 100));
    const err = await expectTypedError(() => importModel(file), FormatError, { file, tensor: "model.layers.0.input_layernorm.weight" });
    expect((err as FormatError).offset).toBe(28 + 512 * 64 * 4);
    const longer = path.join(tempDir(), "long.bin");
    fs.writeFileSync(longer, Buffer.concat([bytes, Buffer.alloc(4)]));
    await expectTypedError(() => importModel(longer), FormatError, { file: longer, offset: bytes.length });
  });

  testShared("impossible header fields", [BIN], async (bin) => {
    const bytes = Buffer.from(fs.readFileSync(bin));
    bytes.writeInt32LE(-7, 12); // n_heads
    const file = path.join(tempDir(), "heads.bin");
    fs.writeFileSync(file, bytes);
    await expectTypedError(() => importLlama2c(file), FormatError, { file, offset: 12, message: /nHeads = -7/ });
  });

  test("unrecognised bytes, a short file and a v1 magic", async () => {
    const dir = tempDir();
    const junk = path.join(dir, "junk.bin");
    fs.writeFileSync(junk, Buffer.alloc(64, 0xff));
    await expectTypedError(() => importModel(junk), FormatError, { file: junk, message: /not a recognised checkpoint/ });
    const short = path.join(dir, "short.bin");
    fs.writeFileSync(short, Buffer.alloc(10));
    await expectTypedError(() => importModel(short), FormatError, { file: short, offset: 0 });
    const v1 = path.join(dir, "v1.bin");
    fs.writeFileSync(v1, Buffer.concat([Buffer.from("ak42"), Buffer.alloc(252)]));
    await expectTypedError(() => importModel(v1), UnsupportedModelError, { message: /version 1\/2/ });
    const st = path.join(dir, "model.safetensors");
    fs.writeFileSync(st, Buffer.alloc(16));
    await expectTypedError(() => importModel(st), FormatError, { file: st, message: /directory/ });
  });
});
