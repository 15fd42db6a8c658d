#!/usr/bin/env bun
/**
 * Quantisation quality on stories260K (../shared/models/stories260K): every method at every
 * bit width it supports (rtn/imatrix/gptq/hlq at 4, 3, 2 bits; absmean/ptqtp ternary), plus
 * the embedding-precision comparison behind the q8 default, with the built-in calibration and
 * evaluation texts. Writes bench/results/quality.md. Run: `bun bench/quality.ts`.
 */
import { writeFileSync } from "node:fs";
import { importModel } from "../quantizer/import/index.ts";
import { quantizeModel, type QuantizeOptions } from "../quantizer/quantize.ts";
import type { QualityReport } from "../quantizer/report.ts";

const MODELS = new URL("../../shared/models/stories260K/", import.meta.url).pathname;
const OUT = new URL("./results/quality.md", import.meta.url).pathname;

const source = await importModel(`${MODELS}stories260K.bin`, { tokenizer: `${MODELS}tok512.bin` });
const rows: string[] = [];
const fmt = (r: QualityReport, label: string, seconds: number) =>
  `| ${label} | ${r.kl_mean!.toFixed(4)} | ${r.kl_p99!.toFixed(3)} | ${r.kl_max!.toFixed(3)} | ${(100 * r.top1!).toFixed(1)}% | ` +
  `${r.ppl_quant!.toFixed(3)} | ${r.ppl_ratio!.toFixed(3)} | ${r.bpw.toFixed(2)} | ${r.bpw_overall.toFixed(2)} | ${r.bytes} | ${seconds.toFixed(1)} |`;

async function measure(label: string, options: QuantizeOptions): Promise<QualityReport> {
  const start = performance.now();
  const { report } = await quantizeModel(source, options);
  const line = fmt(report, label, (performance.now() - start) / 1000);
  console.log(line);
  rows.push(line);
  return report;
}

const header = "| recipe | KL mean | KL p99 | KL max | top-1 | ppl | ppl ratio | bpw (linear) | bpw (all) | bytes | s |\n|---|---|---|---|---|---|---|---|---|---|---|";
let ppl = 0;
for (const bits of [4, 3, 2] as const) {
  for (const method of ["rtn", "imatrix", "gptq", "hlq"] as const) {
    ppl = (await measure(`${method} ${bits}-bit g32`, { bits, method })).ppl_fp32!;
    if (method === "gptq") await measure(`gptq ${bits}-bit g32, no refit`, { bits, method, gptqRefit: false });
  }
}
for (const method of ["absmean", "ptqtp"] as const) await measure(`${method} ternary g32`, { bits: "ternary", method });
await measure("q8 (--bits 8) g32", { bits: 8 });
const main = rows.splice(0);
for (const embeddings of ["q8", "f16", "f32"] as const) await measure(`rtn 4-bit, embeddings ${embeddings}`, { bits: 4, embeddings });
for (const embeddings of ["q8", "f16"] as const) await measure(`rtn 2-bit, embeddings ${embeddings}`, { bits: 2, embeddings });
const emb = rows.splice(0);

writeFileSync(OUT, `# Quantisation quality: stories260K

Produced by \`bun bench/quality.ts\` (deterministic: rerunning gives the same numbers). Model:
stories260K (llama, hidden 64, intermediate 172, 5 layers, 8/4 heads, vocab 512, tied
embeddings); fp32 perplexity on the evaluation text ${ppl.toFixed(3)}. Calibration: the built-in
\`quantizer/calibration-default.txt\`; evaluation: the separate \`quantizer/evaluation-default.txt\`
(1024 tokens, windows of 512, 1022 scored positions). Metrics as in DESIGN.md: KL(p_fp32 ‖ p_quant)
of next-token distributions, top-1 agreement, perplexity of the quantised model and its ratio
to fp32; bpw = packed bytes × 8 / weights (linear = the layer projections; all = every tensor
but the XQuant factors); bytes = the whole file (tokenizer, header and XQuant factors included).

Every recipe keeps the embedding (tied lm_head) in q8 and the five \`mlp.down_proj\` matrices in
q8: their 172 input columns are not a multiple of any LUT group (32/64/128), which is the
quantizer's width policy (recipe.ts). That is why the linear bpw reads 4.6 at 2 bits: 2-bit
g32 zero-point alone is 3.0 bpw (2 index bits + two f16 parameters per 32 weights), and
per-plane HLQ stores one more f16 per plane.

## Methods

${header}
${main.join("\n")}

Findings: gptq (act-order, static groups) is the best bit-plane method at every width, on mean KL,
top-1 and perplexity. After its sweep, gptq refits every group's scale and zero point to the
layer Hessian with the codes fixed (one block-Jacobi step per row, kept only where the row's
output error drops; quantizer/gptq-refit.ts): against the "no refit" rows (\`gptqRefit: false\`)
mean KL goes 0.0526 → 0.0510 at 4 bits, 0.2565 → 0.2389 at 3 and 1.2627 → 1.2038 at 2, and
the 2-bit perplexity ratio 2.693 → 2.477; top-1 moves by about a point either way, and the
tails do not all follow (KL p99 0.419 → 0.465 at 4 bits, KL max 8.76 → 9.72 at 2). More
(Gauss-Seidel) sweeps fit the calibration Hessian better but raised the 2-bit KL in a
prototype, so one step it is. imatrix beats rtn on mean KL at 2, 3 and 4 bits (with the square-root
importance weighting, see quantizer/methods/imatrix.ts), narrowly at 4 bits: on this model
it is a small gain. At 2 bits the calibration of each layer sees the outputs of the already
quantised layers before it (sequential calibration, quantizer/calibrate-stream.ts), which
lowered gptq's mean KL (before the refit) from 1.336 to 1.263 and imatrix's from 1.620 to 1.597; at 3 and 4 bits
fp32 inputs measured slightly better and stay the default. hlq beats rtn on KL
at 2-4 bits but pays 0.4-1.2 extra bpw for its per-plane scales; at equal file size gptq is
the better choice. ptqtp's two trit-planes are far better than absmean's one (BitNet absmean
is meant for models trained ternary; this one was not), at the size of a 4-bit file.

At 4 bits, greedy decoding from BOS follows fp32 for 44 tokens with gptq (with or without the
refit) and 20 with rtn,
imatrix and hlq (q8: 100+). fp32's own top-1/top-2 logit margin at the 21st token is 0.13 and
lies between 0.20 and 0.25 around tokens 28-49, so 4-bit noise on this 260K-parameter model
flips one of these near-ties; test/quantizer/stories260k-quality.test.ts asserts 40+ tokens for
gptq and 20+ for rtn. The issue's "50 tokens at 4 bits" is not reached. How long the greedy
prefix lasts does not follow the quantisation error: with gptq at 4 bits (before the refit), keeping the o_proj
matrices in q8 (mean KL 0.0502) follows fp32 for 86 tokens, keeping k_proj (0.0404) or up_proj
(0.0356) in q8 for only 20, so no default was chosen by this count (one-off \`/tmp\` probe
through quantizeModel and the reference engine, not part of this script).

## Embedding / lm_head precision

${header}
${emb.join("\n")}

q8 costs nothing measurable against f16 or f32 here (KL equal to 4 decimals) and saves 30 KB
(half the embedding, about 10% of the 4-bit file): q8 (group = --group) is the default for \`model.embed_tokens.weight\` and
\`lm_head.weight\`; \`--embeddings f16\` or \`--keep lm_head.weight=f16\` overrides it.
`);
console.log(`wrote ${OUT}`);
