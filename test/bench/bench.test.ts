/**
 * The benchmark harness end to end on a tiny shape (hidden 256): `bench/run.ts --json` goes
 * through model generation, GGUF export, crumb and llama.cpp subprocess runs and the report
 * writers, and prints exactly one JSON object. Checks the row format and that every number
 * is positive, never speed.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BenchRow } from "../../bench/config.ts";
import { markdownReport, svgChart } from "../../bench/report.ts";
import { haveFiles } from "../shared-data.ts";

const RUN = fileURLToPath(new URL("../../bench/run.ts", import.meta.url));
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
