#!/usr/bin/env bun
/**
 * Quantisation quality on stories260K (../shared/models/stories260K): every method at every
 * bit width it supports (rtn/imatrix/gptq/hlq at 4, 3, 2 bits; absmean/ptqtp ternary), plus
 * the output-head comparison behind the head defaults (./quality-heads.ts, with the decode-step
 * times of bench/results/heads.json), with the built-in calibration and evaluation texts.
 * Writes bench/results/quality.md. Run: `bun bench/quality.ts`.
 */
import { writeFileSync } from "node:fs";
import { importModel, packedSource } from "../runtime/import/index.ts";
import { quantizeModel, type QuantizeOptions } from "../quantizer/quantize.ts";
import type { QualityReport } from "../quantizer/report.ts";
import { generateTokens } from "../runtime/engine/generate-tokens.ts";
import { createReferenceEngine } from "../runtime/engine/reference-engine.ts";
import { createSampler } from "../runtime/engine/sampler.ts";
import type { ModelSource } from "../runtime/models/types.ts";
import { HEADS_INTRO, measureHeads } from "./quality-heads.ts";

const MODELS = new URL("../../shared/models/stories260K/", import.meta.url).pathname;
const OUT = new URL("./results/quality.md", import.meta.url).pathname;

const source = await importModel(`${MODELS}stories260K.bin`, { tokenizer: `${MODELS}tok512.bin` });
/** Greedy decoding from BOS: how many of the first GREEDY tokens equal fp32's. */
const GREEDY = 120;
const greedy = (model: ModelSource) =>
  [...generateTokens(createReferenceEngine(model), [1], { maxTokens: GREEDY, sampler: createSampler({ temperature: 0 }) })];
const fp32Greedy = greedy(source);
const rows: string[] = [];
const fmt = (r: QualityReport, label: string, follows: number, seconds: number) =>
  `| ${label} | ${r.kl_mean!.toFixed(4)} | ${r.kl_p99!.toFixed(3)} | ${r.kl_max!.toFixed(3)} | ${(100 * r.top1!).toFixed(1)}% | ` +
  `${r.ppl_quant!.toFixed(3)} | ${r.ppl_ratio!.toFixed(3)} | ${follows === GREEDY ? `${GREEDY}+` : follows} | ${r.bpw.toFixed(2)} | ${r.bpw_overall.toFixed(2)} | ${r.bytes} | ${seconds.toFixed(1)} |`;

interface Measured {
  readonly report: QualityReport;
  /** Greedy tokens from BOS equal to fp32's (of GREEDY). */
  readonly follows: number;
}

async function measure(label: string, options: QuantizeOptions): Promise<Measured> {
  const start = performance.now();
  const result = await quantizeModel(source, options);
  const seconds = (performance.now() - start) / 1000;
  const tokens = greedy(packedSource("memory", result.header, result.tensors.map((t) => ({ ...t, bytes: () => t.bytes }))));
  let follows = 0;
  while (follows < GREEDY && tokens[follows] === fp32Greedy[follows]) follows++;
  const line = fmt(result.report, label, follows, seconds);
  console.log(line);
  rows.push(line);
  return { report: result.report, follows };
}

const header = "| recipe | KL mean | KL p99 | KL max | top-1 | ppl | ppl ratio | greedy | bpw (linear) | bpw (all) | bytes | s |\n|---|---|---|---|---|---|---|---|---|---|---|---|";
let ppl = 0;
const gptq: Record<string, Measured> = {};
for (const bits of [4, 3, 2] as const) {
  for (const method of ["rtn", "imatrix", "gptq", "hlq"] as const) {
    const m = await measure(`${method} ${bits}-bit g32`, { bits, method });
    ppl = m.report.ppl_fp32!;
    if (method === "gptq") {
      gptq[`${bits}`] = m;
      gptq[`${bits} one round`] = await measure(`gptq ${bits}-bit g32, 1 round`, { bits, method, gptqRounds: 1 });
      gptq[`${bits} no refit`] = await measure(`gptq ${bits}-bit g32, no refit`, { bits, method, gptqRefit: false });
    }
  }
}
const kl = (key: string) => gptq[key].report.kl_mean!.toFixed(4);
const follows = (key: string) => gptq[key].follows;
for (const method of ["absmean", "ptqtp"] as const) await measure(`${method} ternary g32`, { bits: "ternary", method });
await measure("q8 (--bits 8) g32", { bits: 8 });
const main = rows.splice(0);
const heads = await measureHeads(source, (line) => console.log(line));

writeFileSync(OUT, `# Quantisation quality: stories260K

Produced by \`bun bench/quality.ts\` (deterministic: rerunning gives the same numbers). Model:
stories260K (llama, hidden 64, intermediate 172, 5 layers, 8/4 heads, vocab 512, tied
embeddings); fp32 perplexity on the evaluation text ${ppl.toFixed(3)}. Calibration: the built-in
\`quantizer/calibration-default.txt\`; evaluation: the separate \`quantizer/evaluation-default.txt\`
(1024 tokens, windows of 512, 1022 scored positions). Metrics as in DESIGN.md: KL(p_fp32 ‖ p_quant)
of next-token distributions, top-1 agreement, perplexity of the quantised model and its ratio
to fp32; bpw = packed bytes × 8 / weights (linear = the layer projections; all = every tensor
but the XQuant factors); bytes = the whole file (tokenizer, header and XQuant factors included);
greedy = how many of the first ${GREEDY} tokens of greedy decoding from BOS (reference engine)
equal fp32's.

Every recipe stores the embedding table (tied to the head, stored once) in its default head
encoding: q4 groups of 64 for 2-bit gptq and of 32 for 2-bit imatrix (calibrated on the final
norm's output), q8 groups of 128 otherwise and of 32 at \`--bits 8\` (see "Output head" below;
before issue 13 every recipe kept it in q8 groups of 32), and keeps the five
\`mlp.down_proj\` matrices in q8: their 172 input columns are not a multiple of any LUT group
(32/64/128), which is the quantizer's width policy (recipe.ts). That is why the linear bpw
reads 4.6 at 2 bits: 2-bit g32 zero-point alone is 3.0 bpw (2 index bits + two f16 parameters
per 32 weights), and per-plane HLQ stores one more f16 per plane.

## Methods

${header}
${main.join("\n")}

Findings: gptq (act-order, static groups) is the best bit-plane method at every width, on mean KL,
top-1 and perplexity. After its sweep, gptq refits every group's scale and zero point to the
layer Hessian with the codes fixed (one block-Jacobi step per row, kept only where the row's
output error drops; quantizer/gptq-refit.ts), then sweeps again from the refitted parameters and
refits once more, each row keeping the round with the lower layer error (\`gptqRounds\`, default
2; quantizer/methods/gptq.ts). Against one round (the "1 round" rows) the second round takes
mean KL ${kl("4 one round")} → ${kl("4")} at 4 bits, ${kl("3 one round")} → ${kl("3")} at 3 and ${kl("2 one round")} → ${kl("2")} at 2;
the refit itself (against the "no refit" rows, \`gptqRefit: false\`) took ${kl("4 no refit")} → ${kl("4 one round")},
${kl("3 no refit")} → ${kl("3 one round")} and ${kl("2 no refit")} → ${kl("2 one round")}. Top-1 moves by about a point either way and the tails
do not all follow. More Gauss-Seidel sweeps inside one refit fit the calibration Hessian better
but raised the 2-bit KL in a prototype, and a third round was not consistently better (below).
imatrix beats rtn on mean KL at 2, 3 and 4 bits (with the square-root
importance weighting, see quantizer/methods/imatrix.ts), narrowly at 4 bits: on this model
it is a small gain. At 2 bits the calibration of each layer sees the outputs of the already
quantised layers before it (sequential calibration, quantizer/calibrate-stream.ts), which
lowered gptq's mean KL (one round, before the refit) from 1.336 to 1.263 and imatrix's from 1.620 to 1.597; at 3 and 4 bits
fp32 inputs measured slightly better and stay the default. hlq beats rtn on KL
at 2-4 bits but pays 0.4-1.2 extra bpw for its per-plane scales; at equal file size gptq is
the better choice. ptqtp's two trit-planes are far better than absmean's one (BitNet absmean
is meant for models trained ternary; this one was not), at the size of a 4-bit file.

## 4 bits: greedy agreement, and what was tried

With these defaults greedy decoding from BOS follows fp32 for ${follows("4")} tokens with gptq at 4 bits
(one round: ${follows("4 one round")}; no refit: ${follows("4 no refit")}); see the greedy column for the other methods. The issue
asks for 50. fp32's own top-1/top-2 logit margin at the 21st token is 0.13 and lies between
0.20 and 0.25 around tokens 28-49, so the count is decided by whether 4-bit noise flips one of
these near-ties, and it does not follow the quantisation error: in the variants below it
ranges from 20 to 96 with no relation to mean KL (the lowest 4-bit KL, 0.0443, reached 64; the
second lowest, 0.0460, only 20). With the smaller calibration stream of
test/quantizer/stories260k-quality.test.ts (1024 tokens) the default gptq follows fp32 for 44
tokens, and that test asserts 40+. So the 86 here is measured, but it is not evidence of a
margin: no default was chosen by this count.

Every 4-bit variant tried (gptq, one-off \`/tmp\` probes through quantizeModel and the reference
engine, not part of this script). "KL" is this report's mean KL (evaluation text, first 1024
tokens); "held-out KL" is over all 1588 tokens of the evaluation text plus a further 1963
tokens of mixed stories and prose written for this check (not committed), 3551 positions, to
see past the noise of 1022 positions. Calibration is the built-in text (2605 tokens) unless
said. Extra calibration texts were written for the test (new children's stories, 13.5 KB;
everyday prose, 5.1 KB), none of it from the evaluation text.

| variant | KL 4-bit | KL 3-bit | KL 2-bit | held-out KL 4 / 3 / 2 | greedy (4-bit) |
|---|---|---|---|---|---|
| one round (the previous default) | 0.0510 | 0.2389 | 1.2038 | 0.0490 / 0.2277 / 1.2331 | 44 |
| **two rounds (default now)** | 0.0497 | 0.2316 | 1.1530 | 0.0477 / 0.2195 / 1.1983 | 86 |
| three rounds | 0.0495 | 0.2260 | 1.1049 | 0.0475 / 0.2167 / 1.1689 | 96 |
| five rounds | 0.0492 | 0.2235 | 1.1679 | 0.0475 / 0.2164 / 1.1951 | 64 |
| damping 0.001 (default 0.01), one round | 0.0511 | 0.2426 | 1.1856 | | 44 |
| damping 0.003, one round | 0.0517 | 0.2424 | 1.1941 | | 44 |
| damping 0.03, one round | 0.0510 | 0.2311 | 1.1912 | 0.0483 / 0.2271 / 1.2094 | 44 |
| damping 0.1, one round | 0.0519 | 0.2343 | 1.2291 | | 44 |
| no act-order (static groups, natural column order), one round | 0.0531 | 0.2517 | 1.2277 | | 39 |
| static groups fitted with GPTQ's own error weights R_ii² (1/[H⁻¹]_ii over the columns left) instead of H_ii, one round | 0.0460 | 0.2239 | 1.1889 | 0.0480 / 0.2210 / 1.2097 | 20 |
| R_ii² weights, two rounds | 0.0443 | 0.2162 | 1.1424 | 0.0457 / 0.2129 / 1.1723 | 64 |
| second round from a new clip/scale search on the values the first sweep quantised (H_ii weights) | 0.0513 | 0.2405 | 1.1937 | 0.0487 / 0.2304 / 1.2172 | 44 |
| the same with R_ii² weights | 0.0511 | 0.2383 | 1.2305 | 0.0490 / 0.2279 / 1.2425 | 44 |
| sequential calibration at 4 and 3 bits, two rounds | 0.0526 | 0.2278 | (default) | 0.0480 / 0.2131 / | 40 |
| calibration: built-in + 13.5 KB stories (9393 tokens, cap raised), one round | 0.0490 | 0.2320 | 1.1819 | 0.0463 / 0.2251 / 1.1956 | 64 |
| the same, two rounds | 0.0476 | 0.2263 | 1.1451 | 0.0451 / 0.2176 / 1.1671 | 86 |
| the same, three rounds | 0.0482 | 0.2350 | 1.1929 | 0.0444 / 0.2167 / 1.1724 | 48 |
| the same, R_ii² weights, one round | 0.0490 | 0.2265 | 1.1834 | 0.0468 / 0.2265 / 1.1774 | 20 |
| the same, R_ii² weights, two rounds | 0.0449 | 0.2330 | 1.1983 | 0.0461 / 0.2257 / 1.1898 | 20 |
| the same text capped at the default 4096 tokens, one round | 0.0512 | 0.2546 | 1.1882 | | 73 |
| calibration: the 13.5 KB stories only (6785 tokens), one round | 0.0526 | 0.2513 | 1.2507 | 0.0474 / 0.2401 / 1.2341 | 73 |
| calibration: built-in + 7 KB stories + 5.1 KB prose (8970 tokens), one round | 0.0500 | 0.2346 | 1.2371 | 0.0460 / 0.2217 / 1.2085 | 44 |
| calibration: built-in + all 18.6 KB new text (12251 tokens), one round | 0.0484 | 0.2539 | 1.2478 | 0.0453 / 0.2365 / 1.2276 | 44 |
| the same, two rounds | 0.0463 | 0.2510 | 1.2363 | 0.0438 / 0.2269 / 1.2136 | 40 |
| the same, three rounds | 0.0449 | 0.2417 | 1.2050 | 0.0434 / 0.2242 / 1.1946 | 40 |
| the same, R_ii² weights, one round | 0.0497 | 0.2243 | 1.2370 | 0.0475 / 0.2285 / 1.2317 | 86 |
| the same, R_ii² weights, two rounds | 0.0493 | 0.2268 | 1.2278 | 0.0455 / 0.2264 / 1.1909 | 30 |
| the test's 1024 calibration tokens, one round | 0.0502 | 0.2338 | 1.1415 | 0.0482 / 0.2302 / 1.1981 | 44 |
| the test's 1024 calibration tokens, two rounds | 0.0507 | 0.2286 | 1.1488 | 0.0479 / 0.2210 / 1.1537 | 44 |

What held up: the second round lowered mean KL at every width on both evaluation sets with each
of the four calibration streams, except at 4 and 2 bits on the report's 1022 positions with the
1024-token stream (0.0502 → 0.0507, 1.1415 → 1.1488; held-out lower there too): 22 of 24
comparisons. It is coordinate descent on the objective GPTQ already minimises (codes for given
parameters, then parameters for given codes, each row keeping its better round), so the layer
error cannot rise, and it changes nothing in the file format. It costs one more sweep and refit
per matrix (the factor is shared): on a 2048×2048 layer with a cached factor (2 threads, machine
shared with other jobs) one round took 5-7 s and two 14-18 s. A third round lowered KL further
with two of the calibration streams but raised it at every width on the report's positions
with the 9393-token one, and five rounds gave back part of the 2-bit gain: more rounds fit the
calibration Hessian better without a steady gain in KL, so two it is, the cheapest setting that
held up. What did not hold up:
the damping fraction (no consistent direction between 0.001 and 0.1); R_ii² group weights,
which look best at the built-in calibration (4-bit KL 0.0443 with two rounds) but lose to two
plain rounds at 3 and 2 bits with the 9393-token stream and at 4 bits with the 12251-token one;
a fresh clip search for the second round. More calibration text moves
the numbers by as much as the second round does, in either direction depending on what the text
is (the 12251-token stream lowered 4-bit KL and raised 3-bit KL): on this 64-wide model 2605
tokens already estimate the 64×64 Hessians, and what the text is matters more than how long,
so the built-in text was left as it is. Sequential calibration at 3 bits now measures slightly
better with two rounds (0.2316 → 0.2278) but worse at 4 bits (0.0497 → 0.0526); one calibration
stream is not enough to move the 3-bit default.

## Output head

${HEADS_INTRO}

${heads.markdown}
`);
console.log(`wrote ${OUT}`);
