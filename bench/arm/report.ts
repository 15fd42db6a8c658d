/**
 * The document `bun run bench:arm` writes (bench/results/arm.json), its markdown report
 * (arm.md), and how a --merge run combines it with the previous one.
 */
import { type EncodingName, LLAMACPP_TYPE } from "../config.ts";
import { CRUMB_ENV } from "./qemu.ts";

/** The targets of issue 13: crumb / llama.cpp instructions per token at most this. */
export const TARGETS: Partial<Record<EncodingName, number>> = { q2: 0.35, ternary: 0.6 };

/** One engine's decode cost on one model. Counts are guest instructions per decoded token. */
export interface DecodeRow {
  readonly shape: string;
  readonly engine: "crumb" | "llama.cpp";
  /** crumb encoding, or the llama.cpp GGUF type. */
  readonly weights: string;
  /** Main thread (vCPU 0), mean over the repeated runs: the headline figure. */
  readonly insns_per_token: number;
  /** Every guest thread together (first run; so is the SDOT count). */
  readonly all_threads_per_token: number;
  readonly sdot_per_token: number;
  /** insns_per_token of each repeated measurement (identical runs). */
  readonly repeats: readonly number[];
  /** crumb: the median single token (tokens N1+1..N2) of each repeated measurement. */
  readonly repeat_medians?: readonly number[];
  /** crumb: the main-thread count of single tokens N1+1..N2 (min, median, max), from markers. */
  readonly token_min?: number;
  readonly token_median?: number;
  readonly token_max?: number;
  /** crumb with --method runs: the same figure from the markers of the N2-token run (a cross-check). */
  readonly marks_check?: number;
  readonly prompt_tokens: number;
  readonly method: "marks" | "runs";
  readonly seconds: number;
}

export interface KernelRowArm {
  /** A bench encoding, or one with "-bf16": the same with bf16 group scales (a kernel-only variant). */
  readonly encoding: string;
  readonly rows: number;
  readonly cols: number;
  readonly export: string;
  /** Calls made. */
  readonly calls: number;
  /** The cheapest call's instructions (after JIT tier-up), and per 1024 weights. */
  readonly insns_per_call: number;
  readonly insns_per_kweight: number;
  readonly first_call: number;
  readonly sdot_per_call: number;
  /** Building the call's input (LUT or q8 codes) for one token (median of the calls). */
  readonly prepare_insns: number;
}

export interface ArmDocument {
  readonly date: string;
  readonly command: string;
  readonly cpu: string;
  readonly qemu: string;
  readonly bun: string;
  /** crumb's kernel binary under that Bun (relaxed-simd: SDOT through the "dot" LUT flavour). */
  readonly kernels_binary: string;
  readonly llamacpp: string | null;
  /** llama.cpp's command line (model and prompt elided). */
  readonly llamacpp_args: string;
  readonly tokens: readonly number[];
  readonly ctx: number;
  readonly kv: string;
  readonly prompt: string;
  readonly rows: DecodeRow[];
  readonly kernels: KernelRowArm[];
  readonly notes: string[];
}

export const fmtM = (v: number) => (Number.isFinite(v) ? `${(v / 1e6).toFixed(1)} M` : "-");
const fmtRatio = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : "-");

/** The spread of identical runs as a fraction of the smallest. */
function spread(values: readonly number[]): number {
  if (values.length < 2) return NaN;
  return (Math.max(...values) - Math.min(...values)) / Math.min(...values);
}

export function markdownReport(doc: ArmDocument): string {
  const [n1, n2] = doc.tokens;
  const lines = [
    "# ARM64 instruction counts (bench:arm)",
    "",
    `\`${doc.command}\`, ${
      doc.date.slice(0, 10)
    }: ${doc.qemu}, \`-cpu ${doc.cpu}\`, ${doc.bun} for linux-aarch64 (crumb kernels: ${doc.kernels_binary})` +
    `${doc.llamacpp !== null ? `; llama.cpp: ${doc.llamacpp}` : ""}.`,
    "",
    "Guest instructions per decoded token on the main thread (1 thread), counted by bench/arm/insn-count.c: the",
    `instruction count after token ${n2} minus the count after token ${n1}, divided by ${n2 - n1} (mean of the repeated runs), so`,
    `start-up, loading, the prompt and JIT warm-up cancel out; for crumb also its median single token (the steadier figure`,
    `for judging a kernel change: a garbage collection lands in the window in some runs and not others).`,
    `The prompt text is the same for both engines (ctx ${doc.ctx}, greedy; crumb kv ${doc.kv}).`,
    "crumb: Bun runs bench/arm/driver.ts (loadEngine + generate, one thread) with " +
    Object.entries(CRUMB_ENV).map(([k, v]) => `${k}=${v}`).join(" ") + " (JIT compilation and GC",
    "on the main thread, where they are counted; no wall-clock GC timer), markers after each token (one run).",
    `llama.cpp: \`${doc.llamacpp_args}\`, one run of ${n1} and one of ${n2} tokens`,
    "(with one thread its compute runs on the main thread: compare the all-threads column).",
    "Random-weight models of real shapes from bench/models.ts (crumb: bit-planes group 64 / ternary group 256 as",
    "bench/config.ts packs them, embeddings q8, lm_head the quantizer's default for the width (q4 g64 for q2, q8 g128",
    "otherwise); llama.cpp: the same weights exported to Q2_K / TQ2_0 / Q4_0 with Q8_0 embeddings and a Q6_K head).",
    "Instruction counts are a proxy, not time: qemu models no caches, memory bandwidth or instruction latencies.",
    "",
    "| shape | crumb | instr/token | median token | all threads | SDOT/token | llama.cpp | instr/token | SDOT/token | crumb / llama.cpp | target |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  const crumbRows = doc.rows.filter((r) => r.engine === "crumb");
  for (const r of crumbRows) {
    const type = LLAMACPP_TYPE[r.weights as EncodingName];
    const l = doc.rows.find((x) => x.engine === "llama.cpp" && x.shape === r.shape && x.weights === type);
    const ratio = l !== undefined ? r.insns_per_token / l.insns_per_token : NaN;
    const target = TARGETS[r.weights as EncodingName];
    const verdict = target === undefined
      ? "-"
      : Number.isFinite(ratio)
      ? `<= ${target}x: ${ratio <= target ? "met" : "not met"}`
      : `<= ${target}x`;
    lines.push(
      `| ${r.shape} | ${r.weights} | ${fmtM(r.insns_per_token)} | ${r.token_median !== undefined ? fmtM(r.token_median) : "-"} | ${
        fmtM(r.all_threads_per_token)
      } | ${fmtM(r.sdot_per_token)} | ${l?.weights ?? type} | ${l !== undefined ? fmtM(l.insns_per_token) : "-"} | ${
        l !== undefined ? fmtM(l.sdot_per_token) : "-"
      } | ${fmtRatio(ratio)} | ${verdict} |`,
    );
  }
  for (
    const l of doc.rows.filter((x) =>
      x.engine === "llama.cpp" && !crumbRows.some((r) => r.shape === x.shape && LLAMACPP_TYPE[r.weights as EncodingName] === x.weights)
    )
  ) {
    lines.push(`| ${l.shape} | - | - | - | - | - | ${l.weights} | ${fmtM(l.insns_per_token)} | ${fmtM(l.sdot_per_token)} | - | - |`);
  }
  lines.push(
    "",
    "Per measurement: instructions per token (the headline figure) of each identical run and their spread; for crumb",
    "also the single tokens N1+1..N2 of the first run (min / median / max: a garbage collection or a JIT compilation",
    "landing in the window makes the maximum) and the median token of each run with its spread.",
    "",
    "| shape | engine | weights | method | prompt tokens | instr/token, each run | spread | token min / median / max | median token, each run | spread | qemu s |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  );
  const pct = (v: number) => (Number.isFinite(v) ? `${(v * 100).toFixed(3)}%` : "-");
  const list = (v: readonly number[]) => v.map((x) => x.toLocaleString("en-US")).join(", ");
  for (const r of doc.rows) {
    lines.push(
      `| ${r.shape} | ${r.engine} | ${r.weights} | ${r.method} | ${r.prompt_tokens} | ${list(r.repeats)} | ${pct(spread(r.repeats))} | ${
        r.token_min !== undefined ? `${fmtM(r.token_min)} / ${fmtM(r.token_median!)} / ${fmtM(r.token_max!)}` : "-"
      } | ${r.repeat_medians !== undefined ? list(r.repeat_medians) : "-"} | ${
        r.repeat_medians !== undefined ? pct(spread(r.repeat_medians)) : "-"
      } | ${r.seconds} |`,
    );
  }
  for (const r of doc.rows.filter((x) => x.marks_check !== undefined)) {
    lines.push(
      "",
      `${r.shape} ${r.weights}: two runs give ${fmtM(r.insns_per_token)} per token, the markers of the longer one ${fmtM(r.marks_check!)}.`,
    );
  }
  if (doc.kernels.length > 0) {
    lines.push(
      "",
      `One kernel call class: the GEMV export for one token on random packed codes (the cheapest of ${
        doc.kernels[0].calls
      } calls: after JIT`,
      "tier-up; the first call for comparison), and building its input (the activation LUT, or q8 codes; median call).",
      "`-bf16`: the same encoding with bf16 group scales (kernel only: the bench's models carry f16 scales).",
      "",
      "| encoding | rows x cols | export | instr/call | per 1024 weights | SDOT/call | first call | input build |",
      "|---|---|---|---|---|---|---|---|",
    );
    for (const k of doc.kernels) {
      lines.push(
        `| ${k.encoding} | ${k.rows}x${k.cols} | ${k.export} | ${fmtM(k.insns_per_call)} | ${k.insns_per_kweight} | ${
          fmtM(k.sdot_per_call)
        } | ${fmtM(k.first_call)} | ${fmtM(k.prepare_insns)} |`,
      );
    }
  }
  if (doc.notes.length > 0) lines.push("", "Notes:", "", ...doc.notes.map((n) => `- ${n}`));
  return lines.join("\n") + "\n";
}

export function mergeDocuments(previous: ArmDocument, fresh: ArmDocument): ArmDocument {
  const key = (r: DecodeRow) => `${r.shape}|${r.engine}|${r.weights}`;
  const kkey = (k: KernelRowArm) => `${k.encoding}|${k.rows}|${k.cols}`;
  const rows = new Map(previous.rows.map((r) => [key(r), r]));
  for (const r of fresh.rows) rows.set(key(r), r);
  const kernels = new Map(previous.kernels.map((k) => [kkey(k), k]));
  for (const k of fresh.kernels) kernels.set(kkey(k), k);
  return {
    ...fresh,
    command: `${previous.command}; ${fresh.command}`,
    llamacpp: fresh.llamacpp ?? previous.llamacpp,
    kernels_binary: [...new Set([previous.kernels_binary, fresh.kernels_binary].filter((v) => v !== "-"))].join(", ") || "-",
    rows: [...rows.values()],
    kernels: [...kernels.values()],
    notes: [...new Set([...previous.notes, ...fresh.notes])],
  };
}
