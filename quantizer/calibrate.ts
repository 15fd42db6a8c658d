/**
 * Whole-model calibration: runs the fp32 model (every weight in memory) over the calibration
 * tokens on the reference ops, recording each wanted linear's input statistics
 * (calibration-stats.ts). The quantizer itself streams layer by layer (calibrate-stream.ts);
 * this path is that one's oracle in the parity tests. Tokens are processed in windows of at
 * most `window` positions, each from an empty cache.
 */
import { createReferenceCache } from "../runtime/engine/kv-cache/reference-cache.ts";
import { checkTensors, resolveModel } from "../runtime/models/registry.ts";
import type { ModelSource } from "../runtime/models/types.ts";
import { createReferenceWeights, referenceOps } from "../runtime/ops/reference.ts";
import type { ForwardContext } from "../runtime/ops/types.ts";
import { accumulateXtxReference, createStatsRecorder, type RecordOptions } from "./calibration-stats.ts";
import type { LayerStats } from "./methods/types.ts";

export interface CalibrationOptions extends RecordOptions {
  /** Positions per forward pass (default: min(model context, 512)). */
  readonly window?: number;
}

/**
 * Runs the calibration tokens through the fp32 model; returns statistics by weight name.
 * Yields to the event loop between windows so a CLI's Ctrl-C handler can run.
 */
export async function collectCalibrationStats(
  source: ModelSource,
  tokens: readonly number[],
  options: CalibrationOptions,
): Promise<Map<string, LayerStats>> {
  const { arch, args } = resolveModel(source.config);
  checkTensors(arch, args, (name) => source.tensors.has(name), source.path);
  const window = calibrationWindow(options.window, args.maxPositions);
  const recorder = createStatsRecorder(referenceOps, options, accumulateXtxReference);
  const weights = createReferenceWeights(source);
  for (let start = 0; start < tokens.length; start += window) {
    const chunk = tokens.slice(start, start + window);
    const attention = createReferenceCache({
      numLayers: args.numLayers,
      numHeads: args.numHeads,
      numKvHeads: args.numKvHeads,
      headDim: args.headDim,
      contextLength: chunk.length,
      slidingWindow: args.slidingWindow,
    });
    const state = recorder.ops.createState(arch.stateLayout(args), chunk.length, chunk.length);
    arch.forward(args, { ops: recorder.ops, weights, attention, state } as unknown as ForwardContext, chunk, 0, { output: "hidden" });
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return recorder.finish();
}

/** Positions per calibration window: `requested` (default 512), capped by the model's context. */
export function calibrationWindow(requested: number | undefined, maxPositions: number): number {
  return Math.max(1, Math.min(requested ?? 512, maxPositions));
}
