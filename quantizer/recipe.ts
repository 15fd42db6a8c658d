/**
 * The quantisation recipe: which encoding every tensor gets. Layer linears take the chosen
 * method; the output head (lm_head, or the embedding table when the head is tied to it, stored
 * once) takes `head` (default: defaultHead, measured in bench/results/quality.md, "Output
 * head"); an untied token embedding takes `embeddings` (q8 by default); 1-D tensors (norms,
 * biases) stay f32. `--keep pattern=encoding` rules override, first match wins (`*` matches
 * any run of characters, dots included).
 *
 * Width policy: a LUT encoding needs cols to be a multiple of its group. When it is not, the
 * tensor takes the largest smaller group (256 → 128 → 64 → 32) that divides cols, and when none
 * does it is kept in q8 (which pads its last group); the per-tensor progress line says so.
 * stories260K's down_proj (cols 172) is the case in point.
 *
 * GGUF sources (gguf-transcode.ts): a matrix whose blocks a crumb encoding holds is kept
 * ("transcode") when that encoding has the width asked for: --bits 4 keeps Q4_0/Q4_1/Q4_K,
 * --bits 8 keeps Q8_0/Q5_0/IQ4_NL/Q4_0 as q8, --bits ternary keeps TQ1_0/TQ2_0; embeddings
 * and lm_head keep q8-shaped blocks when they are to be q8, and without an explicit --head a
 * GGUF head whose blocks q8 holds exactly stays q8 (re-quantising an already quantised head
 * would stack a second rounding). Without --bits (`fromSource`)
 * every matrix keeps its blocks where it can, and the rest are re-quantised at the crumb
 * width at least as fine as their type: q8 for 5-8 bit types (Q5_1, Q5_K, Q6_K, Q8_K), the
 * method at 4 bits for the others (Q2_K, Q3_K, IQ*), and the recipe's bits for float types.
 * A --keep rule always re-quantises.
 */
import { InvalidArgumentError } from "../runtime/errors.ts";
import { type TranscodeTarget, transcodeTargets } from "./gguf-transcode.ts";
import { METHODS, type MethodName } from "./methods/index.ts";
import type { LutGroup, PlaneBits } from "./methods/types.ts";

export type Bits = 2 | 3 | 4 | 8 | "ternary";

/** What one tensor becomes. */
export type TensorAction =
  | { readonly kind: "f32" }
  | { readonly kind: "f16" }
  | { readonly kind: "q8"; readonly group: number }
  | { readonly kind: "method"; readonly method: MethodName; readonly bits: PlaneBits; readonly group: LutGroup }
  /** Keep the GGUF blocks of type `from` in the crumb encoding of width `target`; `fallback` if they do not fit. */
  | { readonly kind: "transcode"; readonly from: string; readonly target: TranscodeTarget; readonly fallback: TensorAction };

export interface KeepRule {
  readonly pattern: string;
  readonly action: "f32" | "f16" | "q8" | "q1" | "q2" | "q3" | "q4" | "t1" | "t2";
}

/**
 * The output head's encoding (`--head`): f32, f16, q8, or a LUT width (q3, q4), with an
 * optional group (`q4g64`; without one, the recipe's group). A LUT head is quantised with the
 * recipe's method when that is gptq or imatrix (calibrated on the final norm's output,
 * calibrate-stream.ts headStats), else with rtn (always zero-point, the fastest LUT form).
 */
export interface HeadSpec {
  readonly format: "f32" | "f16" | "q8" | "q4" | "q3";
  readonly group?: LutGroup;
}

export const HEAD_FORMATS: readonly HeadSpec["format"][] = ["f32", "f16", "q8", "q4", "q3"];

/**
 * The default head for a body of `bits` quantised with `method` (issue 13): the fastest
 * candidate on the real heads (bench/heads.ts: q4g64 < q4g32 < q8g128 < q8g32 in time per
 * token) whose KL cost on stories260K is negligible, i.e. below 2% of that body's own KL
 * (bench/results/quality.md, "Output head"). At 2 bits a q4 head calibrated on the final norm's
 * output qualifies: g64 with gptq, g32 with imatrix (imatrix's q4g64 costs more than 2%); an
 * uncalibrated one does not (rtn, hlq: about 3.5-4%), nor a q4 head at 3 or 4 bits or ternary
 * (7-35% of those smaller KLs): q8 groups of 128 there. A q8 body keeps its head q8 in the
 * recipe's group, as llama-quantize keeps a Q8_0 file's head Q8_0.
 */
export function defaultHead(bits: Bits, method: MethodName): HeadSpec {
  if (bits === 8) return { format: "q8" };
  if (bits === 2 && method === "gptq") return { format: "q4", group: 64 };
  if (bits === 2 && method === "imatrix") return { format: "q4", group: 32 };
  return { format: "q8", group: 128 };
}

/** Parses `--head`: f32, f16, q8, q4, q3, optionally with a group (q4g64, q8g32). */
export function parseHead(spec: string): HeadSpec {
  const m = /^(f32|f16|q8|q4|q3)(?:g(32|64|128))?$/.exec(spec);
  if (m === null || (m[2] !== undefined && (m[1] === "f32" || m[1] === "f16"))) {
    throw new InvalidArgumentError(
      "--head",
      `--head ${spec} is not supported; choose ${HEAD_FORMATS.join(", ")}, q8/q4/q3 optionally with a group of 32, 64 or 128 (e.g. q4g64)`,
    );
  }
  return m[2] === undefined ? { format: m[1] as HeadSpec["format"] } : { format: m[1] as HeadSpec["format"], group: Number(m[2]) as LutGroup };
}

/** The spec's name as --head takes it (q4g64, q8, f16). */
export function headName(h: HeadSpec): string {
  return `${h.format}${h.group === undefined ? "" : `g${h.group}`}`;
}

export interface Recipe {
  readonly bits: Bits;
  readonly group: LutGroup;
  readonly method: MethodName;
  /** An untied token embedding (looked up by row); default q8. A tied table follows `head`, or this when only it was given. */
  readonly embeddings?: "f32" | "f16" | "q8";
  /** The output head: lm_head, or the tied embedding table; default defaultHead(bits, method). */
  readonly head?: HeadSpec;
  readonly keep: readonly KeepRule[];
  /** GGUF input without --bits: widths follow each tensor's source type (see above). */
  readonly fromSource?: boolean;
}

export interface TensorPlan {
  readonly action: TensorAction;
  /** Why the action differs from what the recipe asked for (shown in the progress line). */
  readonly note?: string;
}

const KEEP_ACTIONS = ["f32", "f16", "q8", "q1", "q2", "q3", "q4", "t1", "t2"] as const;
export const LUT_GROUP_SIZES: readonly LutGroup[] = [256, 128, 64, 32];

/** The default method for a bit width: rtn for 2-4 (and 8: q8), absmean for ternary. */
export function defaultMethod(bits: Bits): MethodName {
  return bits === "ternary" ? "absmean" : "rtn";
}

/** Checks that method and bits agree; throws InvalidArgumentError naming the fix. */
export function checkRecipe(recipe: Recipe): void {
  const info = METHODS[recipe.method];
  if (info === undefined) {
    throw new InvalidArgumentError("method", `unknown method "${recipe.method}"; choose one of ${Object.keys(METHODS).join(", ")}`);
  }
  if (recipe.bits === 8) return;
  if (info.kind === "ternary" && recipe.bits !== "ternary") {
    throw new InvalidArgumentError("method", `--method ${recipe.method} produces ternary weights; use it with --bits ternary`);
  }
  if (info.kind === "bitplane" && recipe.bits === "ternary") {
    throw new InvalidArgumentError("method", `--bits ternary needs --method absmean or ptqtp, not ${recipe.method}`);
  }
}

/** Parses `pattern=encoding` (encodings: f32, f16, q8, q1-q4, t1 = absmean ternary, t2 = ptqtp). */
export function parseKeepRule(spec: string): KeepRule {
  const at = spec.lastIndexOf("=");
  const pattern = spec.slice(0, at);
  const action = spec.slice(at + 1);
  if (at <= 0 || !(KEEP_ACTIONS as readonly string[]).includes(action)) {
    throw new InvalidArgumentError(
      "keep",
      `--keep "${spec}" must be <tensor-pattern>=<encoding> with encoding one of ${KEEP_ACTIONS.join(", ")} ` +
        `(e.g. --keep "*.mlp.down_proj.weight=q4")`,
    );
  }
  return { pattern, action: action as KeepRule["action"] };
}

/** Glob match: `*` is any run of characters (dots included), everything else literal. */
export function matchesPattern(pattern: string, name: string): boolean {
  const parts = pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${parts.join(".*")}$`).test(name);
}

const EMBEDDING = "model.embed_tokens.weight";
const HEAD = "lm_head.weight";

/** The role a 2-D tensor plays: the output head (lm_head, or a tied table), an untied embedding, or a linear. */
export function tensorRole(name: string, tiedHead: boolean): "head" | "embedding" | "linear" {
  if (name === HEAD || (name === EMBEDDING && tiedHead)) return "head";
  return name === EMBEDDING ? "embedding" : "linear";
}

function keepAction(rule: KeepRule, recipe: Recipe): TensorAction {
  switch (rule.action) {
    case "f32":
    case "f16":
      return { kind: rule.action };
    case "q8":
      return { kind: "q8", group: recipe.group };
    case "t1":
      return { kind: "method", method: "absmean", bits: 2, group: recipe.group };
    case "t2":
      return { kind: "method", method: "ptqtp", bits: 2, group: recipe.group };
    default: {
      const method = METHODS[recipe.method].kind === "bitplane" ? recipe.method : "rtn";
      return { kind: "method", method, bits: Number(rule.action.slice(1)) as PlaneBits, group: recipe.group };
    }
  }
}

/** GGUF types finer than 4.5 bits per weight: re-quantised to q8 when the widths follow the source. */
const FINE_TYPES = ["Q5_1", "Q5_K", "Q6_K", "Q8_K", "Q8_0", "Q5_0"];
const FLOAT_TYPES = ["F32", "F16", "BF16", "F64"];

/** The recipe's width for a linear weight (or, with `fromSource`, the one its source type calls for). */
function linearBits(recipe: Recipe, dtype: string | undefined): Bits {
  if (!recipe.fromSource || dtype === undefined || FLOAT_TYPES.includes(dtype)) return recipe.bits;
  if (dtype === "TQ1_0" || dtype === "TQ2_0") return "ternary";
  return FINE_TYPES.includes(dtype) ? 8 : 4;
}

/** The action for `bits` (8: q8; ternary: the recipe's ternary method, else absmean). */
function actionFor(bits: Bits, recipe: Recipe): TensorAction {
  if (bits === 8) return { kind: "q8", group: recipe.group };
  if (bits === "ternary") {
    const method = METHODS[recipe.method].kind === "ternary" ? recipe.method : "absmean";
    return { kind: "method", method, bits: 2, group: recipe.group };
  }
  const method = METHODS[recipe.method].kind === "bitplane" ? recipe.method : "rtn";
  return { kind: "method", method, bits, group: recipe.group };
}

/** An embedding-style choice (q8 kept from q8-shaped GGUF blocks, f16, f32). */
function embeddingPlan(choice: "f32" | "f16" | "q8", recipe: Recipe, dtype: string | undefined, targets: readonly TranscodeTarget[]): TensorPlan {
  const action: TensorAction = choice === "q8" ? { kind: "q8", group: recipe.group } : { kind: choice };
  if (choice === "q8" && targets.includes(8)) return { action: { kind: "transcode", from: dtype!, target: 8, fallback: action } };
  return { action };
}

/**
 * The head's plan: an explicit --head; else, for a tied table, an explicit --embeddings (what
 * it meant before heads had their own option); else q8 where a GGUF's head blocks are q8-shaped
 * or widths follow the source; else defaultHead(bits, method).
 */
function headPlan(name: string, shape: readonly number[], recipe: Recipe, dtype: string | undefined, targets: readonly TranscodeTarget[]): TensorPlan {
  if (recipe.head === undefined) {
    if (name === EMBEDDING && recipe.embeddings !== undefined) {
      return { ...embeddingPlan(recipe.embeddings, recipe, dtype, targets), note: `tied head: --embeddings ${recipe.embeddings} (no --head)` };
    }
    if (recipe.fromSource || targets.includes(8)) {
      const why = targets.includes(8) ? `${dtype} head kept as q8` : `${dtype} head at q8: widths follow the GGUF`;
      return { ...embeddingPlan("q8", recipe, dtype, targets), note: `${why} (no --head)` };
    }
  }
  const head = recipe.head ?? defaultHead(recipe.bits, recipe.method);
  const group = head.group ?? recipe.group;
  // GGUF blocks a crumb encoding of the head's width holds are kept (in their own group of 32).
  if (head.format === "q8") return embeddingPlan("q8", { ...recipe, group }, dtype, targets);
  if (head.format === "f32" || head.format === "f16") return { action: { kind: head.format } };
  const method = recipe.method === "gptq" || recipe.method === "imatrix" ? recipe.method : "rtn";
  const plan = widthPolicy({ kind: "method", method, bits: head.format === "q4" ? 4 : 3, group }, shape[1]);
  return head.format === "q4" && targets.includes(4) ? { action: { kind: "transcode", from: dtype!, target: 4, fallback: plan.action } } : plan;
}

/**
 * The encoding a tensor of `shape` (stored as `dtype`) gets under `recipe`, after the width
 * policy. `tiedHead`: the model has no lm_head, so the embedding table is the head too.
 */
export function planTensor(name: string, shape: readonly number[], recipe: Recipe, dtype?: string, tiedHead = false): TensorPlan {
  if (shape.length !== 2) return { action: { kind: "f32" } };
  const rule = recipe.keep.find((r) => matchesPattern(r.pattern, name));
  const targets = dtype === undefined ? [] : transcodeTargets(dtype);
  let action: TensorAction;
  const role = tensorRole(name, tiedHead);
  if (rule !== undefined) action = keepAction(rule, recipe);
  else if (role === "head") return headPlan(name, shape, recipe, dtype, targets);
  else if (role === "embedding") return embeddingPlan(recipe.embeddings ?? "q8", recipe, dtype, targets);
  else {
    const bits = linearBits(recipe, dtype);
    action = actionFor(bits, recipe);
    const target: TranscodeTarget | undefined = recipe.fromSource ? targets[0] : targets.find((t) => t === bits);
    if (target !== undefined) {
      return { action: { kind: "transcode", from: dtype!, target, fallback: widthPolicy(actionFor(target === "ternary" ? "ternary" : target, recipe), shape[1]).action } };
    }
  }
  return widthPolicy(action, shape[1]);
}

/** A LUT encoding needs cols to be a multiple of its group: a smaller group, else q8. */
function widthPolicy(action: TensorAction, cols: number): TensorPlan {
  if (action.kind !== "method") return { action };
  if (cols % action.group === 0) return { action };
  const smaller = LUT_GROUP_SIZES.find((g) => g < action.group && cols % g === 0);
  if (smaller !== undefined) {
    return { action: { ...action, group: smaller }, note: `cols ${cols} not a multiple of ${action.group}: group ${smaller}` };
  }
  return {
    action: { kind: "q8", group: action.group },
    note: `cols ${cols} not a multiple of 32/64/128/256: kept as q8`,
  };
}
