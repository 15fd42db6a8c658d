/**
 * The "Output head" section of bench/results/quality.md (issue 13): each candidate head
 * encoding's KL cost on stories260K with everything else fixed (the body at each width with
 * its best method, and at 2 bits with rtn too), its bytes per weight, and its decode-step time
 * on the heads of real models from bench/results/heads.json (bench/heads.ts). The cost of a
 * head is KL(body + head) - KL(body + f32 head); it is negligible below 2% of KL(body + f32
 * head). The rule (at each width, the fastest candidate whose cost is negligible) is applied
 * here and its pick compared with quantizer/recipe.ts's defaultHead, so a changed measurement
 * that moves the pick shows in the report.
 * stories260K's table is 512x64, tied: a head's cost includes the embedding lookups of the
 * same table (stored once); the untied-copy rows separate the two. Its 64 columns cannot hold
 * a group of 128, so q4g128 (the fastest LUT head in heads.json) is not a candidate.
 */
import { existsSync, readFileSync } from "node:fs";
import { encodingName, matrixLayout } from "../runtime/format/encoding.ts";
import type { ModelSource } from "../runtime/models/types.ts";
import { quantizeModel, type QuantizeOptions } from "../quantizer/quantize.ts";
import type { MethodName } from "../quantizer/methods/index.ts";
import { type Bits, defaultHead, headName, parseHead } from "../quantizer/recipe.ts";
import type { HeadsReport } from "./heads.ts";

const HEADS_JSON = new URL("./results/heads.json", import.meta.url).pathname;
const LAYERS_F32 = [{ pattern: "model.layers.*", action: "f32" as const }];

export const HEADS_INTRO = `Real small models have large vocabularies, and the output head is read at every decode step:
Qwen2.5-0.5B's is 151936x896 and Llama-3.2-1B's 128256x2048 (both tied to the embeddings), 145 MB
and 279 MB in q8 groups of 32, more than a 2-bit body (about 112 MB and 304 MB in q2 g64). The
candidates use the kernels as they are: the int8 path (q8, int8 activations x int8 weights,
kernels-wasm/src/q8dot.rs) in groups of 32 (the previous default) or 128, and the LUT path (q4, q3
zero-point, kernels-wasm/src/gemm.rs); crumb has no 6-bit encoding like llama-quantize's Q6_K.

Speed: \`bun bench/heads.ts --out bench/results\` (bench/results/heads.md): each candidate's decode
step (input preparation + GEMV over the worker pool) on random packed heads of the two real shapes,
timed in interleaved rounds on this 2-core machine while other jobs ran: ms per token (1 / 2
threads) and the mean time relative to q8g32 over both shapes and thread counts, which is steadier
than the absolute times. Quality: stories260K with everything else fixed, each body quantised once
per candidate (\`--head\`); head-only = the layers kept f32 (\`--keep 'model.layers.*=f32'\`), the
head rounded (rtn) or calibrated (gptq on the final norm's output); the other columns give the cost
KL(body + head) - KL(body + f32 head) and, in brackets, that cost as a share of KL(body + f32 head)
(the f32 row gives that KL). A LUT head takes the recipe's method when it is gptq or imatrix, else
rtn. **Negligible** means a cost below 2% of the body's own KL (the issue's example for 2 bits,
applied to every body), and the default is the fastest candidate below it.`;

/** Candidates, as --head takes them. */
/** Candidates, as --head takes them. */
export const HEAD_SPECS = ["f32", "f16", "q8g32", "q8g128", "q4g32", "q4g64", "q3g64"] as const;

interface Body {
  readonly key: string;
  readonly label: string;
  readonly options: QuantizeOptions;
  /** The (width, method) whose default head this body decides. */
  readonly decides?: { readonly bits: Bits; readonly method: MethodName };
}

const bodyAt = (bits: Bits, method: MethodName, label: string): Body => ({
  key: `${method}${bits}`,
  label,
  options: { bits, method },
  decides: { bits, method },
});

const BODIES: readonly Body[] = [
  { key: "fp32", label: "fp32 body, rtn head (head-only cost)", options: { keep: LAYERS_F32 } },
  { key: "fp32-gptq", label: "fp32 body, gptq-calibrated head", options: { method: "gptq", keep: LAYERS_F32 } },
  bodyAt(4, "gptq", "gptq 4-bit"),
  bodyAt(3, "gptq", "gptq 3-bit"),
  bodyAt(2, "gptq", "gptq 2-bit"),
  bodyAt(2, "imatrix", "imatrix 2-bit"),
  bodyAt(2, "rtn", "rtn 2-bit"),
  bodyAt("ternary", "ptqtp", "ptqtp ternary"),
];

/** The encoding name heads.json uses for a candidate (zero-point LUT forms end in zp). */
function packedName(spec: string): string {
  const h = parseHead(spec);
  if (h.format === "q8") return `q8g${h.group ?? 32}`;
  return h.format === "q4" || h.format === "q3" ? `${spec}zp` : spec;
}

/** Bytes per weight of a candidate on Llama-3.2-1B's head (row padding included). */
function bytesPerWeight(spec: string): number {
  const h = parseHead(spec);
  const group = (h.group ?? 32) as 32 | 64 | 128;
  const e = h.format === "f32" || h.format === "f16"
    ? { kind: h.format }
    : h.format === "q8"
    ? { kind: "q8" as const, group }
    : { kind: "bitplane" as const, bits: h.format === "q4" ? 4 as const : 3 as const, group, scales: "zero-point" as const };
  return matrixLayout(e, 128256, 2048).byteLength / (128256 * 2048);
}

export interface HeadSection {
  /** The tables, the rule's picks and the findings drawn from these measurements. */
  readonly markdown: string;
  /** The rule's pick per body, and defaultHead's choice for it. */
  readonly picks: { readonly label: string; readonly pick: string | undefined; readonly default: string }[];
}

/** Quantises stories260K once per (body, candidate) and renders the section's tables. */
export async function measureHeads(source: ModelSource, log: (line: string) => void): Promise<HeadSection> {
  const kl = new Map<string, number>();
  for (const body of BODIES) {
    for (const spec of HEAD_SPECS) {
      const r = await quantizeModel(source, { ...body.options, head: parseHead(spec) });
      kl.set(`${body.key}/${spec}`, r.report.kl_mean!);
      log(`head ${spec}, ${body.label}: KL ${r.report.kl_mean!.toFixed(5)}`);
    }
  }
  const cost = (body: string, spec: string) => kl.get(`${body}/${spec}`)! - kl.get(`${body}/f32`)!;
  const share = (body: string, spec: string) => cost(body, spec) / kl.get(`${body}/f32`)!;

  const speed = existsSync(HEADS_JSON) ? (JSON.parse(readFileSync(HEADS_JSON, "utf8")) as HeadsReport) : undefined;
  const rowsOf = (spec: string) => speed?.rows.filter((r) => r.encoding === packedName(spec)) ?? [];
  const ms = (spec: string, shape: string) => {
    const rows = rowsOf(spec).filter((r) => r.shape === shape).sort((a, b) => a.threads - b.threads);
    return rows.length === 0 ? "-" : rows.map((r) => r.ms.toFixed(1)).join(" / ");
  };
  /** Mean time relative to q8g32 over the shapes and thread counts measured (undefined: not timed). */
  const relative = (spec: string) => {
    const rows = rowsOf(spec);
    return rows.length === 0 ? undefined : rows.reduce((s, r) => s + r.vs_q8g32, 0) / rows.length;
  };
  const bySpeed = HEAD_SPECS.filter((s) => relative(s) !== undefined).sort((a, b) => relative(a)! - relative(b)!);

  const picks = BODIES.filter((b) => b.decides !== undefined).map((b) => ({
    label: b.label,
    pick: bySpeed.find((spec) => share(b.key, spec) < 0.02),
    default: headName(defaultHead(b.decides!.bits, b.decides!.method)),
  }));

  const cell = (body: string, spec: string) =>
    spec === "f32"
      ? kl.get(`${body}/f32`)!.toFixed(4)
      : `${cost(body, spec) >= 0 ? "+" : ""}${cost(body, spec).toFixed(4)} (${(100 * share(body, spec)).toFixed(1)}%)`;
  const headKl = (body: string, spec: string) => kl.get(`${body}/${spec}`)!.toFixed(5);
  const lines = [
    "| head | bytes/weight | Qwen2.5-0.5B head, ms/token (1 / 2 threads) | Llama-3.2-1B head, ms/token (1 / 2 threads) | time vs q8g32 | head-only KL, rtn | head-only KL, gptq-calibrated | " +
    BODIES.slice(2).map((b) => b.label).join(" | ") + " |",
    `|${"---|".repeat(7 + BODIES.length - 2)}`,
    ...HEAD_SPECS.map((spec) =>
      `| ${spec} | ${bytesPerWeight(spec).toFixed(3)} | ${ms(spec, "qwen2.5-0.5B")} | ${ms(spec, "llama3.2-1B")} | ${
        relative(spec)?.toFixed(2) ?? "-"
      }${relative(spec) === undefined ? "" : "x"} | ` +
      `${headKl("fp32", spec)} | ${headKl("fp32-gptq", spec)} | ${BODIES.slice(2).map((b) => cell(b.key, spec)).join(" | ")} |`
    ),
  ];

  // Stored once (the tied table in the head's encoding) against an untied copy: lm_head in the
  // head's encoding, the embedding table kept q8 for the lookups.
  const embed = source.tensors.get("model.embed_tokens.weight")!;
  const untied: ModelSource = {
    ...source,
    tensors: new Map([...source.tensors, ["lm_head.weight", { ...embed, name: "lm_head.weight" }]]),
  };
  const copies: string[] = [];
  for (const body of BODIES.filter((b) => b.key === "fp32-gptq" || b.key === "gptq2")) {
    for (const spec of ["q4g64", "q4g32"]) {
      const r = await quantizeModel(untied, { ...body.options, head: parseHead(spec), embeddings: "q8" });
      copies.push(`| ${body.label} | ${spec} | ${kl.get(`${body.key}/${spec}`)!.toFixed(5)} | ${r.report.kl_mean!.toFixed(5)} |`);
      log(`untied copy ${spec}, ${body.label}: KL ${r.report.kl_mean!.toFixed(5)}`);
    }
  }
  const mb = (e: Parameters<typeof matrixLayout>[0], rows: number, cols: number) =>
    (matrixLayout(e, rows, cols).byteLength / 1e6).toFixed(1);
  const q4g64 = { kind: "bitplane", bits: 4, group: 64, scales: "zero-point" } as const;
  const q8 = { kind: "q8", group: 32 } as const;
  const memory = [["Qwen2.5-0.5B", 151936, 896], ["Llama-3.2-1B", 128256, 2048]].map(([name, rows, cols]) =>
    `${name}: ${mb(q4g64, rows as number, cols as number)} MB once, ${mb(q4g64, rows as number, cols as number)} + ${
      mb(q8, rows as number, cols as number)
    } MB as a copy`
  );

  // A q8 default names no group (the recipe's): q8 against the rule's q8g128 is a disagreement too.
  const rule = picks.map((p) =>
    `${p.label}: ${p.pick ?? "none"}${p.pick === p.default ? "" : ` (defaultHead says ${p.default}: they disagree)`}`
  ).join("; ");
  const pct = (body: string, spec: string) => `${(100 * share(body, spec)).toFixed(1)}%`;
  const span = (values: number[], digits = 2) => `${Math.min(...values).toFixed(digits)}-${Math.max(...values).toFixed(digits)}`;
  const ratios = (spec: string) => span(rowsOf(spec).map((r) => r.vs_q8g32));
  const q8Shares = BODIES.slice(2).map((b) => Math.abs(share(b.key, "q8g128")));
  const copyGain = copies.map((line) => line.split("|").slice(3, 5).map(Number)).map(([once, copy]) => once - copy);
  const findings = `Findings. An 8-bit head is free at every width: q8g128's cost stays within ${
    (100 * Math.max(...q8Shares)).toFixed(1)
  }% of any body's KL
(head-only KL ${headKl("fp32", "q8g128")}), and it takes ${
    ratios("q8g128")
  }x q8g32's time (a scale per 128 weights instead of 32). A 4-bit head
costs ${headKl("fp32", "q4g64")} (q4g64) on its own when rounded, ${headKl("fp32-gptq", "q4g64")} when calibrated (q4g32: ${
    headKl("fp32-gptq", "q4g32")
  }); next to the
2-bit gptq body that is ${pct("gptq2", "q4g64")} (q4g64) and ${pct("gptq2", "q4g32")} (q4g32): negligible, at ${
    ratios("q4g64")
  }x q8g32's time for q4g64.
Uncalibrated it is not (2-bit rtn: ${pct("rtn2", "q4g64")}), nor is imatrix's q4g64 (${pct("imatrix2", "q4g64")}; q4g32 ${
    pct("imatrix2", "q4g32")
  }), nor any q4
head next to the smaller KLs of 3 and 4 bits or ternary (${pct("gptq3", "q4g64")}, ${pct("gptq4", "q4g64")}, ${
    pct("ptqtpternary", "q4g64")
  }). A 3-bit head
is never the choice: about as fast as q4g64 on these heads (the LUT kernel's work grows with planes
times groups, not with bytes) at several times its KL. Hence recipe.ts's defaultHead: q4g64 for a
2-bit gptq body, q4g32 for 2-bit imatrix, q8g128 for everything else; \`--bits 8\` keeps its head q8
like the body (next to q8's tiny KL no smaller head is negligible, and f16 doubles the bytes).
Stored once: the tied table is kept in the head's encoding and looked up one row at a time
(runtime/format/pack-lut.ts lutRow); an untied copy (lm_head in the head's encoding, the table
q8 for the lookups) lowers KL by ${span(copyGain, 4)}, i.e. the lookups are a third of a q4 table's
cost, but costs the whole q8 table in memory, more than the 2-bit body of either real model: not
worth it. q4g128 (${ratios("q4g128")}x q8g32's time) cannot be measured here, stories260K's rows being 64
wide, and is not a default.`;

  const markdown = [
    lines.join("\n"),
    "",
    `The rule's pick (fastest with a cost below 2% of the body's KL): ${rule}.` +
    (picks.every((p) => p.pick === p.default) ? " quantizer/recipe.ts's defaultHead gives the same." : ""),
    "",
    "Stored once or as an untied copy (mean KL; the copy keeps the table q8 for the lookups):",
    "",
    "| body | head | tied table stored once | untied copy |",
    "|---|---|---|---|",
    ...copies,
    "",
    `Memory of the table at the real shapes (${encodingName(q4g64)} head, ${encodingName(q8)} lookup copy): ${memory.join("; ")}.`,
    "",
    findings,
  ].join("\n");
  return { markdown, picks };
}
