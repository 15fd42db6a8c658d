/**
 * Calibration: runs the fp32 model over calibration tokens with a recording wrapper around
 * the reference ops, and accumulates per linear layer (by weight name) the statistics the
 * methods need: mean x² per input channel (llama.cpp's importance matrix) and H = 2·XᵀX / n
 * (GPTQ's Hessian). Layers fed the same input (q/k/v, gate/up) share one accumulator.
 * Tokens are processed in windows of at most `window` positions, each from an empty cache.
 */
import { createReferenceCache } from "../runtime/engine/kv-cache/reference-cache.ts";
import { checkTensors, resolveModel } from "../runtime/models/registry.ts";
import type { ModelSource } from "../runtime/models/types.ts";
import { createReferenceWeights, type DenseMatrix, referenceOps } from "../runtime/ops/reference.ts";
import type { Ops } from "../runtime/ops/types.ts";
import type { LayerStats } from "./methods/types.ts";

export interface CalibrationOptions {
  /** Weight names to collect for; others are skipped. */
  readonly wanted: (name: string) => boolean;
  /** Accumulate XᵀX (cols² doubles per distinct input) besides the importance vector. */
  readonly hessian: boolean;
  /** Positions per forward pass (default: min(model context, 512)). */
  readonly window?: number;
}

interface Accumulator {
  readonly cols: number;
  readonly squares: Float64Array;
  readonly xtx?: Float64Array;
  tokens: number;
}

function accumulate(acc: Accumulator, x: Float32Array, n: number): void {
  const { cols, squares, xtx } = acc;
  for (let t = 0; t < n; t++) {
    const row = t * cols;
    for (let i = 0; i < cols; i++) squares[i] += x[row + i] * x[row + i];
    if (xtx === undefined) continue;
    for (let i = 0; i < cols; i++) {
      const xi = x[row + i];
      if (xi === 0) continue;
      const base = i * cols;
      for (let j = i; j < cols; j++) xtx[base + j] += xi * x[row + j];
    }
  }
  acc.tokens += n;
}

function finish(acc: Accumulator): LayerStats {
  const n = Math.max(1, acc.tokens);
  const importance = acc.squares.map((s) => s / n);
  if (acc.xtx === undefined) return { importance };
  const { cols } = acc;
  const hessian = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) {
    for (let j = i; j < cols; j++) {
      const v = (2 * acc.xtx[i * cols + j]) / n;
      hessian[i * cols + j] = v;
      hessian[j * cols + i] = v;
    }
  }
  return { importance, hessian };
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
  const window = Math.max(1, Math.min(options.window ?? 512, args.maxPositions));
  const byName = new Map<string, Accumulator>();
  const byInput = new WeakMap<Float32Array, Accumulator>();
  const ops: Ops<DenseMatrix> = {
    ...referenceOps,
    linear(x, n, w, bias) {
      if (options.wanted(w.name)) {
        let acc = byName.get(w.name);
        const shared = byInput.get(x);
        if (acc === undefined) {
          acc = shared ?? {
            cols: w.cols,
            squares: new Float64Array(w.cols),
            xtx: options.hessian ? new Float64Array(w.cols * w.cols) : undefined,
            tokens: 0,
          };
          byName.set(w.name, acc);
        }
        if (shared !== acc) {
          accumulate(acc, x, n);
          byInput.set(x, acc);
        }
      }
      return referenceOps.linear(x, n, w, bias);
    },
  };
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
    arch.forward(args, { ops, weights, attention }, chunk, 0, { output: "hidden" });
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  const finished = new Map<Accumulator, LayerStats>();
  const out = new Map<string, LayerStats>();
  for (const [name, acc] of byName) {
    let stats = finished.get(acc);
    if (stats === undefined) {
      stats = finish(acc);
      finished.set(acc, stats);
    }
    out.set(name, stats);
  }
  return out;
}
