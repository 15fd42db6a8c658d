/**
 * The quantisation recipe: which encoding every tensor gets. Layer linears take the chosen
 * method; the token embedding and lm_head take `embeddings` (q8 by default, measured in
 * bench/results/quality.md); 1-D tensors (norms, biases) stay f32. `--keep pattern=encoding`
 * rules override, first match wins (`*` matches any run of characters, dots included).
 *
 * Width policy: a LUT encoding needs cols to be a multiple of its group. When it is not, the
 * tensor takes the largest smaller group (128 → 64 → 32) that divides cols, and when none
 * does it is kept in q8 (which pads its last group); the per-tensor progress line says so.
 * stories260K's down_proj (cols 172) is the case in point.
 */
import { InvalidArgumentError } from "../runtime/errors.ts";
import { METHODS, type MethodName } from "./methods/index.ts";
import type { LutGroup, PlaneBits } from "./methods/types.ts";

export type Bits = 2 | 3 | 4 | 8 | "ternary";

/** What one tensor becomes. */
export type TensorAction =
  | { readonly kind: "f32" }
  | { readonly kind: "f16" }
  | { readonly kind: "q8"; readonly group: number }
  | { readonly kind: "method"; readonly method: MethodName; readonly bits: PlaneBits; readonly group: LutGroup };

export interface KeepRule {
  readonly pattern: string;
  readonly action: "f32" | "f16" | "q8" | "q1" | "q2" | "q3" | "q4" | "t1" | "t2";
}

export interface Recipe {
  readonly bits: Bits;
  readonly group: LutGroup;
  readonly method: MethodName;
  readonly embeddings: "f32" | "f16" | "q8";
  readonly keep: readonly KeepRule[];
}

export interface TensorPlan {
  readonly action: TensorAction;
  /** Why the action differs from what the recipe asked for (shown in the progress line). */
  readonly note?: string;
}

const KEEP_ACTIONS = ["f32", "f16", "q8", "q1", "q2", "q3", "q4", "t1", "t2"] as const;
export const LUT_GROUP_SIZES: readonly LutGroup[] = [128, 64, 32];

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

export function isEmbeddingOrHead(name: string): boolean {
  return name === "model.embed_tokens.weight" || name === "lm_head.weight";
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

/** The encoding a tensor of `shape` gets under `recipe`, after the width policy. */
export function planTensor(name: string, shape: readonly number[], recipe: Recipe): TensorPlan {
  if (shape.length !== 2) return { action: { kind: "f32" } };
  const rule = recipe.keep.find((r) => matchesPattern(r.pattern, name));
  let action: TensorAction;
  if (rule !== undefined) action = keepAction(rule, recipe);
  else if (isEmbeddingOrHead(name)) {
    action = recipe.embeddings === "q8" ? { kind: "q8", group: recipe.group } : { kind: recipe.embeddings };
  } else if (recipe.bits === 8) action = { kind: "q8", group: recipe.group };
  else action = { kind: "method", method: recipe.method, bits: recipe.bits === "ternary" ? 2 : recipe.bits, group: recipe.group };
  if (action.kind !== "method") return { action };
  const cols = shape[1];
  if (cols % action.group === 0) return { action };
  const smaller = LUT_GROUP_SIZES.find((g) => g < action.group && cols % g === 0);
  if (smaller !== undefined) {
    return { action: { ...action, group: smaller }, note: `cols ${cols} not a multiple of ${action.group}: group ${smaller}` };
  }
  return {
    action: { kind: "q8", group: action.group },
    note: `cols ${cols} not a multiple of 32/64/128: kept as q8`,
  };
}
