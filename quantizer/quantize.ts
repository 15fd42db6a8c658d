/**
 * The quantizer pipeline: plan every tensor (recipe.ts), then read, quantise and pack the
 * tensors one at a time (only the packed bytes are kept). When a method needs activations,
 * calibration streams layer by layer (calibrate-stream.ts) and is interleaved with
 * quantisation: the tensors outside the layers first, then per layer its fp32 weights are
 * read, its statistics collected, its tensors quantised and the calibration states moved on
 * through the quantised layer, so peak memory is one layer rather than the fp32 model; a
 * calibrated output head comes last, on the final norm's output (recipe.ts, HeadSpec). Then
 * the XQuant SVD factors for grouped-query models (runtime/engine/kv-cache/xquant-factors.ts), the quality report against the
 * fp32 model (report.ts, also streamed layer by layer) and the checkpoint header.
 * Packed tensors go to a TensorSpool as soon as they exist (tensor-spool.ts): in memory by
 * default, or a temporary file (output-file.ts) so the packed model is never all in memory.
 * Deterministic: the same source and options give the same bytes (tensors keep the source's
 * order whatever order they were quantised in).
 */
import { FormatError, InvalidArgumentError } from "../runtime/errors.ts";
import { type Encoding, encodingName } from "../runtime/format/encoding.ts";
import type { CheckpointHeader } from "../runtime/format/header.ts";
import { packF16, packF32 } from "../runtime/format/pack-f16.ts";
import { dequantize } from "../runtime/format/pack-dequantize.ts";
import { planCheckpointLayout } from "../runtime/format/writer.ts";
import { checkTensors, resolveModel } from "../runtime/models/registry.ts";
import type { ModelSource, TensorEntry } from "../runtime/models/types.ts";
import { xxhash32 } from "../runtime/format/checksum.ts";
import { type CalibrationEngine, createStreamingCalibrator } from "./calibrate-stream.ts";
import { matrixDims, packedSource } from "../runtime/import/crumb.ts";
import { ggmlBlocksOf } from "../runtime/import/gguf-model.ts";
import { blockFormat } from "../runtime/import/ggml-dequantize.ts";
import { type GgufTensorRecord, summarizeGguf } from "./gguf-summary.ts";
import { transcodeTensor } from "./gguf-transcode.ts";
import type { DenseEngine } from "./dense-engine.ts";
import { METHODS, type MethodName, packQuantized, quantizeGptq, quantizeQ8 } from "./methods/index.ts";
import { GPTQ_ROUNDS, type GptqOptions } from "./methods/gptq.ts";
import { quantizeInRowChunks } from "./methods/row-chunks.ts";
import type { LayerStats, LutGroup } from "./methods/types.ts";
import { type Bits, checkRecipe, defaultHead, defaultMethod, type HeadSpec, headName, type KeepRule, planTensor, type Recipe, type TensorAction } from "./recipe.ts";
import { compareModelsStreaming, type QualityReport } from "./report.ts";
import { createMemorySpool, type StoredTensor, type TensorSpool } from "./tensor-spool.ts";
import { defaultCalibrationText, defaultEvaluationText, tokenStream } from "./texts.ts";
import { xquantFactors, xquantNames } from "../runtime/engine/kv-cache/xquant-factors.ts";

export interface QuantizeOptions {
  readonly bits?: Bits;
  readonly group?: LutGroup;
  readonly method?: MethodName;
  /** An untied token embedding (default q8); a tied table follows `head` (see recipe.ts). */
  readonly embeddings?: "f32" | "f16" | "q8";
  /** The output head (lm_head or a tied embedding table); default defaultHead(bits, method). */
  readonly head?: HeadSpec;
  readonly keep?: readonly KeepRule[];
  /** Calibration text and its label for the header (default: the built-in text). */
  readonly calibration?: { readonly text: string; readonly label: string };
  readonly evaluation?: { readonly text: string; readonly label: string };
  /** Token caps (defaults 4096 and 1024). */
  readonly calibrationTokens?: number;
  readonly evaluationTokens?: number;
  /** Measure KL/top-1/perplexity (default true); bpw and size are always reported. */
  readonly report?: boolean;
  /** Store XQuant SVD factors (default: when num_key_value_heads < num_attention_heads). */
  readonly xquant?: boolean;
  readonly onProgress?: (event: TensorProgress) => void;
  /** Calibration engine: "wasm" (default; the SIMD kernels) or "reference" (plain TypeScript). */
  readonly calibrationEngine?: CalibrationEngine;
  /** Threads for the wasm calibration engine (default: every core). */
  readonly threads?: number;
  /**
   * What later layers calibrate on: the outputs of the already quantised earlier layers
   * ("quantized", GPTQ's sequential mode) or of the fp32 ones ("fp32"); default by bits,
   * see defaultCalibrationInputs.
   */
  readonly calibrationInputs?: "quantized" | "fp32";
  /** gptq only: refit group scales and zero points to the Hessian after the sweep (default true; methods/gptq.ts). */
  readonly gptqRefit?: boolean;
  /** gptq only: sweep-and-refit rounds (default GPTQ_ROUNDS = 2; methods/gptq.ts). */
  readonly gptqRounds?: number;
  /**
   * Where packed tensors go as they are produced (default: a new memory spool). The caller
   * owns a spool it passes, and must keep it until it is done with the result's tensors.
   */
  readonly spool?: TensorSpool;
}

/**
 * Default calibration inputs for later layers: the quantised earlier layers' outputs at 2 bits,
 * the fp32 ones above. On stories260K (mean KL, built-in texts) quantised inputs lowered gptq
 * 1.336 → 1.263 and imatrix 1.620 → 1.597 at 2 bits, but raised gptq 0.257 → 0.262 at 3 bits
 * and 0.0526 → 0.0552 at 4 bits (imatrix: 0.342 → 0.333 and 0.0778 → 0.0785): error
 * compensation across layers pays off only when the per-layer error is large.
 */
export function defaultCalibrationInputs(bits: Bits): "quantized" | "fp32" {
  return bits === 2 ? "quantized" : "fp32";
}

export interface TensorProgress {
  readonly index: number;
  readonly total: number;
  readonly name: string;
  readonly shape: readonly number[];
  /** Short encoding name (q2g32zp, q8g32, f32, ...) and the method that produced it. */
  readonly encoding: string;
  readonly method: string;
  readonly bytesBefore: number;
  readonly bytesAfter: number;
  readonly note?: string;
  /** "calibrate", "tensor", "xquant", "report". */
  readonly phase: "calibrate" | "tensor" | "xquant" | "report";
}

export interface QuantizeResult {
  readonly header: CheckpointHeader;
  /** In file order; `bytes` are read from the spool on each access. */
  readonly tensors: StoredTensor[];
  readonly report: QualityReport;
}

const SOURCE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

function isLinear(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && name.startsWith("model.layers.") && name.endsWith(".weight");
}

function encode(action: TensorAction, weights: Float32Array, shape: readonly number[], stats: LayerStats | undefined, engine?: DenseEngine, gptq: GptqOptions = {}): { encoding: Encoding; bytes: Uint8Array } {
  const [rows, cols] = matrixDims(shape);
  switch (action.kind) {
    case "transcode":
      throw new InvalidArgumentError("action", `transcoding ${action.from} needs the GGUF blocks, not fp32 weights`);
    case "f32":
      return { encoding: { kind: "f32" }, bytes: packF32(weights) };
    case "f16":
      return { encoding: { kind: "f16" }, bytes: packF16(weights) };
    case "q8": {
      const q = quantizeQ8(weights, rows, cols, action.group);
      return { encoding: q.encoding, bytes: packQuantized(q, rows, cols) };
    }
    case "method": {
      const input = { weights, rows, cols, group: action.group, bits: action.bits, ...stats };
      // GPTQ works row by row: a tall matrix (a real vocabulary's head) goes in blocks of rows.
      const q = action.method === "gptq"
        ? quantizeInRowChunks(input, (block) => quantizeGptq(block, { ...gptq, engine }))
        : METHODS[action.method].quantize(input);
      return { encoding: q.encoding, bytes: packQuantized(q, rows, cols) };
    }
  }
}

function resolveRecipe(options: QuantizeOptions, source: ModelSource): Recipe {
  const bits = options.bits ?? 4;
  if (![2, 3, 4, 8, "ternary"].includes(bits)) {
    throw new InvalidArgumentError("bits", `--bits ${bits} is not supported; choose 2, 3, 4, 8 or ternary`);
  }
  const group = options.group ?? 32;
  if (![32, 64, 128, 256].includes(group)) throw new InvalidArgumentError("group", `--group ${group} is not supported; choose 32, 64, 128 or 256`);
  const recipe: Recipe = {
    bits,
    group,
    method: options.method ?? defaultMethod(bits),
    embeddings: options.embeddings,
    head: options.head,
    keep: options.keep ?? [],
    fromSource: options.bits === undefined && source.format === "gguf",
  };
  checkRecipe(recipe);
  return recipe;
}

/** Quantises `source`; nothing is written (see writeQuantized / cli.ts). */
export async function quantizeModel(source: ModelSource, options: QuantizeOptions = {}): Promise<QuantizeResult> {
  const recipe = resolveRecipe(options, source);
  const { arch, args } = resolveModel(source.config);
  checkTensors(arch, args, (name) => source.tensors.has(name), source.path);
  const entries = [...source.tensors.values()];
  const tiedHead = !source.tensors.has("lm_head.weight");
  const plans = new Map(entries.map((t) => [t.name, planTensor(t.name, t.shape, recipe, ggmlBlocksOf(t)?.type, tiedHead)]));
  const progress = options.onProgress ?? (() => undefined);

  // Calibration, only when a planned method needs activations: streamed layer by layer and
  // interleaved with quantisation, so only one layer's fp32 weights and statistics are alive.
  const needs = new Set<string>();
  for (const [name, plan] of plans) if (plan.action.kind === "method" && METHODS[plan.action.method].needs !== "none") needs.add(name);
  const calibration = options.calibration ?? { text: defaultCalibrationText(), label: "built-in" };
  let calibrationTokens = 0;

  const spool = options.spool ?? createMemorySpool();
  const done = new Map<string, StoredTensor>();
  const counts: Record<string, number> = {};
  const notes: Record<string, string> = {};
  let index = 0;
  const ggufRecords: GgufTensorRecord[] = [];
  /** Packs one tensor into the spool; `weights` are read when the action needs them. */
  const emit = (entry: TensorEntry, weights: Float32Array | undefined, stats: LayerStats | undefined, engine?: DenseEngine): void => {
    const plan = plans.get(entry.name)!;
    let action = plan.action;
    let note = plan.note;
    let packed: { encoding: Encoding; bytes: Uint8Array } | undefined;
    const blocks = ggmlBlocksOf(entry);
    if (action.kind === "transcode") {
      const kept = blocks === undefined ? "no GGUF blocks" : transcodeTensor(blocks, action.target);
      if (typeof kept === "string") {
        note = `${action.from} re-quantised: ${kept}`;
        action = withoutCalibration(action.fallback, stats);
      } else {
        packed = kept;
        note = kept.exactGroups === kept.groups
          ? `${action.from} blocks kept, bit-exact`
          : `${action.from} blocks kept, ${kept.exactGroups}/${kept.groups} groups bit-exact, scales rounded to f16 (max |dw| ${kept.maxAbsError.toExponential(1)})`;
        ggufRecords.push({ name: entry.name, from: action.from, to: encodingName(kept.encoding), method: "transcode", exactGroups: kept.exactGroups, groups: kept.groups, maxAbsError: kept.maxAbsError });
      }
    }
    if (packed === undefined && action.kind === "method" && withoutCalibration(action, stats) !== action) {
      // Calibration records the layers' inputs only: a --keep rule naming the embedding or the
      // head with a calibrated method gets rtn (it used to fail for want of statistics).
      action = withoutCalibration(action, stats);
      note = note ?? "no calibration statistics reach this tensor: rtn";
    }
    packed ??= encode(action, weights ?? readCollected(entry), entry.shape, stats, engine, { refit: options.gptqRefit, rounds: options.gptqRounds });
    const { encoding, bytes } = packed;
    done.set(entry.name, spool.add(entry.name, entry.shape, encoding, bytes));
    const name = encodingName(encoding);
    counts[name] = (counts[name] ?? 0) + 1;
    const method = action.kind === "method" ? action.method : action.kind;
    if (blocks !== undefined && blockFormat(blocks.type) !== undefined && action.kind !== "transcode") {
      ggufRecords.push({ name: entry.name, from: blocks.type, to: name, method });
      note ??= `from ${blocks.type}`;
    }
    if (note !== undefined) notes[entry.name] = note;
    const numel = entry.shape.reduce((a, b) => a * b, 1);
    const format = blocks === undefined ? undefined : blockFormat(blocks.type);
    progress({
      index: ++index,
      total: entries.length,
      name: entry.name,
      shape: entry.shape,
      encoding: name,
      method,
      bytesBefore: format === undefined ? numel * (SOURCE_BYTES[entry.dtype] ?? 4) : (numel / format.blockSize) * format.typeSize,
      bytesAfter: bytes.length,
      note,
      phase: "tensor",
    });
  };

  if (needs.size > 0) {
    const tokens = tokenStream(source, calibration.text, options.calibrationTokens ?? 4096, 1);
    calibrationTokens = tokens.length;
    const hessian = [...needs].some((n) => { const a = plans.get(n)!.action; return a.kind === "method" && METHODS[a.method].needs === "hessian"; });
    progress({ index: 0, total: entries.length, name: `${tokens.length} calibration tokens`, shape: [], encoding: "", method: hessian ? "hessian" : "importance", bytesBefore: 0, bytesAfter: 0, phase: "calibrate" });
    const calibrator = await createStreamingCalibrator(source, tokens, {
      wanted: (name) => needs.has(name),
      hessian,
      engine: options.calibrationEngine,
      threads: options.threads,
    });
    const quantizedInputs = (options.calibrationInputs ?? defaultCalibrationInputs(recipe.bits)) === "quantized";
    // A calibrated head is quantised last, on the statistics of what the last layer hands it.
    const headTensor = tiedHead ? "model.embed_tokens.weight" : "lm_head.weight";
    const calibratedHead = needs.has(headTensor) ? source.tensors.get(headTensor) : undefined;
    try {
      for (const entry of entries) {
        if (layerOf(entry.name) >= 0 || entry === calibratedHead) continue;
        await yieldToEventLoop();
        emit(entry, undefined, undefined);
      }
      collectGarbage();
      for (let layer = 0; layer < args.numLayers; layer++) {
        // Narrow inputs first: the widest (down_proj, the largest Hessian and GPTQ working set)
        // is quantised last, when its siblings' fp32 weights and statistics are already freed.
        const inLayer = entries.filter((e) => layerOf(e.name) === layer)
          .sort((a, b) => a.shape[a.shape.length - 1] - b.shape[b.shape.length - 1]);
        const fp32 = new Map(inLayer.map((e) => [e.name, e.read()]));
        // (Transcoded tensors are read again as blocks; calibration needs every fp32 weight of the layer.)
        const stats = await calibrator.collect(layer, (name) => fp32.get(name) ?? missingTensor(source, name));
        for (const entry of inLayer) {
          await yieldToEventLoop();
          if (stats.get(entry.name)?.hessian !== undefined) collectGarbage();
          emit(entry, fp32.get(entry.name)!, stats.get(entry.name), calibrator.dense);
          stats.delete(entry.name);
          fp32.delete(entry.name);
        }
        // The quantised weights are dequantised from the spool one at a time as the layer
        // asks for them, rather than kept in fp32 while the rest of the layer is quantised.
        const dequantized = (name: string) => {
          const t = done.get(name) ?? missingTensor(source, name);
          return dequantize(t.encoding, t.bytes, ...matrixDims(t.shape));
        };
        await calibrator.advance(layer, quantizedInputs ? dequantized : undefined);
        // The block is still in scope during the collection: drop the layer's fp32 copies first.
        fp32.clear();
        stats.clear();
        collectGarbage();
      }
      if (calibratedHead !== undefined) {
        const stats = calibrator.headStats((name) => source.tensors.get(name)?.read() ?? missingTensor(source, name));
        await yieldToEventLoop();
        emit(calibratedHead, undefined, stats, calibrator.dense);
      }
    } finally {
      await calibrator.dispose();
    }
  }
  for (const entry of entries) {
    if (done.has(entry.name)) continue;
    await yieldToEventLoop();
    emit(entry, undefined, undefined);
  }
  const tensors = entries.map((e) => done.get(e.name)!);

  const extra: Record<string, unknown> = {};
  if (source.pooling !== undefined) extra.pooling = source.pooling;
  const xquant = options.xquant ?? args.numKvHeads < args.numHeads;
  if (xquant) extra.xquant = addXquant(tensors, spool, args.numLayers, args.hiddenSize, args.numKvHeads * args.headDim);

  const weightBytes = (list: StoredTensor[]) => list.reduce((s, t) => s + t.byteLength, 0);
  const weightCount = (list: StoredTensor[]) => list.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const model = tensors.filter((t) => !t.name.includes(".xquant_"));
  const linear = model.filter((t) => isLinear(t.name, t.shape));
  let report: QualityReport = {
    bpw: (8 * weightBytes(linear)) / Math.max(1, weightCount(linear)),
    bpw_overall: (8 * weightBytes(model)) / Math.max(1, weightCount(model)),
    bytes: 0,
    ...(ggufRecords.length > 0 ? { gguf: summarizeGguf(ggufRecords) } : {}),
  };
  if (options.report ?? true) {
    const evaluation = options.evaluation ?? { text: defaultEvaluationText(), label: "built-in" };
    const tokens = tokenStream(source, evaluation.text, options.evaluationTokens ?? 1024, 2);
    progress({ index, total: entries.length, name: `${tokens.length} evaluation tokens`, shape: [], encoding: "", method: "", bytesBefore: 0, bytesAfter: 0, phase: "report" });
    const packed = tensors.map((t) => ({ name: t.name, shape: t.shape, encoding: t.encoding, bytes: () => t.bytes }));
    const quantized = packedSource(`${source.path} (quantised)`, headerOf(source, {}, {}, {}), packed);
    await yieldToEventLoop();
    const metrics = await compareModelsStreaming(source, quantized, tokens, { engine: options.calibrationEngine, threads: options.threads });
    report = { ...metrics, ...report, eval_text: evaluation.label };
  }

  const usesGptq = [...plans.values()].some((p) => p.action.kind === "method" && p.action.method === "gptq");
  const quantization: Record<string, unknown> = {
    tool: "crumb quantize",
    bits: recipe.fromSource ? "source" : recipe.bits,
    group: recipe.group,
    method: recipe.method,
    embeddings: recipe.embeddings ?? "q8",
    head: headName(recipe.head ?? defaultHead(recipe.bits, recipe.method)),
    ...(recipe.head === undefined ? { head_default: true } : {}),
    keep: recipe.keep.map((r) => `${r.pattern}=${r.action}`),
    calibration: needs.size > 0
      ? { text: calibration.label, tokens: calibrationTokens, xxh32: xxhash32(new TextEncoder().encode(calibration.text)) }
      : null,
    encodings: counts,
    notes,
    source_format: source.format,
    // gptq_refit only when off (files made before the refit carry no key); gptq_rounds whenever
    // the refit runs (files made before the rounds carry no key and had one).
    ...(options.gptqRefit === false && usesGptq ? { gptq_refit: false } : {}),
    ...(options.gptqRefit !== false && usesGptq ? { gptq_rounds: options.gptqRounds ?? GPTQ_ROUNDS } : {}),
  };
  // The report stores the file size, which depends on the header's length: iterate to a fixpoint.
  let header = headerOf(source, quantization, report as unknown as Record<string, unknown>, extra);
  for (let i = 0; i < 5; i++) {
    const bytes = planCheckpointLayout(header, tensors).fileLength;
    if (bytes === report.bytes) break;
    report = { ...report, bytes };
    header = headerOf(source, quantization, report as unknown as Record<string, unknown>, extra);
  }
  return { header, tensors, report };
}

/** A fallback for blocks that could not be kept: a method that needs statistics it lacks becomes rtn. */
function withoutCalibration(action: TensorAction, stats: LayerStats | undefined): TensorAction {
  if (action.kind !== "method" || METHODS[action.method].needs === "none" || stats !== undefined) return action;
  return { ...action, method: "rtn" };
}

/** Layer index of a `model.layers.N.` tensor, -1 for the rest (embeddings, final norm, lm_head). */
function layerOf(name: string): number {
  const match = /^model\.layers\.(\d+)\./.exec(name);
  return match === null ? -1 : Number(match[1]);
}

function missingTensor(source: ModelSource, name: string): never {
  throw new FormatError(`checkpoint has no tensor "${name}"`, { file: source.path, tensor: name });
}

/** fp32 tensors at least this large are read only after a collection (e.g. a 32000x2048 embedding is 250 MiB). */
const LARGE_TENSOR_BYTES = 32 << 20;

/**
 * A tensor's fp32 values; a large one is read after a collection, so the previous large
 * tensor's fp32 copy (already packed, unreferenced) is not still alive next to it.
 */
function readCollected(entry: TensorEntry): Float32Array {
  if (4 * entry.shape.reduce((a, b) => a * b, 1) >= LARGE_TENSOR_BYTES) collectGarbage();
  return entry.read();
}

/** Frees the last layer's buffers before the next is read (Bun; elsewhere the engine decides). */
function collectGarbage(): void {
  const runtime = globalThis as { Bun?: { gc(force: boolean): void } };
  runtime.Bun?.gc(true);
}

/** Lets signal handlers (Ctrl-C) run between tensors of a long synchronous job. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function headerOf(source: ModelSource, quantization: Record<string, unknown>, report: Record<string, unknown>, extra: Record<string, unknown>): CheckpointHeader {
  return {
    config: { ...source.config },
    tokenizer: source.tokenizer ?? null,
    chatTemplates: { ...source.chatTemplates },
    generationConfig: { ...source.generationConfig },
    quantization,
    report,
    extra,
  };
}

/** Appends f16 SVD factors of every layer's k_proj and v_proj; returns the header description. */
function addXquant(tensors: StoredTensor[], spool: TensorSpool, layers: number, hidden: number, kvDim: number): Record<string, unknown> {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  for (let l = 0; l < layers; l++) {
    for (const proj of ["k_proj", "v_proj"]) {
      const base = `model.layers.${l}.self_attn.${proj}`;
      const t = byName.get(`${base}.weight`)!;
      const w = dequantize(t.encoding, t.bytes, kvDim, hidden);
      const f = xquantFactors(w, kvDim, hidden);
      const names = xquantNames(base);
      tensors.push(spool.add(names.u, [hidden, kvDim], { kind: "f16" }, packF16(f.u)));
      tensors.push(spool.add(names.sb, [kvDim, kvDim], { kind: "f16" }, packF16(f.sb)));
    }
  }
  return {
    version: 1,
    rank: kvDim,
    layers,
    projections: ["k_proj", "v_proj"],
    tensors: { u: "model.layers.{L}.self_attn.{proj}.xquant_u", sb: "model.layers.{L}.self_attn.{proj}.xquant_sb" },
    layout:
      "W^T = U·Σ·B^T of the quantised projection weight W (kvDim, hidden); xquant_u is U (hidden, rank) and xquant_sb is Σ·B^T (rank, kvDim), " +
      "both f16 row-major; cache the latents X·U and rebuild K (or V) = (X·U)·xquant_sb, then add the projection bias if any and apply RoPE to K; " +
      "latent channel 0 carries the largest singular value",
  };
}
