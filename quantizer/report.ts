/**
 * The quality report (DESIGN.md "Quality, measured the same way everywhere"): the fp32 model
 * against the quantised one on the same token stream, windows of at most `window` positions
 * from an empty cache. Per position with a next token: KL(p_fp32 ‖ p_quant) of the next-token
 * distributions (mean, p99, max), top-1 agreement, and −log p(next) for both models, from
 * which the perplexities and their ratio follow. The quantizer streams both models layer by
 * layer (`compareModelsStreaming`); `compareModels` runs them whole on the reference engine.
 */
import { createReferenceEngine } from "../runtime/engine/reference-engine.ts";
import { resolveModel } from "../runtime/models/registry.ts";
import type { ModelSource } from "../runtime/models/types.ts";
import { type CalibrationEngine, createStreamingCalibrator } from "./calibrate-stream.ts";
import { formatGgufSummary, type GgufSummary } from "./gguf-summary.ts";

export interface QualityMetrics {
  readonly kl_mean: number;
  readonly kl_p99: number;
  readonly kl_max: number;
  readonly top1: number;
  readonly ppl_fp32: number;
  readonly ppl_quant: number;
  readonly ppl_ratio: number;
  /** Positions scored. */
  readonly positions: number;
}

/** Full report as printed and stored in the header. */
export interface QualityReport extends Partial<QualityMetrics> {
  /** Bits per weight of the quantised linear weights (packed bytes × 8 / weights). */
  readonly bpw: number;
  /** Bits per weight over every stored tensor of the model. */
  readonly bpw_overall: number;
  /** File size in bytes. */
  readonly bytes: number;
  /** Where the evaluation tokens came from ("built-in", a file name, "synthetic"). */
  readonly eval_text?: string;
  /** GGUF sources: which tensors kept their blocks and which were re-quantised (KL above is against the GGUF's dequantised weights). */
  readonly gguf?: GgufSummary;
}

/** log-softmax of logits[off..off+n) into out (float64). */
function logSoftmax(logits: Float32Array, off: number, n: number, out: Float64Array): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[off + i]);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[off + i] - max);
  const lse = max + Math.log(sum);
  for (let i = 0; i < n; i++) out[i] = logits[off + i] - lse;
}

function argmax(values: Float64Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** Per-position scores of the quantised model against the reference, window by window. */
function createScorer(vocab: number) {
  const lp = new Float64Array(vocab);
  const lq = new Float64Array(vocab);
  const kls: number[] = [];
  let agree = 0, nllP = 0, nllQ = 0;
  return {
    /** Scores every position of `chunk` that has a next token; pa/pb are (chunk.length, vocab). */
    add(chunk: readonly number[], pa: Float32Array, pb: Float32Array): void {
      for (let t = 0; t + 1 < chunk.length; t++) {
        logSoftmax(pa, t * vocab, vocab, lp);
        logSoftmax(pb, t * vocab, vocab, lq);
        let kl = 0;
        for (let i = 0; i < vocab; i++) {
          const p = Math.exp(lp[i]);
          if (p > 0) kl += p * (lp[i] - lq[i]);
        }
        kls.push(Math.max(0, kl));
        if (argmax(lp) === argmax(lq)) agree++;
        nllP -= lp[chunk[t + 1]];
        nllQ -= lq[chunk[t + 1]];
      }
    },
    metrics(): QualityMetrics {
      const n = kls.length;
      const sorted = [...kls].sort((x, y) => x - y);
      const pplFp = Math.exp(nllP / n);
      const pplQ = Math.exp(nllQ / n);
      return {
        kl_mean: kls.reduce((s, v) => s + v, 0) / n,
        kl_p99: sorted[Math.max(0, Math.ceil(0.99 * n) - 1)],
        kl_max: sorted[n - 1],
        top1: agree / n,
        ppl_fp32: pplFp,
        ppl_quant: pplQ,
        ppl_ratio: pplQ / pplFp,
        positions: n,
      };
    },
  };
}

function reportWindow(requested: number | undefined, maxPositions: number): number {
  return Math.max(2, Math.min(requested ?? 512, maxPositions));
}

/**
 * Compares `quantized` against `reference` on `tokens` (at least 2) with both whole models on
 * the reference engine: the oracle of `compareModelsStreaming`.
 */
export function compareModels(
  reference: ModelSource,
  quantized: ModelSource,
  tokens: readonly number[],
  options: { window?: number } = {},
): QualityMetrics {
  const { args } = resolveModel(reference.config);
  const window = reportWindow(options.window, args.maxPositions);
  const a = createReferenceEngine(reference, { contextLength: window });
  const b = createReferenceEngine(quantized, { contextLength: window });
  const scorer = createScorer(a.args.vocabSize);
  for (let start = 0; start + 1 < tokens.length; start += window) {
    const chunk = tokens.slice(start, start + window);
    if (chunk.length < 2) break;
    a.reset();
    b.reset();
    scorer.add(chunk, a.forward(chunk, { allLogits: true }), b.forward(chunk, { allLogits: true }));
  }
  return scorer.metrics();
}

/**
 * The same metrics with each model streamed layer by layer (calibrate-stream.ts: one layer's
 * weights in memory at a time, matmuls on the WASM kernels), so a model larger than memory
 * in fp32 can be evaluated.
 */
export async function compareModelsStreaming(
  reference: ModelSource,
  quantized: ModelSource,
  tokens: readonly number[],
  options: { window?: number; engine?: CalibrationEngine; threads?: number } = {},
): Promise<QualityMetrics> {
  const { args } = resolveModel(reference.config);
  const window = reportWindow(options.window, args.maxPositions);
  const logits = async (model: ModelSource) => {
    const read = (name: string) => model.tensors.get(name)!.read();
    const runner = await createStreamingCalibrator(model, tokens, { wanted: () => false, hessian: false, window, engine: options.engine, threads: options.threads });
    try {
      for (let l = 0; l < args.numLayers; l++) {
        await runner.collect(l, read);
        await runner.advance(l);
      }
      return runner.logits(read);
    } finally {
      await runner.dispose();
    }
  };
  const pa = await logits(reference);
  const pb = await logits(quantized);
  const scorer = createScorer(args.vocabSize);
  pa.forEach((a, w) => scorer.add(tokens.slice(w * window, (w + 1) * window), a, pb[w]));
  return scorer.metrics();
}

function kib(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(2)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** A human-readable multi-line summary. */
export function formatReport(r: QualityReport): string {
  const lines: string[] = [];
  if (r.kl_mean !== undefined) {
    lines.push(
      `KL divergence  mean ${r.kl_mean.toFixed(5)}  p99 ${r.kl_p99!.toFixed(5)}  max ${r.kl_max!.toFixed(5)}  (${r.positions} positions)`,
      `top-1 agree    ${(100 * r.top1!).toFixed(2)}%`,
      `perplexity     fp32 ${r.ppl_fp32!.toFixed(3)}  quantised ${r.ppl_quant!.toFixed(3)}  ratio ${r.ppl_ratio!.toFixed(4)}`,
    );
  } else {
    lines.push("quality        not measured (--no-report)");
  }
  lines.push(`bits/weight    ${r.bpw.toFixed(3)} (linear layers), ${r.bpw_overall.toFixed(3)} overall`, `file size      ${kib(r.bytes)} (${r.bytes} bytes)`);
  if (r.gguf !== undefined) lines.push(...formatGgufSummary(r.gguf));
  return lines.join("\n");
}
