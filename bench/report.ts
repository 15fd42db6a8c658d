/**
 * Renders benchmark rows as a markdown table (with crumb / llama.cpp ratios) and as an SVG
 * bar chart of decode tokens/s (crumb next to llama.cpp per configuration), as plain text.
 */
import { cpus } from "node:os";
import { type BenchRow, WARMUP_DECODE_STEPS } from "./config.ts";

const fmt = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : "-");
const ratio = (a: number, b: number | undefined) => (b === undefined || b <= 0 ? "-" : `${(a / b).toFixed(2)}x`);

export interface ReportContext {
  readonly command: string;
  readonly decodeTokens: number;
  readonly notes: readonly string[];
  readonly date?: string;
}

export function machineDescription(): string {
  const list = cpus();
  return `${list.length} x ${list[0]?.model.trim() ?? "unknown CPU"}`;
}

export function markdownReport(rows: readonly BenchRow[], context: ReportContext): string {
  const lines = [
    "# crumb vs llama.cpp",
    "",
    `\`${context.command}\` on ${machineDescription()}, ${context.date ?? new Date().toISOString().slice(0, 10)}.`,
    "",
    "Random-weight models (test/fixtures generator): 134M and 1.1B llama shapes (vocab 32000, untied), and the shapes of",
    "Qwen2.5-0.5B (qwen2, vocab 151936) and Llama-3.2-1B (vocab 128256), both with tied heads. crumb weights packed with",
    "round-to-nearest (q2/q3/q4: bit-planes, group 64, zero point; ternary: absmean, group 256 as TQ2_0's blocks, halved",
    "where a row is not a multiple: Qwen2.5-0.5B's 896 columns give 128); its output head (lm_head,",
    "or the tied table, stored once) in the quantizer's default head for the width's best method (q4 g64 for q2, q8 g128",
    "otherwise); untied token embeddings q8 (ggml Q8_0 on the llama.cpp side). llama.cpp (node-llama-cpp prebuilt CPU",
    "build, f16 KV cache) runs the same weights exported to GGUF: Q2_K for q2 and q3, Q4_0 for q4, TQ2_0 for ternary, the",
    "head Q6_K (Q8_0 where rows do not fill 256-blocks, as Qwen2.5-0.5B's 896 do, whose Q2_K matrices then fall back to",
    "Q4_0), as llama-quantize writes them. Every configuration runs in a fresh process: a warm-up token and",
    `${WARMUP_DECODE_STEPS} decode steps (then the cache is cleared),`,
    `then a prompt of ctx - ${context.decodeTokens} tokens (prefill tokens/s = prompt / time to first token), then`,
    `${context.decodeTokens} greedy decode steps at that depth. RSS is the process peak (VmHWM). Ratios are crumb / llama.cpp`,
    "within one run (a --merge run's llama.cpp figure replaces the older one for the same configuration in every row);",
    "the machine is shared, so absolute numbers are noisy.",
    "",
    "| shape | runtime | enc | kv | ctx | thr | decode tok/s | llama.cpp | llama.cpp decode | decode ratio | prefill tok/s | llama.cpp prefill | prefill ratio | TTFT ms | RSS MB | llama.cpp RSS MB | KV B/token |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    const l = r.llamacpp;
    lines.push(
      `| ${r.shape} | ${r.runtime ?? "bun"} | ${r.encoding} | ${r.kv} | ${r.ctx} | ${r.threads} | ${fmt(r.decode_tps)} | ${l?.type ?? "-"} | ${l ? fmt(l.decode_tps) : "-"} | ` +
        `${ratio(r.decode_tps, l?.decode_tps)} | ${fmt(r.prefill_tps)} | ${l ? fmt(l.prefill_tps) : "-"} | ${ratio(r.prefill_tps, l?.prefill_tps)} | ` +
        `${fmt(r.ttft_ms, 0)} | ${fmt(r.rss_mb, 0)} | ${l ? fmt(l.rss_mb, 0) : "-"} | ${r.kv_bytes_per_token} |`,
    );
  }
  if (context.notes.length > 0) lines.push("", "Notes:", "", ...context.notes.map((n) => `- ${n}`));
  return lines.join("\n") + "\n";
}

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Horizontal bars, one group per row: crumb decode tokens/s above llama.cpp's. */
export function svgChart(rows: readonly BenchRow[]): string {
  const labelWidth = 230;
  const plotWidth = 560;
  const bar = 12;
  const groupHeight = 2 * bar + 10;
  const top = 40;
  const height = top + rows.length * groupHeight + 30;
  const max = Math.max(1, ...rows.flatMap((r) => [r.decode_tps, r.llamacpp?.decode_tps ?? 0]));
  const scale = plotWidth / max;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + plotWidth + 80}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="18" font-size="14" font-weight="bold">Decode tokens/s: crumb (blue) vs llama.cpp (orange)</text>`,
  ];
  rows.forEach((r, i) => {
    const y = top + i * groupHeight;
    const label = `${r.shape} ${r.encoding} kv ${r.kv} ctx ${r.ctx} t${r.threads}${r.runtime === "deno" ? " deno" : ""}`;
    parts.push(`<text x="${labelWidth - 6}" y="${y + bar + 4}" text-anchor="end">${escapeXml(label)}</text>`);
    const bars: [number, string, string][] = [[r.decode_tps, "#3b6fd4", "crumb"]];
    if (r.llamacpp) bars.push([r.llamacpp.decode_tps, "#e8892b", r.llamacpp.type]);
    bars.forEach(([value, color, name], j) => {
      const w = Math.max(1, value * scale);
      const by = y + j * bar;
      parts.push(`<rect x="${labelWidth}" y="${by}" width="${w.toFixed(1)}" height="${bar - 1}" fill="${color}"><title>${escapeXml(name)} ${fmt(value)}</title></rect>`);
      parts.push(`<text x="${(labelWidth + w + 4).toFixed(1)}" y="${by + bar - 2}">${fmt(value)} ${escapeXml(name)}</text>`);
    });
  });
  parts.push(`<line x1="${labelWidth}" y1="${top - 4}" x2="${labelWidth}" y2="${height - 26}" stroke="#444"/>`);
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
