// `crumb info` prints a quantised file's recipe and the quality report stored when it was
// quantised, from the header alone (no --reference, nothing measured again), with the warning
// a poor report deserves; --json gives the stored objects unchanged. Also a GGUF's summary.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCheckpoint } from "../../runtime/format/file.ts";
import { haveFiles, modelPath } from "../shared-data.ts";
import { crumb } from "./helpers.ts";

const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin");
let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "crumb-info-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!available)("crumb info", () => {
  test("a file crumb quantize wrote: recipe, stored report, encodings per tensor, warning", async () => {
    const out = join(dir, "stories.q2");
    const quantize = await crumb([
      "quantize", modelPath("stories260K/stories260K.bin"), "--tokenizer", modelPath("stories260K/tok512.bin"),
      "--bits", "2", "--eval-tokens", "64", "-o", out,
    ]);
    expect(quantize.code).toBe(0);
    const file = await openCheckpoint(out);
    const { report, quantization } = file.header;
    await file.close();

    const started = performance.now();
    const info = await crumb(["info", out]);
    expect(info.code).toBe(0);
    expect(info.stderr).toBe("");
    const text = info.stdout;
    expect(text).toContain(`file          ${out} (`);
    expect(text).toContain("architecture  llama: 5 layers, hidden 64, heads 8 (kv 4), head dim 8, vocab 512, trained context 512");
    expect(text).toMatch(/recipe        tool crumb quantize; bits 2; group 32; method rtn; embeddings q8; head q8g128; head_default true; notes: cols 172 not a multiple/);
    expect(text).toContain(`KL divergence  mean ${(report.kl_mean as number).toFixed(5)}`);
    expect(text).toContain(`top-1 agree    ${(100 * (report.top1 as number)).toFixed(2)}%`);
    expect(text).toContain(`ratio ${(report.ppl_ratio as number).toFixed(4)}`);
    expect(text).toMatch(/warning: the stored quality report says this file is poor \(top-1 agreement with fp32 \d+%/);
    expect(text).toContain("chat template none (chat and serve fall back to ChatML");
    expect(text).toMatch(/  model\.layers\.0\.self_attn\.q_proj\.weight\s+64x64\s+q2g32zp\s+/);
    expect(text).toMatch(/  model\.layers\.0\.mlp\.down_proj\.weight\s+64x172\s+q8g32\s+/);
    // Reading a header: well under the time a measurement of 64 tokens would take.
    expect(performance.now() - started).toBeLessThan(20_000);

    const json = JSON.parse((await crumb(["info", out, "--json"])).stdout);
    expect(json.report).toEqual(report);
    expect(json.quantization).toEqual(quantization);
    expect(json.tensors.find((t: { name: string }) => t.name === "model.norm.weight")).toEqual({ name: "model.norm.weight", shape: [64], encoding: "f32", bytes: 256 });
  }, 60_000);

  test("a source checkpoint is refused with the way out; a missing file names the absolute path", async () => {
    const source = await crumb(["info", modelPath("stories260K/stories260K.bin")]);
    expect(source.code).toBe(2);
    expect(source.stderr).toMatch(/is not a packed crumb file or a GGUF; info reads those \(crumb quantize makes/);
    const missing = await crumb(["info", "nowhere.q4"], { cwd: dir });
    expect(missing).toMatchObject({ code: 1, stderr: `crumb info: model ${join(dir, "nowhere.q4")} does not exist (no such file or directory)\n` });
  }, 30_000);
});
