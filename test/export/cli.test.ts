/**
 * `bun quantizer/export/cli.ts` (what `bun run export` and `deno task export` run) as a user
 * runs it: a Hugging Face directory and a llama2.c checkpoint in, a GGUF out, the output path
 * alone on stdout and one line per tensor on stderr; usage errors exit 2 with one line,
 * input errors 1, and neither leaves a file behind.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { readGguf } from "../../runtime/import/gguf.ts";
import { writeRandomModel } from "../fixtures/write-model.ts";
import { haveFiles, modelPath } from "../shared-data.ts";

const CLI = fileURLToPath(new URL("../../quantizer/export/cli.ts", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "crumb-export-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const available = haveFiles("hf-tokenizers/gpt2/tokenizer.json", "stories260K/stories260K.bin", "stories260K/tok512.bin");

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? "", HOME: dir }, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : Number((error as { code?: number }).code ?? 1), stdout, stderr })
    );
  });
}

describe.skipIf(!available)("export CLI", () => {
  test("a Hugging Face qwen2 directory → Q8_0 GGUF: the path on stdout, one line per tensor on stderr", async () => {
    const hf = join(dir, "qwen2-hf");
    writeRandomModel({ arch: "qwen2", hidden: 64, intermediate: 128, layers: 1, heads: 2, kvHeads: 1, seed: 3 }, hf);
    const out = join(dir, "qwen2.gguf");
    const result = await run([hf, "-o", out, "--type", "q8_0"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${out}\n`);
    expect(result.stderr).toContain("blk.0.attn_q.weight F32 -> Q8_0: requantised by round-to-nearest");
    expect(result.stderr).toContain("blk.0.attn_q.bias F32 -> F32: exact");
    expect(result.stderr).toMatch(/output.weight F32 -> Q8_0/);
    expect(result.stderr).toMatch(/wrote .*qwen2\.gguf: .* tensors \(\d+ exact, \d+ rounded\)/);
    const gguf = readGguf(out);
    expect(gguf.metadata.get("general.architecture")).toBe("qwen2");
    expect(gguf.metadata.get("tokenizer.ggml.pre")).toBe("gpt-2");
    expect(typeof gguf.metadata.get("tokenizer.chat_template")).toBe("string");
  }, 60_000);

  test("a llama2.c checkpoint with --tokenizer, default types (F32 weights → F16)", async () => {
    const out = join(dir, "stories260K.gguf");
    const result = await run([modelPath("stories260K/stories260K.bin"), "--tokenizer", modelPath("stories260K/tok512.bin"), "-o", out, "--quiet"]);
    expect(result).toEqual({ code: 0, stdout: `${out}\n`, stderr: "" });
    const gguf = readGguf(out);
    expect(gguf.tensorInfos.find((t) => t.name === "blk.0.ffn_up.weight")!.type.name).toBe("F16");
    expect(gguf.metadata.get("tokenizer.ggml.model")).toBe("llama");
  }, 60_000);

  test("usage errors exit 2 with one line; a bad input exits 1; no file is left", async () => {
    const before = readdirSync(dir).length;
    const none = await run([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toBe("crumb export: expected one model to export, got 0 (see crumb export --help)\n");
    const noOutput = await run([modelPath("stories260K/stories260K.bin")]);
    expect(noOutput.code).toBe(2);
    expect(noOutput.stderr).toContain("-o <model.gguf> is required");
    const badType = await run([modelPath("stories260K/stories260K.bin"), "-o", join(dir, "x.gguf"), "--type", "Q5_K"]);
    expect(badType.code).toBe(2);
    expect(badType.stderr).toContain('--type must be one of F32, F16, BF16, Q8_0, Q6_K, Q4_1, Q4_0, TQ2_0, Q2_K, got "Q5_K"');
    const noTokenizer = await run([modelPath("stories260K/stories260K.bin"), "-o", join(dir, "y.gguf")]);
    expect(noTokenizer.code).toBe(1);
    expect(noTokenizer.stderr).toMatch(/^crumb export: .*tokenizer/);
    const missing = await run([join(dir, "nope.q4"), "-o", join(dir, "z.gguf")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("nope.q4");
    expect(readdirSync(dir).length).toBe(before);
    expect(existsSync(join(dir, "x.gguf"))).toBe(false);
    const help = await run(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--output-type");
  }, 60_000);
});
