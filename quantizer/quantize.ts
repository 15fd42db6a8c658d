/**
 * The quantizer pipeline: plan every tensor (recipe.ts), calibrate when a method needs
 * activations (calibrate.ts), then read, quantise and pack the tensors one at a time (only
 * the packed bytes are kept), add the XQuant SVD factors for grouped-query models
 * (xquant.ts), measure the quality report against the fp32 model (report.ts) and assemble the
 * checkpoint header. Deterministic: the same source and options give the same bytes.
 */
import { InvalidArgumentError } from "../runtime/errors.ts";
import { type Encoding, encodingName } from "../runtime/format/encoding.ts";
import type { CheckpointHeader } from "../runtime/format/header.ts";
import { packF16, packF32 } from "../runtime/format/pack-f16.ts";
import { dequantize } from "../runtime/format/pack-dequantize.ts";
import { planCheckpoint, type TensorInput } from "../runtime/format/writer.ts";
import { checkTensors, resolveModel } from "../runtime/models/registry.ts";
import type { ModelSource } from "../runtime/models/types.ts";
import { xxhash32 } from "../runtime/format/checksum.ts";
import { collectCalibrationStats } from "./calibrate.ts";
import { matrixDims, packedSource } from "./import/crumb.ts";
import { METHODS, type MethodName, packQuantized, quantizeQ8 } from "./methods/index.ts";
import type { LayerStats, LutGroup } from "./methods/types.ts";
import { type Bits, checkRecipe, defaultMethod, type KeepRule, planTensor, type Recipe, type TensorAction } from "./recipe.ts";
import { compareModels, type QualityReport } from "./report.ts";
import { defaultCalibrationText, defaultEvaluationText, tokenStream } from "./texts.ts";
import { xquantFactors, xquantNames } from "./xquant.ts";

export interface QuantizeOptions {
  readonly bits?: Bits;
  readonly group?: LutGroup;
  readonly method?: MethodName;
  readonly embeddings?: "f32" | "f16" | "q8";
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
  readonly tensors: TensorInput[];
  readonly report: QualityReport;
}

const SOURCE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

function isLinear(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && name.startsWith("model.layers.") && name.endsWith(".weight");
}

function encode(action: TensorAction, weights: Float32Array, shape: readonly number[], stats: LayerStats | undefined): { encoding: Encoding; bytes: Uint8Array } {
  const [rows, cols] = matrixDims(shape);
  switch (action.kind) {
    case "f32":
      return { encoding: { kind: "f32" }, bytes: packF32(weights) };
    case "f16":
      return { encoding: { kind: "f16" }, bytes: packF16(weights) };
    case "q8": {
      const q = quantizeQ8(weights, rows, cols, action.group);
      return { encoding: q.encoding, bytes: packQuantized(q, rows, cols) };
    }
    case "method": {
      const q = METHODS[action.method].quantize({ weights, rows, cols, group: action.group, bits: action.bits, ...stats });
      return { encoding: q.encoding, bytes: packQuantized(q, rows, cols) };
    }
  }
}

function resolveRecipe(options: QuantizeOptions): Recipe {
  const bits = options.bits ?? 4;
  if (![2, 3, 4, 8, "ternary"].includes(bits)) {
    throw new InvalidArgumentError("bits", `--bits ${bits} is not supported; choose 2, 3, 4, 8 or ternary`);
  }
  const group = options.group ?? 32;
  if (![32, 64, 128].includes(group)) throw new InvalidArgumentError("group", `--group ${group} is not supported; choose 32, 64 or 128`);
  const recipe: Recipe = {
    bits,
    group,
    method: options.method ?? defaultMethod(bits),
    embeddings: options.embeddings ?? "q8",
    keep: options.keep ?? [],
  };
  checkRecipe(recipe);
  return recipe;
}

/** Quantises `source`; nothing is written (see writeQuantized / cli.ts). */
export async function quantizeModel(source: ModelSource, options: QuantizeOptions = {}): Promise<QuantizeResult> {
  const recipe = resolveRecipe(options);
  const { arch, args } = resolveModel(source.config);
  checkTensors(arch, args, (name) => source.tensors.has(name), source.path);
  const entries = [...source.tensors.values()];
  const plans = new Map(entries.map((t) => [t.name, planTensor(t.name, t.shape, recipe)]));
  const progress = options.onProgress ?? (() => undefined);

  // Calibration, only when a planned method needs activations.
  const needs = new Set<string>();
  for (const [name, plan] of plans) if (plan.action.kind === "method" && METHODS[plan.action.method].needs !== "none") needs.add(name);
  const calibration = options.calibration ?? { text: defaultCalibrationText(), label: "built-in" };
  let stats = new Map<string, LayerStats>();
  let calibrationTokens = 0;
  if (needs.size > 0) {
    const tokens = tokenStream(source, calibration.text, options.calibrationTokens ?? 4096, 1);
    calibrationTokens = tokens.length;
    const hessian = [...needs].some((n) => { const a = plans.get(n)!.action; return a.kind === "method" && METHODS[a.method].needs === "hessian"; });
    progress({ index: 0, total: entries.length, name: `${tokens.length} calibration tokens`, shape: [], encoding: "", method: hessian ? "hessian" : "importance", bytesBefore: 0, bytesAfter: 0, phase: "calibrate" });
    stats = await collectCalibrationStats(source, tokens, { wanted: (name) => needs.has(name), hessian });
  }

  const tensors: TensorInput[] = [];
  const counts: Record<string, number> = {};
  const notes: Record<string, string> = {};
  let index = 0;
  for (const entry of entries) {
    const plan = plans.get(entry.name)!;
    await yieldToEventLoop();
    const weights = entry.read();
    const { encoding, bytes } = encode(plan.action, weights, entry.shape, stats.get(entry.name));
    stats.delete(entry.name);
    tensors.push({ name: entry.name, shape: [...entry.shape], encoding, bytes });
    const name = encodingName(encoding);
    counts[name] = (counts[name] ?? 0) + 1;
    if (plan.note !== undefined) notes[entry.name] = plan.note;
    progress({
      index: ++index,
      total: entries.length,
      name: entry.name,
      shape: entry.shape,
      encoding: name,
      method: plan.action.kind === "method" ? plan.action.method : plan.action.kind,
      bytesBefore: weights.length * (SOURCE_BYTES[entry.dtype] ?? 4),
      bytesAfter: bytes.length,
      note: plan.note,
      phase: "tensor",
    });
  }

  const extra: Record<string, unknown> = {};
  if (source.pooling !== undefined) extra.pooling = source.pooling;
  const xquant = options.xquant ?? args.numKvHeads < args.numHeads;
  if (xquant) extra.xquant = addXquant(tensors, args.numLayers, args.hiddenSize, args.numKvHeads * args.headDim);

  const weightBytes = (list: TensorInput[]) => list.reduce((s, t) => s + t.bytes.length, 0);
  const weightCount = (list: TensorInput[]) => list.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const model = tensors.filter((t) => !t.name.includes(".xquant_"));
  const linear = model.filter((t) => isLinear(t.name, t.shape));
  let report: QualityReport = {
    bpw: (8 * weightBytes(linear)) / Math.max(1, weightCount(linear)),
    bpw_overall: (8 * weightBytes(model)) / Math.max(1, weightCount(model)),
    bytes: 0,
  };
  if (options.report ?? true) {
    const evaluation = options.evaluation ?? { text: defaultEvaluationText(), label: "built-in" };
    const tokens = tokenStream(source, evaluation.text, options.evaluationTokens ?? 1024, 2);
    progress({ index, total: entries.length, name: `${tokens.length} evaluation tokens`, shape: [], encoding: "", method: "", bytesBefore: 0, bytesAfter: 0, phase: "report" });
    const quantized = packedSource(`${source.path} (quantised)`, headerOf(source, {}, {}, {}), tensors.map((t) => ({ ...t, bytes: () => t.bytes })));
    await yieldToEventLoop();
    report = { ...compareModels(source, quantized, tokens), ...report, eval_text: evaluation.label };
  }

  const quantization: Record<string, unknown> = {
    tool: "crumb quantize",
    bits: recipe.bits,
    group: recipe.group,
    method: recipe.method,
    embeddings: recipe.embeddings,
    keep: recipe.keep.map((r) => `${r.pattern}=${r.action}`),
    calibration: needs.size > 0
      ? { text: calibration.label, tokens: calibrationTokens, xxh32: xxhash32(new TextEncoder().encode(calibration.text)) }
      : null,
    encodings: counts,
    notes,
    source_format: source.format,
  };
  // The report stores the file size, which depends on the header's length: iterate to a fixpoint.
  let header = headerOf(source, quantization, report as unknown as Record<string, unknown>, extra);
  for (let i = 0; i < 5; i++) {
    const bytes = planCheckpoint({ header, tensors }).fileLength;
    if (bytes === report.bytes) break;
    report = { ...report, bytes };
    header = headerOf(source, quantization, report as unknown as Record<string, unknown>, extra);
  }
  return { header, tensors, report };
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
function addXquant(tensors: TensorInput[], layers: number, hidden: number, kvDim: number): Record<string, unknown> {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  for (let l = 0; l < layers; l++) {
    for (const proj of ["k_proj", "v_proj"]) {
      const base = `model.layers.${l}.self_attn.${proj}`;
      const t = byName.get(`${base}.weight`)!;
      const w = dequantize(t.encoding, t.bytes, kvDim, hidden);
      const f = xquantFactors(w, kvDim, hidden);
      const names = xquantNames(base);
      tensors.push({ name: names.u, shape: [hidden, kvDim], encoding: { kind: "f16" }, bytes: packF16(f.u) });
      tensors.push({ name: names.sb, shape: [kvDim, kvDim], encoding: { kind: "f16" }, bytes: packF16(f.sb) });
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
