/**
 * The benchmark harness end to end on a tiny shape (hidden 256): `bench/run.ts --json` goes
 * through model generation, GGUF export, crumb and llama.cpp subprocess runs and the report
 * writers, and prints exactly one JSON object. Checks the row format and that every number
 * is positive, never speed; and for the tied shapes of issue 13 (tiny variants), what each
 * engine's files hold: crumb's table once in the head encoding, llama.cpp's head and fallbacks
 * as llama-quantize writes them.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BenchRow, ENCODINGS, HEAD_ENCODINGS, SHAPES } from "../../bench/config.ts";
import { prepareModels } from "../../bench/models.ts";
import { markdownReport, svgChart } from "../../bench/report.ts";
import { readGguf } from "../../runtime/import/gguf.ts";
import { encodingName } from "../../runtime/format/encoding.ts";
import { openCheckpoint } from "../../runtime/format/file.ts";
import { randomModelConfig, tensorShapes } from "../fixtures/random-model.ts";
import { haveFiles, modelPath } from "../shared-data.ts";

const RUN = fileURLToPath(new URL("../../bench/run.ts", import.meta.url));
const VOCAB = modelPath("gguf-vocab/ggml-vocab-llama-spm.gguf");
const available = haveFiles("gguf-vocab/ggml-vocab-llama-spm.gguf");
const dir = mkdtempSync(join(tmpdir(), "crumb-bench-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ROW_KEYS = ["shape", "runtime", "encoding", "kv", "ctx", "threads", "decode_tps", "prefill_tps", "ttft_ms", "rss_mb", "kv_bytes_per_token", "llamacpp"];

describe.skipIf(!available)("bun run bench", () => {
  test("--json prints one {rows} object with positive numbers and llama.cpp rows; files are written", () => {
    const out = join(dir, "results");
    const args = [RUN, "--shapes", "tiny", "--encodings", "q2,ternary", "--kv", "f16", "--ctx", "64", "--threads", "1", "--runtime", "bun,deno", "--decode", "8", "--json", "--out", out, "--cache", join(dir, "cache")];
    const run = spawnSync(process.execPath, args, { encoding: "utf8", timeout: 120_000 });
    expect(run.status).toBe(0);
    const lines = run.stdout.trim().split("\n");
    expect(lines.length).toBe(1);
    const document = JSON.parse(lines[0]) as { rows: BenchRow[] };
    expect(Object.keys(document)).toEqual(["rows"]);
    expect(document.rows.map((r) => `${r.encoding}/${r.runtime}`)).toEqual(["q2/bun", "q2/deno", "ternary/bun", "ternary/deno"]);
    for (const row of document.rows) {
      expect(Object.keys(row)).toEqual(ROW_KEYS);
      expect([row.shape, row.kv, row.ctx, row.threads]).toEqual(["tiny", "f16", 64, 1]);
      for (const key of ["decode_tps", "prefill_tps", "ttft_ms", "rss_mb", "kv_bytes_per_token"] as const) expect(row[key]).toBeGreaterThan(0);
      // f16 keys and values: 2 layers x 2 kv heads x 64 dims x 2 bytes x 2
      expect(row.kv_bytes_per_token).toBe(1024);
      expect(row.llamacpp).not.toBeNull();
      expect(row.llamacpp!.type).toBe(row.encoding === "q2" ? "Q2_K" : "TQ2_0");
      expect(row.llamacpp!.decode_tps).toBeGreaterThan(0);
      expect(row.llamacpp!.prefill_tps).toBeGreaterThan(0);
    }
    for (const file of ["bench.json", "bench.md", "bench.svg"]) expect(existsSync(join(out, file))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, "bench.json"), "utf8")).rows).toEqual(document.rows);
  }, 120_000);
});

describe.skipIf(!available)("tied shapes (issue 13)", () => {
  test("--json on tiny-qwen2 and tiny-llama3: one row each with llama.cpp's Q2_K run", () => {
    const args = [RUN, "--shapes", "tiny-qwen2,tiny-llama3", "--encodings", "q2", "--kv", "f16", "--ctx", "48", "--threads", "1", "--decode", "4", "--json", "--out", join(dir, "tied"), "--cache", join(dir, "cache")];
    const run = spawnSync(process.execPath, args, { encoding: "utf8", timeout: 120_000 });
    expect(run.status).toBe(0);
    const rows = (JSON.parse(run.stdout.trim()) as { rows: BenchRow[] }).rows;
    expect(rows.map((r) => `${r.shape}/${r.encoding}/${r.llamacpp?.type}`)).toEqual(["tiny-qwen2/q2/Q2_K", "tiny-llama3/q2/Q2_K"]);
    for (const row of rows) {
      for (const key of ["decode_tps", "prefill_tps", "ttft_ms", "rss_mb"] as const) expect(row[key]).toBeGreaterThan(0);
      expect(row.llamacpp!.decode_tps).toBeGreaterThan(0);
      expect(row.kv_bytes_per_token).toBe(1024); // 2 layers x 2 kv heads x 64 dims x 2 bytes x 2
    }
  }, 120_000);

  test("crumb stores the tied table once in the head encoding; the GGUF has llama-quantize's head and fallbacks", async () => {
    const log: string[] = [];
    for (const [shape, headType, bodyType] of [["tiny-qwen2", "Q8_0", "Q4_0"], ["tiny-llama3", "Q6_K", "Q2_K"]] as const) {
      const files = await prepareModels(SHAPES[shape], ["q2", "q4"], ["Q2_K"], { seed: 0, cacheDir: join(dir, "cache"), vocabGguf: VOCAB, log: (m) => log.push(m) });
      for (const encoding of ["q2", "q4"] as const) {
        const file = await openCheckpoint(files.packed[encoding]!);
        try {
          const byName = new Map(file.tensors.map((t) => [t.name, t.encoding]));
          expect(byName.has("lm_head.weight")).toBe(false);
          expect(byName.get("model.embed_tokens.weight")).toEqual(HEAD_ENCODINGS[encoding]);
          expect(byName.get("model.layers.0.mlp.up_proj.weight")).toEqual(ENCODINGS[encoding]);
        } finally {
          await file.close();
        }
      }
      const gguf = readGguf(files.gguf.Q2_K!);
      const type = (name: string) => gguf.tensorInfos.find((t) => t.name === name)?.type.name;
      expect(type("output.weight")).toBeUndefined();
      // Tied: token_embd is the head, Q6_K unless the row (384 in tiny-qwen2, 896 in Qwen2.5-0.5B) does not fill 256-blocks.
      expect(type("token_embd.weight")).toBe(headType);
      expect(type("blk.0.attn_q.weight")).toBe(bodyType);
      expect(type("blk.0.ffn_down.weight")).toBe("Q2_K"); // 512 input columns fill Q2_K blocks
    }
  });
});

describe("shapes", () => {
  test("the real shapes have the published parameter counts, tied heads, head_dim 64, and qwen2's q/k/v biases", () => {
    const counts: Record<string, number> = { "qwen2.5-0.5B": 494_032_768, "llama3.2-1B": 1_235_814_400 };
    for (const [shape, count] of Object.entries(counts)) {
      const config = randomModelConfig(SHAPES[shape].spec);
      const shapes = tensorShapes(config);
      expect([...shapes.values()].reduce((n, d) => n + d.reduce((a, b) => a * b, 1), 0)).toBe(count);
      expect(shapes.has("lm_head.weight")).toBe(false);
      expect(config.head_dim).toBe(64);
    }
    const qwen = tensorShapes(randomModelConfig(SHAPES["qwen2.5-0.5B"].spec));
    expect(qwen.get("model.layers.0.self_attn.k_proj.bias")).toEqual([128]);
    expect(qwen.get("model.embed_tokens.weight")).toEqual([151936, 896]);
    expect(tensorShapes(randomModelConfig(SHAPES["llama3.2-1B"].spec)).get("model.layers.15.self_attn.v_proj.weight")).toEqual([512, 2048]);
  });

  test("crumb's heads are the quantizer's defaults for each width's best method", () => {
    expect(Object.fromEntries(Object.entries(HEAD_ENCODINGS).map(([e, h]) => [e, encodingName(h)]))).toEqual({
      q2: "q4g64zp",
      q3: "q8g128",
      q4: "q8g128",
      ternary: "q8g128",
    });
  });
});

describe("bench report", () => {
  const row: BenchRow = {
    shape: "134M", encoding: "q2", kv: "f16", ctx: 128, threads: 2, decode_tps: 50, prefill_tps: 400, ttft_ms: 240,
    rss_mb: 180, kv_bytes_per_token: 73728,
    llamacpp: { type: "Q2_K", decode_tps: 100, prefill_tps: 500, ttft_ms: 190, rss_mb: 200 },
  };

  test("the markdown table carries the crumb / llama.cpp ratios", () => {
    const md = markdownReport([row, { ...row, encoding: "q4", llamacpp: null }], { command: "bun bench/run.ts", decodeTokens: 32, notes: ["kv q8 skipped"] });
    expect(md).toContain("| 134M | bun | q2 | f16 | 128 | 2 | 50.0 | Q2_K | 100.0 | 0.50x | 400.0 | 500.0 | 0.80x |");
    expect(md).toContain("| 134M | bun | q4 | f16 | 128 | 2 | 50.0 | - | - | - |");
    expect(md).toContain("- kv q8 skipped");
  });

  test("the SVG chart has one bar per engine and a label per row", () => {
    const svg = svgChart([row]);
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg.trim().endsWith("</svg>")).toBe(true);
    expect(svg.match(/<rect x=/g)?.length).toBe(2);
    expect(svg).toContain("134M q2 kv f16 ctx 128 t2");
  });
});
