/** GGUF defensive parsing: corrupt copies of real and generated files raise typed errors. */

import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError, UnsupportedModelError } from "../../runtime/errors.ts";
import { readGguf } from "../../runtime/import/gguf.ts";
import { importGguf } from "../../runtime/import/gguf-model.ts";
import { encodeGguf } from "../../quantizer/export/gguf-write.ts";
import { expectTypedError, tempDir, testShared } from "./import-util.ts";
import { tinyGguf } from "./gguf-fixtures.ts";

const dir = tempDir();
const good = encodeGguf(tinyGguf("llama", "Q4_0"));

function variant(name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

function indexOf(bytes: Uint8Array, text: string): number {
  const at = Buffer.from(bytes).indexOf(Buffer.from(text, "utf8"));
  if (at < 0) throw new Error(`${text} not found`);
  return at;
}

function patch(bytes: Uint8Array, offset: number, write: (dv: DataView) => void): Uint8Array {
  const copy = bytes.slice();
  write(new DataView(copy.buffer, offset));
  return copy;
}

describe("GGUF corrupt files", () => {
  test("wrong magic", async () => {
    const file = variant("magic.gguf", patch(good, 0, (dv) => dv.setUint32(0, 0x46554746, true)));
    await expectTypedError(() => readGguf(file), FormatError, { file, offset: 0, message: /wrong magic/ });
  });

  test("unsupported version (and a big-endian hint)", async () => {
    const file = variant("version.gguf", patch(good, 4, (dv) => dv.setUint32(0, 3, false)));
    await expectTypedError(() => readGguf(file), FormatError, { file, offset: 4, message: /big-endian/ });
  });

  test("truncated at every 13th byte: always a FormatError, never a RangeError", () => {
    for (let cut = 0; cut < good.length; cut += 13) {
      const file = variant("cut.gguf", good.slice(0, cut));
      let err: unknown;
      try {
        readGguf(file);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FormatError);
      expect((err as FormatError).file).toBe(file);
      expect((err as FormatError).offset).toBeLessThanOrEqual(good.length);
    }
  });

  test("a tensor whose bytes run past the end of the file names the tensor", async () => {
    const file = variant("short.gguf", good.slice(0, good.length - 40));
    const err = await expectTypedError(() => readGguf(file), FormatError, { file, tensor: "output_norm.weight", message: /runs past the end/ });
    expect((err as FormatError).offset).toBeGreaterThan(0);
  });

  test("string length larger than the file", async () => {
    // The first metadata key's length sits right after the 24-byte header.
    const file = variant("strlen.gguf", patch(good, 24, (dv) => dv.setBigUint64(0, 1n << 40n, true)));
    await expectTypedError(() => readGguf(file), FormatError, { file, offset: 24, message: /larger than the/ });
  });

  test("absurd array length is rejected before allocating", async () => {
    const bytes = encodeGguf({ metadata: { "tokenizer.ggml.tokens": ["a", "b", "c"] }, tensors: [] });
    const countAt = indexOf(bytes, "tokenizer.ggml.tokens") + "tokenizer.ggml.tokens".length + 8;
    const file = variant("arraylen.gguf", patch(bytes, countAt, (dv) => dv.setBigUint64(0, 1n << 50n, true)));
    await expectTypedError(() => readGguf(file), FormatError, { file, offset: countAt, message: /array length/ });
  });

  test("unknown tensor type id", async () => {
    const typeAt = indexOf(good, "token_embd.weight") + "token_embd.weight".length + 4 + 2 * 8;
    const file = variant("dtype.gguf", patch(good, typeAt, (dv) => dv.setUint32(0, 99, true)));
    await expectTypedError(() => readGguf(file), FormatError, { file, offset: typeAt, tensor: "token_embd.weight", message: /type 99/ });
  });

  test("too many dimensions and a misaligned data offset", async () => {
    const nDimsAt = indexOf(good, "token_embd.weight") + "token_embd.weight".length;
    const file = variant("ndims.gguf", patch(good, nDimsAt, (dv) => dv.setUint32(0, 9, true)));
    await expectTypedError(() => readGguf(file), FormatError, { file, offset: nDimsAt, tensor: "token_embd.weight" });
    const offAt = nDimsAt + 4 + 2 * 8 + 4;
    const file2 = variant("misaligned.gguf", patch(good, offAt, (dv) => dv.setBigUint64(0, 3n, true)));
    await expectTypedError(() => readGguf(file2), FormatError, { file: file2, tensor: "token_embd.weight", message: /alignment/ });
  });

  test("an unknown architecture is an UnsupportedModelError listing the supported ones", async () => {
    const file = variant("arch.gguf", encodeGguf(tinyGguf("gemma")));
    await expectTypedError(() => importGguf(file), UnsupportedModelError, { message: /"gemma".*supported: llama, qwen2, qwen3/ });
  });

  test("a tensor of a type crumb cannot decode (MXFP4) parses, and import names it, its type and what is supported", async () => {
    const typeAt = indexOf(good, "token_embd.weight") + "token_embd.weight".length + 4 + 2 * 8;
    // Q4_K blocks are 256 wide; token_embd rows are 32, so the reader rejects the row length.
    const file = variant("q4k.gguf", patch(good, typeAt, (dv) => dv.setUint32(0, 12, true)));
    await expectTypedError(() => readGguf(file), FormatError, { file, message: /block size 256/ });
    const opts = tinyGguf("llama");
    const wide = encodeGguf({ ...opts, tensors: [{ name: "blk.0.attn_v.weight", shape: [1, 256], data: new Float32Array(256), dtype: "Q8_0" }] });
    const at = indexOf(wide, "blk.0.attn_v.weight") + "blk.0.attn_v.weight".length + 4 + 2 * 8;
    const file2 = variant("mxfp4.gguf", patch(wide, at, (dv) => dv.setUint32(0, 39, true)));
    const g = readGguf(file2);
    expect(g.tensorInfos[0]!.type.name).toBe("MXFP4");
    const err = await expectTypedError(() => importGguf(file2), UnsupportedModelError, {
      message: /tensor blk\.0\.attn_v\.weight .* is MXFP4.*supported: F32, F16, Q4_0, Q4_1, .*Q4_K.*IQ2_XXS.*TQ2_0/,
    });
    expect((err as UnsupportedModelError).supported).toContain("IQ1_M");
  });

  test("a non-existent path", async () => {
    const file = path.join(dir, "missing.gguf");
    await expectTypedError(() => readGguf(file), FormatError, { file, message: /no such file/ });
  });

  testShared("corrupt copies of a real vocab GGUF", ["gguf-vocab/ggml-vocab-gpt-2.gguf"], async (real) => {
    const bytes = new Uint8Array(fs.readFileSync(real));
    const cut = variant("real-cut.gguf", bytes.slice(0, Math.floor(bytes.length / 2)));
    await expectTypedError(() => readGguf(cut), FormatError, { file: cut, message: /truncated or corrupt/ });
    const countAt = indexOf(bytes, "tokenizer.ggml.merges") + "tokenizer.ggml.merges".length + 8;
    const absurd = variant("real-array.gguf", patch(bytes, countAt, (dv) => dv.setBigUint64(0, 0xffffffffffn, true)));
    await expectTypedError(() => readGguf(absurd), FormatError, { file: absurd, offset: countAt });
    const strAt = indexOf(bytes, "general.name") + "general.name".length + 4;
    const str = variant("real-str.gguf", patch(bytes, strAt, (dv) => dv.setBigUint64(0, BigInt(bytes.length), true)));
    await expectTypedError(() => readGguf(str), FormatError, { file: str, offset: strAt });
  });
});
