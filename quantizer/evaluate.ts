/**
 * `quantize --report`: the quality report of an existing crumb checkpoint against its source
 * model (KL, top-1, perplexity from report.ts; bits per weight from the tensor table; the
 * file's size). The checkpoint's tensors dequantise on read (import/crumb.ts), one layer at a
 * time (the report streams both models).
 */
import { statSync } from "node:fs";
import { openCheckpoint } from "../runtime/format/file.ts";
import type { ModelSource } from "../runtime/models/types.ts";
import { importCrumb } from "../runtime/import/crumb.ts";
import { compareModelsStreaming, type QualityReport } from "./report.ts";
import { defaultEvaluationText, tokenStream } from "./texts.ts";

export interface EvaluateOptions {
  readonly evaluation?: { readonly text: string; readonly label: string };
  readonly evaluationTokens?: number;
}

export async function evaluateCheckpoint(path: string, reference: ModelSource, options: EvaluateOptions = {}): Promise<QualityReport> {
  const file = await openCheckpoint(path);
  let linearBytes = 0, linearCount = 0, allBytes = 0, allCount = 0;
  try {
    for (const t of file.tensors) {
      if (t.name.includes(".xquant_")) continue;
      const count = t.shape.reduce((a, b) => a * b, 1);
      allBytes += t.byteLength;
      allCount += count;
      if (t.shape.length === 2 && t.name.startsWith("model.layers.") && t.name.endsWith(".weight")) {
        linearBytes += t.byteLength;
        linearCount += count;
      }
    }
  } finally {
    await file.close();
  }
  const quantized = await importCrumb(path);
  const evaluation = options.evaluation ?? { text: defaultEvaluationText(), label: "built-in" };
  const tokens = tokenStream(reference, evaluation.text, options.evaluationTokens ?? 1024, 2);
  return {
    ...(await compareModelsStreaming(reference, quantized, tokens)),
    bpw: (8 * linearBytes) / Math.max(1, linearCount),
    bpw_overall: (8 * allBytes) / Math.max(1, allCount),
    bytes: statSync(path).size,
    eval_text: evaluation.label,
  };
}
