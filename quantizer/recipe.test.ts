// The recipe: default encodings per tensor, --keep parsing and matching, the width policy.
import { expect, test } from "bun:test";
import { defaultHead, headName, matchesPattern, parseHead, parseKeepRule, planTensor, type Recipe } from "./recipe.ts";

const recipe: Recipe = { bits: 2, group: 128, method: "gptq", embeddings: "q8", keep: [] };
const EMBED = "model.embed_tokens.weight";
const q4g64 = { kind: "method", method: "gptq", bits: 4, group: 64 } as const;
const q8g128 = { kind: "q8", group: 128 } as const;

test("defaults: linears take the method, the head its measured default (q4 g64 calibrated at 2-bit gptq), untied embeddings q8, vectors f32", () => {
  expect(planTensor("model.layers.0.mlp.up_proj.weight", [256, 512], recipe)).toEqual({ action: { kind: "method", method: "gptq", bits: 2, group: 128 } });
  expect(planTensor("lm_head.weight", [1000, 512], recipe)).toEqual({ action: q4g64 });
  expect(planTensor(EMBED, [1000, 512], recipe)).toEqual({ action: q8g128 });
  expect(planTensor("model.norm.weight", [512], recipe)).toEqual({ action: { kind: "f32" } });
  const at = (bits: Recipe["bits"], method: Recipe["method"]) => planTensor("lm_head.weight", [1000, 512], { ...recipe, group: 32, bits, method }).action;
  expect(at(2, "imatrix")).toEqual({ ...q4g64, method: "imatrix", group: 32 });
  expect(at(2, "rtn")).toEqual(q8g128);
  expect(at(2, "hlq")).toEqual(q8g128);
  expect(at(3, "gptq")).toEqual(q8g128);
  expect(at(4, "gptq")).toEqual(q8g128);
  expect(at("ternary", "ptqtp")).toEqual(q8g128);
  expect(at(8, "rtn")).toEqual({ kind: "q8", group: 32 });
  expect(headName(defaultHead(2, "gptq"))).toBe("q4g64");
  expect(headName(defaultHead(8, "rtn"))).toBe("q8");
});

test("--head: the head, and a tied table (stored once) with it; --embeddings alone still sets a tied table", () => {
  const noEmbeddings: Recipe = { ...recipe, embeddings: undefined };
  // Tied: the embedding table is the head.
  expect(planTensor(EMBED, [1000, 512], noEmbeddings, undefined, true)).toEqual({ action: q4g64 });
  expect(planTensor(EMBED, [1000, 512], { ...recipe, head: parseHead("f16") }, undefined, true)).toEqual({ action: { kind: "f16" } });
  expect(planTensor(EMBED, [1000, 512], { ...recipe, embeddings: "f16" }, undefined, true)).toEqual({
    action: { kind: "f16" },
    note: "tied head: --embeddings f16 (no --head)",
  });
  // Untied: --head leaves the embedding alone.
  expect(planTensor(EMBED, [1000, 512], { ...recipe, head: parseHead("f16") }, undefined, false)).toEqual({ action: { kind: "q8", group: 128 } });
  expect(planTensor("lm_head.weight", [1000, 512], { ...recipe, head: parseHead("q8g32") }).action).toEqual({ kind: "q8", group: 32 });
  expect(planTensor("lm_head.weight", [1000, 512], { ...recipe, head: parseHead("q3") }).action).toEqual({ ...q4g64, bits: 3, group: 128 });
  // A LUT head takes the recipe's method when it is calibrated (gptq, imatrix), else rtn.
  expect(planTensor("lm_head.weight", [1000, 512], { ...recipe, method: "hlq", head: parseHead("q4g64") }).action).toEqual({ ...q4g64, method: "rtn" });
  // The width policy applies to LUT heads too.
  expect(planTensor("lm_head.weight", [1000, 96], { ...recipe, head: parseHead("q4g64") })).toEqual({
    action: { ...q4g64, group: 32 },
    note: "cols 96 not a multiple of 64: group 32",
  });
  expect(() => parseHead("q5")).toThrow(/--head q5 is not supported/);
  expect(() => parseHead("f16g64")).toThrow(/--head f16g64/);
  expect(() => parseHead("q4g48")).toThrow(/group of 32, 64 or 128/);
  expect(parseHead("q4")).toEqual({ format: "q4" });
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

test("GGUF heads: q8-shaped blocks stay q8 without --head; --head q4 keeps Q4 blocks, re-quantises the rest", () => {
  const bits2: Recipe = { bits: 2, group: 32, method: "gptq", keep: [] };
  expect(planTensor("lm_head.weight", [64, 256], bits2, "Q8_0")).toMatchObject({ action: { kind: "transcode", target: 8 }, note: "Q8_0 head kept as q8 (no --head)" });
  expect(planTensor(EMBED, [64, 256], { ...bits2, fromSource: true }, "Q6_K", true)).toEqual({
    action: { kind: "q8", group: 32 },
    note: "Q6_K head at q8: widths follow the GGUF (no --head)",
  });
  expect(planTensor("lm_head.weight", [64, 256], bits2, "Q6_K")).toEqual({ action: q4g64 });
  const q4 = { ...bits2, head: parseHead("q4g64") };
  expect(planTensor("lm_head.weight", [64, 256], q4, "Q8_0")).toEqual({ action: q4g64 });
  expect(planTensor("lm_head.weight", [64, 256], q4, "Q4_0").action).toEqual({ kind: "transcode", from: "Q4_0", target: 4, fallback: q4g64 });
});
