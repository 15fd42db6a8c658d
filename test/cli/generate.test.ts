// `crumb generate` as a user runs it: the prompt from piped stdin, relative paths against the
// directory the user typed them in (INIT_CWD under npm run / deno task), Ctrl-C printing the
// statistics so far (exit 130), and the start-up warnings: a context past the trained length,
// a source checkpoint on the fp32 reference engine, ignored GPU flags.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadEngine } from "../../runtime/engine/load-engine.ts";
import { haveFiles, modelPath } from "../shared-data.ts";
import { commandFor, crumb, packedStories, REPO } from "./helpers.ts";

const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin");
let dir = "";
let model = "";
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "crumb-generate-cli-"));
  if (available) model = await packedStories(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!available)("crumb generate", () => {
  test("the prompt comes from piped stdin; stdout holds only the text", async () => {
    const r = await crumb(["generate", model, "--temp", "0", "-n", "16", "-t", "1"], { stdin: "Once upon a time" });
    expect(r.code).toBe(0);
    const engine = await loadEngine(model, { threads: 1 });
    let text = "";
    try {
      for await (const e of engine.generate("Once upon a time", { temperature: 0, maxTokens: 16 })) if (e.type !== "done") text += e.text;
    } finally {
      await engine.dispose();
    }
    expect(text.length).toBeGreaterThan(0);
    expect(r.stdout).toBe(text);
    expect(r.stderr).toMatch(/16 tokens in [\d.]+ s: [\d.]+ tokens\/s decode; prompt \d+ tokens/);
  }, 30_000);

  test("relative paths resolve against the user's directory (INIT_CWD from a script), shown absolute", async () => {
    const fromScript = await crumb(["generate", "stories260K.q4", "-n", "2", "-t", "1"], { cwd: REPO, env: { INIT_CWD: dir } });
    expect(fromScript.code).toBe(0);
    expect(fromScript.stderr).toContain("ready: stories260K.q4");
    const missing = await crumb(["generate", "missing.q4"], { cwd: REPO, env: { INIT_CWD: dir } });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`crumb generate: model ${join(dir, "missing.q4")} does not exist (no such file or directory)\n`);
    // Run from elsewhere, INIT_CWD is not where the command runs: the working directory counts.
    const direct = await crumb(["generate", "stories260K.q4", "-n", "2", "-t", "1"], { cwd: dir, env: { INIT_CWD: REPO } });
    expect(direct.code).toBe(0);
  }, 30_000);

  test("Ctrl-C stops the generation and prints the statistics so far (exit 130)", async () => {
    // XQuant rematerialises every step: slow enough that the run is still going when signalled.
    const [command, ...args] = commandFor("bun", ["generate", model, "-n", "-1", "--kv", "xquant", "-t", "1", "--temp", "0"]);
    const child = spawn(command, args, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.once("data", () => child.kill("SIGINT"));
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.on("close", (c) => resolve(c));
    });
    expect(code).toBe(130);
    expect(stdout.length).toBeGreaterThan(0);
    expect(stderr).toMatch(/crumb generate: interrupted: (\d+) tokens in [\d.]+ s: [\d.]+ tokens\/s decode; prompt 1 tokens/);
    const tokens = Number(/interrupted: (\d+) tokens/.exec(stderr)![1]);
    expect(tokens).toBeLessThan(511);
    expect(stderr).not.toMatch(/\bat .*\.ts:\d+/);
  }, 60_000);

  test("warnings: context past the trained length, the fp32 reference engine, GPU flags", async () => {
    const longer = await crumb(["generate", model, "-c", "1024", "-n", "1", "-t", "1", "-ngl", "99"]);
    expect(longer.code).toBe(0);
    expect(longer.stderr).toContain("crumb generate: ignoring -ngl 99: crumb runs on the CPU");
    expect(longer.stderr).toContain(
      "crumb generate: warning: context 1024 exceeds the 512 positions stories260K.q4 was trained for; output past 512 tokens degrades (use -c 512 or less)",
    );
    const fits = await crumb(["generate", model, "-c", "512", "-n", "1", "-t", "1"]);
    expect(fits.stderr).not.toContain("warning");
    const poor = await packedStories(dir, "poor.q4", { top1: 0.3, ppl_ratio: 3.7, bpw: 2.5, bpw_overall: 3, bytes: 1 });
    const loaded = await crumb(["generate", poor, "-n", "1", "-t", "1"]);
    expect(loaded.stderr).toContain(
      "crumb generate: warning: the stored quality report says this file is poor (top-1 agreement with fp32 30%, perplexity ratio 3.70); " +
        "quantise again with more bits (--bits 3 or 4) or --method gptq",
    );
    const source = modelPath("stories260K/stories260K.bin");
    const reference = await crumb(["generate", source, "--tokenizer", modelPath("stories260K/tok512.bin"), "-n", "1"]);
    expect(reference.code).toBe(0);
    expect(reference.stderr).toContain(
      `crumb generate: ${source} is a source checkpoint: it runs on the fp32 reference engine (correct, not fast; --threads and --kv do not apply). ` +
        `For the WASM engine, quantise it once: crumb quantize ${source} -o model.q4 --bits 4`,
    );
  }, 60_000);
});
