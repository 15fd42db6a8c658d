/**
 * Renders the kernel benchmark (bench/kernels.ts) as the JSON document `--json` prints and
 * bench/results/kernels.json stores, and as a markdown report (kernels.md, also printed).
 */
import { cpus } from "node:os";
import type { BandwidthRow, KernelRow } from "./kernels-measure.ts";

export interface KernelReport {
  /** Streaming-read bandwidth at the largest thread count measured (2 by default). */
  readonly bandwidth_gbs: number;
  readonly results: readonly KernelRow[];
  readonly bandwidth: readonly BandwidthRow[];
  readonly convention: string;
  readonly timing: string;
  readonly machine: string;
  readonly runtime: string;
  readonly command: string;
  /** Passes over the grid (--repeat); each figure is its best pass. */
  readonly passes: number;
  readonly date: string;
  readonly load_average: readonly [number, number];
}

export const CONVENTION = "rows x cols = output features x input features: W is rows x cols, y = W x, x has cols entries";
export const TIMING =
  "median of single GEMV calls on a worker pool; each call reads the next of several copies of the matrix (cache-cold " +
  "weights); gemv_ms includes building the input's LUT tables (q2/q3/q4/ternary) or quantising it to int8 (q8) as a " +
  "decode step does, kernel_ms is the GEMV alone, hot_kernel_ms the GEMV alone on one copy (cache-resident when it fits); the dequant baseline (dequantise each row to f32, then a SIMD f32 dot) " +
  "reads the same packed bytes on the same threads; gbs = packed weight bytes / gemv_ms";

export function machineDescription(): string {
  const list = cpus();
  return `${list.length} x ${list[0]?.model.trim() ?? "unknown CPU"}`;
}

export function runtimeDescription(): string {
  const versions = (globalThis as { process?: { versions?: Record<string, string> } }).process?.versions ?? {};
  if (versions.bun !== undefined) return `Bun ${versions.bun}`;
  if (versions.deno !== undefined) return `Deno ${versions.deno}`;
  return `Node ${versions.node ?? "?"}`;
}

const fixed = (v: number, digits: number) => (Number.isFinite(v) ? v.toFixed(digits) : "-");

/** The targets of issue 3 for the 2-bit rows, as sentences with the measured numbers. */
export function targetLines(report: KernelReport): string[] {
  const q2 = report.results.filter((r) => r.encoding === "q2");
  if (q2.length === 0) return [];
  const lines: string[] = [];
  for (const r of q2) {
    const speed = r.speedup_vs_dequant >= 4 ? "met" : "missed";
    const bw = r.threads === 2 ? `, ${fixed(r.pct_of_bandwidth, 0)}% of the ${r.threads}-thread bandwidth (target 70%: ${r.pct_of_bandwidth >= 70 ? "met" : "missed"})` : "";
    lines.push(`- q2 ${r.rows}x${r.cols}, ${r.threads} thread(s): ${fixed(r.speedup_vs_dequant, 1)}x the dequantise baseline (target 4x: ${speed})${bw}.`);
  }
  return lines;
}

export function markdownReport(report: KernelReport): string {
  const bw = report.bandwidth.map((b) => `${fixed(b.gbs, 1)} GB/s with ${b.threads} thread(s)`).join(", ");
  const lines = [
    "# crumb kernels: GEMV vs a dequantise-then-dot baseline",
    "",
    `\`${report.command}\` on ${report.machine}, ${report.runtime}, ${report.date.slice(0, 10)}` +
    ` (load average ${report.load_average[0].toFixed(1)} before, ${report.load_average[1].toFixed(1)} after; the machine is shared).`,
    "",
    `Streaming-read bandwidth (WASM SIMD sum over ${fixed((report.bandwidth[0]?.bytes ?? 0) / 2 ** 20, 0)} MiB): ${bw}.`,
    "",
    `Shapes: ${report.convention}. Timing: ${report.timing}` +
    (report.passes > 1 ? `; each figure is the best of ${report.passes} passes over the whole grid.` : "."),
    "Weights are random bytes with finite f16 scales; packings: q2/q3/q4 bit-planes, group 64, zero point; ternary group 256 (as TQ2_0);",
    "q8 group 32.",
    "",
    ...targetLines(report),
    "",
    "| enc | packing | rows x cols | thr | MB | GEMV ms | GB/s | % of bw | kernel ms | hot kernel ms | dequant ms | speedup vs dequant |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of report.results) {
    lines.push(
      `| ${r.encoding} | ${r.packing} | ${r.rows}x${r.cols} | ${r.threads} | ${fixed(r.weight_bytes / 1e6, 2)} | ${fixed(r.gemv_ms, 3)} | ` +
        `${fixed(r.gbs, 1)} | ${fixed(r.pct_of_bandwidth, 0)} | ${fixed(r.kernel_ms, 3)} | ${fixed(r.hot_kernel_ms, 3)} | ${fixed(r.dequant_ms, 2)} | ${fixed(r.speedup_vs_dequant, 1)}x |`,
    );
  }
  return lines.join("\n") + "\n";
}
