/**
 * Calibration that streams layer by layer ("sequential" calibration, as in GPTQ's reference
 * code, Frantar et al. 2022 §5): the calibration hidden states X (tokens, hidden) stay in
 * memory in windows; for layer l the caller hands in that layer's weights only, `collect`
 * runs the block over every window recording each linear's input statistics, and `advance`
 * moves X through the block, either with the fp32 weights (the outputs `collect` already
 * computed) or with the weights the caller quantised, so later layers calibrate on what the
 * quantised model will actually feed them. Peak memory is one layer's weights plus
 * activations plus that layer's statistics, instead of the whole fp32 model.
 *
 * Engines: "wasm" runs the matmuls and XᵀX on the SIMD128 kernels (dense-engine.ts);
 * "reference" uses the reference ops and float64 loops, and with fp32 inputs gives exactly the
 * statistics of the whole-model path (calibrate.ts).
 */
import { InvalidArgumentError, KernelError } from "../runtime/errors.ts";
import { createReferenceCache } from "../runtime/engine/kv-cache/reference-cache.ts";
import { checkTensors, resolveModel } from "../runtime/models/registry.ts";
import type { ModelSource } from "../runtime/models/types.ts";
import { type ArrayActivation, type ArrayOps, createArrayOps, denseLinearInto, type DenseMatrix, referenceOps, rmsNormInto } from "../runtime/ops/reference.ts";
import type { AttentionState, ForwardContext, MatrixHandle, WeightStore } from "../runtime/ops/types.ts";
import { calibrationWindow } from "./calibrate.ts";
import { accumulateXtxReference, createStatsRecorder, inputStats, type RecordOptions, type XtxUpdate } from "./calibration-stats.ts";
import { createDenseEngine, type DenseEngine, type EngineMatrix } from "./dense-engine.ts";
import type { LayerStats } from "./methods/types.ts";

export type CalibrationEngine = "wasm" | "reference";

export interface StreamingOptions extends RecordOptions {
  /** Positions per window, each from an empty cache (default: min(model context, 512)). */
  readonly window?: number;
  /** Default "wasm"; falls back to "reference" when the kernel binary cannot be loaded. */
  readonly engine?: CalibrationEngine;
  /** Threads for the wasm engine (default: every core). */
  readonly threads?: number;
}

/** fp32 values of a tensor of the current layer, by HF name. */
export type ReadTensor = (name: string) => Float32Array;

export interface StreamingCalibrator {
  readonly engine: CalibrationEngine;
  /** The wasm engine's GEMM, for methods that want it between collect and advance (GPTQ). */
  readonly dense: DenseEngine | undefined;
  /** Statistics of layer `layer`'s wanted linears, on the current hidden states. Layers go in order. */
  collect(layer: number, read: ReadTensor): Promise<Map<string, LayerStats>>;
  /**
   * Moves the hidden states through layer `layer`: with `read`, on those (quantised) weights;
   * without, on the fp32 weights `collect` just ran.
   */
  advance(layer: number, read?: ReadTensor): Promise<void>;
  /**
   * After the last layer: the final RMSNorm and lm_head (the tied embedding when absent) at
   * every position, (length, vocab) per window, as `forward` with allLogits gives them.
   */
  logits(read: ReadTensor): Float32Array[];
  /**
   * After the last layer: the output head's input statistics (the final RMSNorm's output at
   * every position), as `collect` records a layer's, for calibrated head quantisation.
   */
  headStats(read: ReadTensor): LayerStats;
  dispose(): Promise<void>;
}

/** A layer's weights from `read`, matrices converted by `toMatrix` once each. */
function layerStore<M extends MatrixHandle>(
  read: ReadTensor,
  shapes: (name: string) => readonly number[],
  toMatrix: (name: string, data: Float32Array, rows: number, cols: number) => M,
): WeightStore<M, Float32Array> {
  const matrices = new Map<string, M>();
  return {
    has: (name) => matrices.has(name) || shapes(name).length > 0,
    matrix(name) {
      let m = matrices.get(name);
      if (m === undefined) {
        const [rows, cols] = shapes(name);
        m = toMatrix(name, read(name), rows, cols);
        matrices.set(name, m);
      }
      return m;
    },
    vector: (name) => read(name),
  };
}

/** Attention over one window for a single layer (the cache holds only that layer). */
function windowAttention(args: ReturnType<typeof resolveModel>["args"], length: number): AttentionState<ArrayActivation> {
  const cache = createReferenceCache({
    numLayers: 1,
    numHeads: args.numHeads,
    numKvHeads: args.numKvHeads,
    headDim: args.headDim,
    contextLength: length,
    slidingWindow: args.slidingWindow,
  });
  return { attend: (input) => cache.attend({ ...input, layer: 0 }) };
}

async function loadEngine(options: StreamingOptions): Promise<DenseEngine | undefined> {
  if ((options.engine ?? "wasm") === "reference") return undefined;
  try {
    return await createDenseEngine({ threads: options.threads });
  } catch (error) {
    if (error instanceof KernelError && options.engine === undefined) return undefined;
    throw error;
  }
}

/** Embeds `tokens` (windows of the model's calibration window) and returns the calibrator. */
export async function createStreamingCalibrator(
  source: ModelSource,
  tokens: readonly number[],
  options: StreamingOptions,
): Promise<StreamingCalibrator> {
  const { arch, args } = resolveModel(source.config);
  checkTensors(arch, args, (name) => source.tensors.has(name), source.path);
  const window = calibrationWindow(options.window, args.maxPositions);
  const shapes = (name: string) => source.tensors.get(name)?.shape ?? [];

  // X: the hidden states entering the next layer, (length, hidden) per window.
  let hidden: Float32Array[] = [];
  {
    const entry = source.tensors.get("model.embed_tokens.weight")!;
    const table: DenseMatrix = { name: entry.name, rows: entry.shape[0], cols: entry.shape[1], data: entry.read() };
    for (let start = 0; start < tokens.length; start += window) {
      const ids = tokens.slice(start, start + window);
      const x = new Float32Array(ids.length * table.cols);
      ids.forEach((id, i) => x.set(table.data.subarray(id * table.cols, (id + 1) * table.cols), i * table.cols));
      hidden.push(x);
    }
  }
  let outputs: Float32Array[] | undefined;
  let collected = -1;

  const engine = await loadEngine(options);
  const xtxUpdate: XtxUpdate = engine === undefined ? accumulateXtxReference : engine.accumulateXtx;
  const engineOps: ArrayOps<EngineMatrix> | undefined = engine &&
    createArrayOps<EngineMatrix>((x, n, w, out) => out.set(engine.matmul(x, n, w)), () => {
      throw new InvalidArgumentError("embed", "the calibration engine embeds on the host");
    });

  function checkFinished(what: string): void {
    if (collected !== args.numLayers - 1 || outputs !== undefined) {
      throw new InvalidArgumentError("layer", `${what} need all ${args.numLayers} layers collected and advanced; ${collected + 1} were`);
    }
  }

  /** Runs layer `layer` over every window (X stays); returns the outputs. */
  async function run<M extends MatrixHandle>(layer: number, ops: ArrayOps<M>, weights: WeightStore<M, Float32Array>): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    for (const x of hidden) {
      const n = x.length / args.hiddenSize;
      const state = ops.createState(arch.stateLayout(args), n, n);
      ops.write(state.x, n, x);
      const ctx = { ops, weights, attention: windowAttention(args, n), state } as unknown as ForwardContext;
      arch.decoderLayer(args, ctx, layer, state.x, n, 0);
      out.push(ops.read(state.x, n));
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    return out;
  }

  /** Runs layer `layer` on the chosen engine, recording statistics when `record` is given. */
  async function runLayer(
    layer: number,
    read: ReadTensor,
    record?: RecordOptions,
  ): Promise<{ out: Float32Array[]; stats: Map<string, LayerStats> }> {
    if (engine === undefined || engineOps === undefined) {
      const weights = layerStore<DenseMatrix>(read, shapes, (name, data, rows, cols) => ({ name, rows, cols, data }));
      const recorder = record && createStatsRecorder(referenceOps, record, xtxUpdate);
      const out = await run(layer, recorder?.ops ?? referenceOps, weights);
      return { out, stats: recorder?.finish() ?? new Map() };
    }
    const mark = engine.mark();
    try {
      const weights = layerStore<EngineMatrix>(read, shapes, (name, data, rows, cols) => engine.upload(name, data, rows, cols));
      const recorder = record && createStatsRecorder(engineOps, record, xtxUpdate);
      const out = await run(layer, recorder?.ops ?? engineOps, weights);
      return { out, stats: recorder?.finish() ?? new Map() };
    } finally {
      engine.release(mark);
    }
  }

  return {
    engine: engine === undefined ? "reference" : "wasm",
    dense: engine,
    async collect(layer, read) {
      if (layer !== collected + 1) {
        throw new InvalidArgumentError("layer", `calibration layers go in order: expected layer ${collected + 1}, got ${layer}`);
      }
      const { out, stats } = await runLayer(layer, read, options);
      outputs = out;
      collected = layer;
      return stats;
    },
    async advance(layer, read) {
      if (layer !== collected || outputs === undefined) {
        throw new InvalidArgumentError("layer", `advance(${layer}) must follow collect(${layer})`);
      }
      if (read === undefined) {
        hidden = outputs;
        outputs = undefined;
      } else {
        outputs = undefined; // the fp32 outputs are not needed: free them before the rerun
        hidden = (await runLayer(layer, read)).out;
      }
    },
    logits(read) {
      checkFinished("logits");
      const head = args.tieWordEmbeddings && !source.tensors.has("lm_head.weight") ? "model.embed_tokens.weight" : "lm_head.weight";
      const [rows, cols] = shapes(head);
      const norm = read("model.norm.weight");
      const normed = (x: Float32Array) => rmsNormInto(new Float32Array(x.length), x, x.length / args.hiddenSize, norm, args.rmsNormEps);
      if (engine === undefined) {
        const w: DenseMatrix = { name: head, rows, cols, data: read(head) };
        return hidden.map((x) => {
          const n = x.length / args.hiddenSize;
          const out = new Float32Array(n * rows);
          denseLinearInto(normed(x), n, w, out);
          return out;
        });
      }
      const mark = engine.mark();
      try {
        const w = engine.upload(head, read(head), rows, cols);
        return hidden.map((x) => engine.matmul(normed(x), x.length / args.hiddenSize, w));
      } finally {
        engine.release(mark);
      }
    },
    headStats(read) {
      checkFinished("head statistics");
      const norm = read("model.norm.weight");
      const normed = hidden.map((x) => rmsNormInto(new Float32Array(x.length), x, x.length / args.hiddenSize, norm, args.rmsNormEps));
      return inputStats(normed, args.hiddenSize, options.hessian, xtxUpdate);
    },
    async dispose() {
      hidden = [];
      outputs = undefined;
      await engine?.dispose();
    },
  };
}
