/**
 * The command lines on a GGUF: `quantize model.gguf` says per tensor whether its blocks were
 * kept (and bit-exact or not) or re-quantised, and prints the GGUF summary with the KL against
 * the GGUF's own dequantised weights; `generate model.gguf` runs on the WASM engine and says
 * which encodings it chose.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../import/import-util.ts";
import { q4KMTypes, writeGgufModel } from "./gguf-model-fixture.ts";

const REPO = new URL("../..", import.meta.url).pathname;
const dir = tempDir();
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]) {
  const p = Bun.spawnSync([process.execPath, ...args], { cwd: REPO, env: { ...process.env, NO_COLOR: "1" } });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

describe("CLIs on a Q4_K_M GGUF", () => {
  const gguf = join(dir, "model.gguf");
  writeGgufModel(gguf, { arch: "qwen2", hidden: 256, intermediate: 512, layers: 1, heads: 4, kvHeads: 2, seed: 2, maxPositions: 128 }, { typeOf: q4KMTypes });

  test("quantize: kept and re-quantised tensors, and the KL against the GGUF", () => {
    const out = join(dir, "model.q4");
    const r = run([join(REPO, "quantizer/cli.ts"), gguf, "-o", out, "--eval-tokens", "48"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(existsSync(out)).toBe(true);
    expect(r.stdout).toMatch(/model\.layers\.0\.mlp\.up_proj\.weight\s+512x256\s+q4g32zp\s+transcode .*\(Q4_K blocks kept, \d+\/4096 groups bit-exact, scales rounded to f16/);
    expect(r.stdout).toMatch(/model\.layers\.0\.mlp\.down_proj\.weight\s+256x512\s+q8g32\s+q8 .*\(from Q6_K\)/);
    expect(r.stdout).toContain("KL divergence  mean");
    expect(r.stdout).toContain("GGUF blocks    kept in 5 tensors (0 bit-exact): Q4_K -> q4g32zp 5 (0 bit-exact)");
    expect(r.stdout).toContain("re-quantised 4 tensors: Q4_K -> q8g32 q8 1, Q6_K -> q8g32 q8 3");
  });

  test("generate: runs the GGUF on the WASM engine and names the encodings", () => {
    const r = run([join(REPO, "runtime/cli.ts"), "generate", gguf, "-p", "the cat", "-n", "4", "--temperature", "0", "--threads", "1"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`crumb generate: ${gguf}: matrices packed in memory as 4 q8g32, 5 q4g32zp`);
    expect(r.stderr).toMatch(/4 tokens in .* \(wasm engine, 1 thread, kv f16\)/);
  });
});
