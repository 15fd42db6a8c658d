// `bun bench/heads.ts` end to end on the tiny tied shapes (`--quick --json --out DIR` in a
// subprocess): one JSON object with one row per (shape, candidate, threads), every figure
// positive, q8g32 the 1.00x reference, the files written with the same rows; bad arguments exit
// 2 with the usage. Never asserts speed. (The run itself checks every pool result bit-identical
// to the one-thread GEMV and fails otherwise.)
import { afterAll, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { HeadsReport } from "../../bench/heads.ts";

const HEADS = fileURLToPath(new URL("../../bench/heads.ts", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "crumb-bench-heads-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("--quick --json: every candidate on both tiny heads at 1 and 2 threads; --out writes the same rows", () => {
  const run = spawnSync(process.execPath, [HEADS, "--quick", "--json", "--out", dir], { encoding: "utf8", timeout: 120_000 });
  expect(run.status).toBe(0);
  const lines = run.stdout.trim().split("\n");
  expect(lines.length).toBe(1);
  const report = JSON.parse(lines[0]) as HeadsReport;
  const candidates = ["q8g32", "q8g128", "q4g32zp", "q4g64zp", "q4g128zp", "q3g64zp", "q2g64zp"];
  const want = [];
  for (const [shape, cols] of [["tiny-qwen2", 384], ["tiny-llama3", 256]] as const) {
    for (const threads of [1, 2]) for (const encoding of candidates) want.push({ shape, rows: 512, cols, encoding, threads });
  }
  expect(report.rows.map((r) => ({ shape: r.shape, rows: r.rows, cols: r.cols, encoding: r.encoding, threads: r.threads }))).toEqual(want);
  for (const r of report.rows) {
    for (const key of ["weight_bytes", "ms", "gbs", "vs_q8g32"] as const) {
      expect({ key, ok: Number.isFinite(r[key]) && r[key] > 0 }).toEqual({ key, ok: true });
    }
    if (r.encoding === "q8g32") expect(r.vs_q8g32).toBe(1);
  }
  expect((JSON.parse(readFileSync(join(dir, "heads.json"), "utf8")) as HeadsReport).rows).toEqual(report.rows);
  expect(readFileSync(join(dir, "heads.md"), "utf8")).toContain("| tiny-qwen2 | 512x384 | q4g64zp |");
}, 120_000);

test("a bad candidate exits with status 2 and the usage", () => {
  const run = spawnSync(process.execPath, [HEADS, "--candidates", "q5g64zp"], { encoding: "utf8", timeout: 30_000 });
  expect(run.status).toBe(2);
  expect(run.stderr).toContain('unknown candidate "q5g64zp"');
  expect(run.stderr).toContain("usage: bun bench/heads.ts");
});
