/**
 * `bun run bench:kernels` end to end on small shapes (`--quick --json --out DIR` in a
 * subprocess): exactly one JSON object on stdout with the documented keys, one row per
 * (shape, encoding, threads), every figure positive and finite, and the files written with the
 * same document. Never asserts speed.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const BENCH = fileURLToPath(new URL("../../bench/kernels.ts", import.meta.url));
const ENCODINGS = ["q2", "q3", "q4", "ternary", "q8", "f16", "f32"];
const ROW_KEYS = ["encoding", "rows", "cols", "threads", "gemv_ms", "gbs", "speedup_vs_dequant"];
const POSITIVE = ["gemv_ms", "gbs", "speedup_vs_dequant", "kernel_ms", "hot_kernel_ms", "dequant_ms", "dequant_gbs", "pct_of_bandwidth", "weight_bytes"];

const dir = mkdtempSync(join(tmpdir(), "crumb-bench-kernels-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("bun run bench:kernels", () => {
  test("--quick --json prints one {bandwidth_gbs, results} object and --out writes the same", () => {
    const run = spawnSync(process.execPath, [BENCH, "--quick", "--json", "--out", dir], { encoding: "utf8", timeout: 120_000 });
    expect(run.stderr).not.toContain("Error");
    expect(run.status).toBe(0);
    const lines = run.stdout.trim().split("\n");
    expect(lines.length).toBe(1);
    const doc = JSON.parse(lines[0]) as {
      bandwidth_gbs: number;
      bandwidth: { threads: number; gbs: number }[];
      results: Record<string, unknown>[];
    };
    expect(Number.isFinite(doc.bandwidth_gbs) && doc.bandwidth_gbs > 0).toBe(true);
    expect(doc.bandwidth.map((b) => b.threads)).toEqual([1, 2]);
    expect(doc.bandwidth_gbs).toBe(doc.bandwidth[1].gbs);
    const want = [];
    for (const [rows, cols] of [[256, 512], [512, 256]]) {
      for (const encoding of ENCODINGS) for (const threads of [1, 2]) want.push({ encoding, rows, cols, threads });
    }
    expect(doc.results.map((r) => ({ encoding: r.encoding, rows: r.rows, cols: r.cols, threads: r.threads }))).toEqual(want);
    for (const row of doc.results) {
      expect(Object.keys(row).slice(0, ROW_KEYS.length)).toEqual(ROW_KEYS);
      for (const key of POSITIVE) {
        const v = row[key] as number;
        expect({ key, ok: typeof v === "number" && Number.isFinite(v) && v > 0 }).toEqual({ key, ok: true });
      }
      expect(row.max_rel_diff as number).toBeLessThan(0.25);
    }
    expect(JSON.parse(readFileSync(join(dir, "kernels.json"), "utf8"))).toEqual(doc);
    expect(existsSync(join(dir, "kernels.md"))).toBe(true);
    expect(readFileSync(join(dir, "kernels.md"), "utf8")).toContain("| q2 | q2g64zp | 256x512 | 1 |");
  }, 120_000);

  test("a bad argument exits with status 2 and the usage", () => {
    const run = spawnSync(process.execPath, [BENCH, "--encodings", "q5"], { encoding: "utf8", timeout: 30_000 });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('unknown encoding "q5"');
    expect(run.stderr).toContain("usage: bun bench/kernels.ts");
  });
});
