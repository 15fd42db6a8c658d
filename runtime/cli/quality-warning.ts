/**
 * Reads a packed file's stored quality report and says, in one line, when it describes a file
 * too damaged to trust: fewer than half of the next-token picks agreeing with fp32, or a
 * perplexity more than twice fp32's (llama.cpp's q2_K keeps about 71% top-1 agreement on an 8B
 * model). `quantize` prints it when it writes such a file, `generate`/`chat`/`serve` when they
 * load one.
 */

/** Below this share of top-1 agreement with fp32 a file is called poor. */
export const POOR_TOP1 = 0.5;
/** Above this perplexity ratio to fp32 a file is called poor. */
export const POOR_PPL_RATIO = 2;

/** One line naming the figures and the way out, or undefined when the report is fine or absent. */
export function qualityWarning(report: Readonly<Record<string, unknown>>): string | undefined {
  const top1 = typeof report.top1 === "number" ? report.top1 : undefined;
  const ratio = typeof report.ppl_ratio === "number" ? report.ppl_ratio : undefined;
  const lowAgreement = top1 !== undefined && top1 < POOR_TOP1;
  const highPerplexity = ratio !== undefined && ratio > POOR_PPL_RATIO;
  if (!lowAgreement && !highPerplexity) return undefined;
  const figures = [
    top1 === undefined ? undefined : `top-1 agreement with fp32 ${(100 * top1).toFixed(0)}%`,
    ratio === undefined ? undefined : `perplexity ratio ${ratio.toFixed(2)}`,
  ].filter((f) => f !== undefined).join(", ");
  return `the stored quality report says this file is poor (${figures}); quantise again with more bits (--bits 3 or 4) or --method gptq`;
}
