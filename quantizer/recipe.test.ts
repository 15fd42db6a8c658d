// The recipe: default encodings per tensor, --keep parsing and matching, the width policy.
import { expect, test } from "bun:test";
import { matchesPattern, parseKeepRule, planTensor, type Recipe } from "./recipe.ts";

const recipe: Recipe = { bits: 2, group: 128, method: "gptq", embeddings: "q8", keep: [] };

test("defaults: linears take the method, embeddings q8, vectors f32", () => {
  expect(planTensor("model.layers.0.mlp.up_proj.weight", [256, 512], recipe)).toEqual({ action: { kind: "method", method: "gptq", bits: 2, group: 128 } });
  expect(planTensor("lm_head.weight", [1000, 512], recipe)).toEqual({ action: { kind: "q8", group: 128 } });
  expect(planTensor("model.norm.weight", [512], recipe)).toEqual({ action: { kind: "f32" } });
});

test("width policy: a smaller dividing group, else q8, with a note", () => {
  expect(planTensor("a.weight", [8, 192], recipe)).toEqual({
    action: { kind: "method", method: "gptq", bits: 2, group: 64 },
    note: "cols 192 not a multiple of 128: group 64",
  });
  expect(planTensor("a.weight", [8, 172], recipe)).toEqual({ action: { kind: "q8", group: 128 }, note: "cols 172 not a multiple of 32/64/128/256: kept as q8" });
});

test("--keep: glob patterns, first match wins, bad specs are refused", () => {
  expect(matchesPattern("*.mlp.down_proj.weight", "model.layers.3.mlp.down_proj.weight")).toBe(true);
  expect(matchesPattern("*.mlp.down_proj.weight", "model.layers.3.mlp.down_proj.bias")).toBe(false);
  expect(matchesPattern("model.layers.1*", "model.layers.10.x")).toBe(true);
  const keep = [parseKeepRule("*.down_proj.weight=q4"), parseKeepRule("*=f16")];
  expect(planTensor("model.layers.0.mlp.down_proj.weight", [64, 256], { ...recipe, keep }).action).toEqual({ kind: "method", method: "gptq", bits: 4, group: 128 });
  expect(planTensor("model.layers.0.mlp.up_proj.weight", [64, 256], { ...recipe, keep }).action).toEqual({ kind: "f16" });
  expect(planTensor("x.weight", [64, 256], { ...recipe, keep: [parseKeepRule("x.*=t2")] }).action).toEqual({ kind: "method", method: "ptqtp", bits: 2, group: 128 });
  expect(() => parseKeepRule("=q4")).toThrow(/<tensor-pattern>=<encoding>/);
  expect(() => parseKeepRule("*.weight=q9")).toThrow(/one of f32, f16, q8/);
});

test("GGUF sources: blocks kept where a crumb encoding of the asked width holds them, else re-quantised", () => {
  const source: Recipe = { bits: 4, group: 32, method: "rtn", embeddings: "q8", keep: [], fromSource: true };
  const up = "model.layers.0.mlp.up_proj.weight";
  const rtn4 = { kind: "method", method: "rtn", bits: 4, group: 32 } as const;
  expect(planTensor(up, [64, 256], source, "Q4_K").action).toEqual({ kind: "transcode", from: "Q4_K", target: 4, fallback: rtn4 });
  expect(planTensor(up, [64, 256], source, "Q8_0").action).toEqual({ kind: "transcode", from: "Q8_0", target: 8, fallback: { kind: "q8", group: 32 } });
  expect(planTensor(up, [64, 256], source, "TQ2_0").action).toMatchObject({ kind: "transcode", target: "ternary", fallback: { method: "absmean" } });
  expect(planTensor(up, [64, 256], source, "Q6_K").action).toEqual({ kind: "q8", group: 32 });
  expect(planTensor(up, [64, 256], source, "IQ2_XS").action).toEqual(rtn4);
  expect(planTensor(up, [64, 256], { ...source, bits: 3 }, "F16").action).toEqual({ ...rtn4, bits: 3 });
  // Embeddings are looked up by row: q8 (kept when the blocks are q8-shaped).
  expect(planTensor("model.embed_tokens.weight", [64, 256], source, "Q4_0").action).toMatchObject({ kind: "transcode", target: 8 });
  expect(planTensor("model.embed_tokens.weight", [64, 256], source, "Q4_K").action).toEqual({ kind: "q8", group: 32 });
  // --bits 2: nothing has a 2-bit form; --keep always re-quantises.
  const two: Recipe = { ...source, bits: 2, fromSource: false };
  expect(planTensor(up, [64, 256], two, "Q4_K").action).toEqual({ ...rtn4, bits: 2 });
  expect(planTensor(up, [64, 256], { ...source, keep: [parseKeepRule("*=q4")] }, "Q4_0").action).toEqual(rtn4);
  expect(planTensor(up, [64, 256], { ...source, bits: 8, fromSource: false }, "Q4_0").action).toMatchObject({ kind: "transcode", target: 8 });
});
