// `bun run quantize` end to end: byte-identical output for identical input, the --report mode,
// and every bad input (missing path, unknown architecture, missing tensor, bad flags,
// unwritable output, Ctrl-C) failing with a clear message, a non-zero exit and no file.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importModel } from "../../runtime/import/index.ts";
import { openCheckpoint } from "../../runtime/format/file.ts";
import { writeRandomModel } from "../fixtures/write-model.ts";
import { haveFiles, modelPath } from "../shared-data.ts";

const REPO = new URL("../..", import.meta.url).pathname;
const CLI = join(REPO, "quantizer/cli.ts");
const STORIES = modelPath("stories260K/stories260K.bin");
const TOK = modelPath("stories260K/tok512.bin");
const CALIB = new URL("./calibration-small.txt", import.meta.url).pathname;
const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin", "hf-tokenizers/llama2/tokenizer.json");

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "crumb-quantize-cli-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]) {
  const p = Bun.spawnSync([process.execPath, CLI, ...args], { cwd: REPO, env: { ...process.env, NO_COLOR: "1" } });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

/** Nothing but `keep` in the scratch directory: no output, no temp file. */
function expectNoOutput(keep: string[] = []): void {
  expect(readdirSync(dir).filter((f) => !keep.includes(f))).toEqual([]);
}

describe.skipIf(!available)("quantize CLI", () => {
  test("same input twice gives byte-identical files; the file loads and reports itself", async () => {
    const a = join(dir, "a.q2");
    const b = join(dir, "b.q2");
    const args = [STORIES, "--tokenizer", TOK, "--bits", "2", "--method", "gptq", "--calib", CALIB, "--eval-tokens", "96"];
    const first = run([...args, "-o", a]);
    // A 2-bit stories260K agrees with fp32 on fewer than half the tokens: quantize says so.
    expect(first.stderr).toMatch(/^crumb quantize: warning: the stored quality report says this file is poor \(top-1 agreement with fp32 \d+%, perplexity ratio \d+\.\d+\); quantise again with more bits/);
    expect(first.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain("model.layers.0.self_attn.q_proj.weight");
    expect(first.stdout).toMatch(/q2g32zp\s+gptq\s+16\.0 KiB ->\s+1\.5 KiB/);
    expect(first.stdout).toContain("KL divergence");
    const second = run([...args, "-o", b, "--json"]);
    expect(second.code).toBe(0);
    const summary = JSON.parse(second.stdout);
    for (const key of ["kl_mean", "kl_p99", "kl_max", "top1", "ppl_ratio", "bpw", "bytes"]) expect(typeof summary[key]).toBe("number");
    expect(readFileSync(a)).toEqual(readFileSync(b));
    expect(summary.bytes).toBe(readFileSync(a).length);

    const source = await importModel(a);
    expect(source.format).toBe("crumb");
    expect(source.tokenizer).toBeDefined();
    expect(source.tensors.get("model.layers.0.self_attn.k_proj.weight")!.dtype).toBe("q2g32zp");
    // The tied table is the head: the 2-bit gptq default, q4 groups of 64, calibrated (issue 13).
    expect(source.tensors.get("model.embed_tokens.weight")!.dtype).toBe("q4g64zp");

    const report = run(["--report", a, "--reference", STORIES, "--tokenizer", TOK, "--json", "--eval-tokens", "96"]);
    expect(report.code).toBe(0);
    const again = JSON.parse(report.stdout);
    expect(again.kl_mean).toBeCloseTo(summary.kl_mean, 10);
    expect(again.bytes).toBe(summary.bytes);
    rmSync(a);
    rmSync(b);
  }, 30_000);

  test("bad flags and paths: clear message, non-zero exit, no file", () => {
    const out = join(dir, "x.q2");
    const cases: [string[], RegExp, number][] = [
      [[join(dir, "missing.bin"), "-o", out], /does not exist/, 1],
      [[STORIES, "--tokenizer", TOK, "-o", out, "--bits", "5"], /--bits must be one of 2, 3, 4, 8, ternary, got "5"/, 2],
      [[STORIES, "--tokenizer", TOK, "-o", out, "--bits", "ternary", "--method", "gptq"], /--bits ternary needs --method absmean or ptqtp/, 1],
      [[STORIES, "--tokenizer", TOK, "-o", out, "--keep", "*.down_proj.weight=q5"], /--keep .* must be <tensor-pattern>=<encoding>/, 1],
      [[STORIES, "--tokenizer", TOK, "-o", join(dir, "no-such-dir", "x.q2")], /output directory .* does not exist/, 1],
      [[STORIES, "--tokenizer", TOK, "-o", dir], /is a directory/, 1],
      [[STORIES, "-o", out], /carries no tokenizer; pass --tokenizer/, 1],
      [[STORIES, "--tokenizer", TOK, "-o", out, "--frobnicate"], /^crumb quantize: unknown option --frobnicate \(see crumb quantize --help\)\n$/, 2],
      [[STORIES, "--tokenizer", TOK, "-o", out, "--no-refit"], /--no-refit .* needs --method gptq, got --method \(default\)/, 2],
      [[STORIES, "--tokenizer", TOK, "-o", out, "--method", "gptq", "--gptq-rounds", "0"], /--gptq-rounds must be an integer from 1 to 8, got "0"/, 2],
      [[STORIES, "--tokenizer", TOK, "-o", out, "--gptq-rounds", "1"], /--gptq-rounds .* needs --method gptq without --no-refit/, 2],
      [[STORIES, "--tokenizer", TOK, "-o", out, "--head", "q5"], /--head q5 is not supported; choose f32, f16, q8, q4, q3/, 2],
    ];
    for (const [args, message, code] of cases) {
      const r = run(args);
      expect(r.stderr).toMatch(message);
      expect(r.code).toBe(code);
      expectNoOutput();
    }
  });

  test("--no-refit: gptq without the scale/zero refit, recorded in the recipe", async () => {
    const out = join(dir, "plain.q2");
    const r = run([STORIES, "--tokenizer", TOK, "--bits", "2", "--method", "gptq", "--no-refit", "--calib", CALIB, "--no-report", "-o", out]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const file = await openCheckpoint(out);
    try {
      expect(file.header.quantization).toMatchObject({ method: "gptq", gptq_refit: false });
      expect(file.header.quantization).not.toHaveProperty("gptq_rounds");
    } finally {
      await file.close();
    }
    rmSync(out);
  }, 30_000);

  test("--head q8g32: the tied table in q8 groups of 32, recorded in the recipe", async () => {
    const out = join(dir, "head.q2");
    const r = run([STORIES, "--tokenizer", TOK, "--bits", "2", "--head", "q8g32", "--no-report", "-o", out]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const file = await openCheckpoint(out);
    try {
      expect(file.header.quantization).toMatchObject({ head: "q8g32", embeddings: "q8" });
      expect(file.header.quantization).not.toHaveProperty("head_default");
      expect(file.tensors.find((t) => t.name === "model.embed_tokens.weight")!.encoding).toEqual({ kind: "q8", group: 32 });
    } finally {
      await file.close();
    }
    rmSync(out);
  }, 30_000);

  test("--gptq-rounds 1: one sweep and refit, recorded in the recipe", async () => {
    const out = join(dir, "one-round.q2");
    const r = run([STORIES, "--tokenizer", TOK, "--bits", "2", "--method", "gptq", "--gptq-rounds", "1", "--calib", CALIB, "--no-report", "-o", out]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const file = await openCheckpoint(out);
    try {
      expect(file.header.quantization).toMatchObject({ method: "gptq", gptq_rounds: 1 });
      expect(file.header.quantization).not.toHaveProperty("gptq_refit");
    } finally {
      await file.close();
    }
    rmSync(out);
  }, 30_000);

  test("unknown architecture and missing tensors are refused by name", () => {
    const model = join(dir, "hf");
    writeRandomModel({ arch: "llama", hidden: 32, intermediate: 64, layers: 1, heads: 2 }, model);
    const config = JSON.parse(readFileSync(join(model, "config.json"), "utf8"));
    writeFileSync(join(model, "config.json"), JSON.stringify({ ...config, model_type: "gpt_neox" }));
    const unknown = run([model, "-o", join(dir, "x.q2")]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/model_type "gpt_neox" is not supported; supported: llama/);
    writeFileSync(join(model, "config.json"), JSON.stringify({ ...config, num_hidden_layers: 2 }));
    const missing = run([model, "-o", join(dir, "x.q2")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/missing tensor "model\.layers\.1\./);
    expectNoOutput(["hf"]);
    rmSync(model, { recursive: true });
  }, 20_000);

  // SIGINT is Ctrl-C; SIGTERM comes from service managers and `kill`; SIGHUP from a closed terminal.
  test.each([["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]] as const)(
    "%s midway exits %d and leaves no output or temp file",
    async (signal, code) => {
      const out = join(dir, "int.q2");
      const child = Bun.spawn([process.execPath, CLI, STORIES, "--tokenizer", TOK, "--bits", "3", "--method", "gptq", "-o", out], {
        cwd: REPO,
        stdout: "pipe",
        stderr: "pipe",
      });
      const reader = child.stdout.getReader();
      let seen = "";
      while (!seen.includes("calibrating")) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += new TextDecoder().decode(value);
      }
      // The spool of packed tensors exists beside the output by now: the signal must remove it.
      expect(readdirSync(dir).some((name) => /^int\.q2\.data-\d+$/.test(name))).toBe(true);
      child.kill(signal);
      expect(await child.exited).toBe(code);
      expect(await new Response(child.stderr).text()).toContain(`${signal}: interrupted`);
      expectNoOutput();
    },
    20_000,
  );
});

