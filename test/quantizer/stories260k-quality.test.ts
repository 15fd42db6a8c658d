// The quantizer on real weights (stories260K): method ordering on mean KL (head fixed), greedy agreement at
// 4 bits, the width policy for its 172-wide down_proj, and XQuant factors that rebuild K/V.
import { afterAll, describe, expect, test } from "bun:test";
import { importModel, packedSource } from "../../runtime/import/index.ts";
import { quantizeModel, type QuantizeOptions } from "../../quantizer/quantize.ts";
import { createReferenceEngine } from "../../runtime/engine/reference-engine.ts";
import { generateTokens } from "../../runtime/engine/generate-tokens.ts";
import { createSampler } from "../../runtime/engine/sampler.ts";
import { dequantize } from "../../runtime/format/pack-dequantize.ts";
import { unpackF16 } from "../../runtime/format/pack-f16.ts";
import type { ModelSource } from "../../runtime/models/types.ts";
import { haveFiles, modelPath } from "../shared-data.ts";

const MODEL = "stories260K/stories260K.bin";
const TOKENIZER = "stories260K/tok512.bin";
const available = haveFiles(MODEL, TOKENIZER);
const load = () => importModel(modelPath(MODEL), { tokenizer: modelPath(TOKENIZER) });
// Smaller streams than the CLI defaults keep the suite fast; the ordering holds at full size too.
const FAST: QuantizeOptions = { calibrationTokens: 1024, evaluationTokens: 384 };

function greedy(source: ModelSource, count: number): number[] {
  return [...generateTokens(createReferenceEngine(source), [1], { maxTokens: count, sampler: createSampler({ temperature: 0 }) })];
}

function asSource(r: Awaited<ReturnType<typeof quantizeModel>>): ModelSource {
  return packedSource("memory", r.header, r.tensors.map((t) => ({ ...t, bytes: () => t.bytes })));
}

function commonPrefix(a: number[], b: number[]): number {
  let n = 0;
  while (n < a.length && a[n] === b[n]) n++;
  return n;
}

describe.skipIf(!available)("stories260K", () => {
  let source: ModelSource | undefined;
  // The head is fixed (q8 g128) so that only the body's method differs: each method's default
  // head differs (recipe.ts defaultHead), and at 2 bits imatrix's q4 head costs about 0.025.
  const meanKl = async (options: QuantizeOptions) =>
    (await quantizeModel(source ??= await load(), { ...FAST, head: { format: "q8", group: 128 }, ...options })).report.kl_mean!;
  afterAll(() => {
    source = undefined;
  });
  // Mean KL as a fraction of rtn's, measured with these streams (rtn 1.680 at 2 bits, 0.353 at
  // 3 bits): gptq 0.699 and 0.603, imatrix 0.9985 and 0.846. The 2-bit gptq bound sits just
  // above its measure: GPTQ's damping at 0.1 instead of 0.01 measures 0.732 there (and 0.569,
  // better, at 3 bits), which a looser bound such as 0.8 would let through. imatrix and rtn
  // nearly tie at 2 bits, so there it only has to win.
  const RATIO_BOUNDS = { 2: { gptq: 0.715, imatrix: 1 }, 3: { gptq: 0.65, imatrix: 0.9 } } as const;
  for (const bits of [2, 3] as const) {
    test(`gptq and imatrix beat rtn on mean KL at ${bits} bits by the measured margins`, async () => {
      const rtn = await meanKl({ bits, method: "rtn" });
      for (const method of ["gptq", "imatrix"] as const) {
        const ratio = (await meanKl({ bits, method })) / rtn;
        expect({ method, ratio, ok: ratio < RATIO_BOUNDS[bits][method] }).toEqual({ method, ratio, ok: true });
      }
    }, 60_000);
  }

  test("ptqtp beats absmean on mean KL (ternary)", async () => {
    expect(await meanKl({ bits: "ternary", method: "ptqtp" })).toBeLessThan(await meanKl({ bits: "ternary", method: "absmean" }));
  }, 60_000);

  test("at 4 bits the default gptq recipe's greedy decoding from BOS follows fp32 for 50+ tokens (rtn: 20)", async () => {
    // fp32's own top-2 logit margin is 0.13 at token 21 and 0.20-0.25 around tokens 39-48, so
    // any 4-bit model eventually flips one of those near-ties (see bench/results/quality.md):
    // the default recipe (full calibration stream, two sweep-and-refit rounds) follows fp32 for
    // 86 tokens, but variants of similar mean KL range from 20 to 96. This pins the default;
    // a change that moves it must say so in quality.md.
    const source = await load();
    const reference = greedy(source, 60);
    const gptq = await quantizeModel(source, { bits: 4, method: "gptq", report: false });
    expect(commonPrefix(greedy(asSource(gptq), 60), reference)).toBeGreaterThanOrEqual(50);
    const rtn = await quantizeModel(source, { bits: 4, report: false });
    expect(commonPrefix(greedy(asSource(rtn), 60), reference)).toBeGreaterThanOrEqual(20);
    const q8 = await quantizeModel(source, { bits: 8, report: false });
    expect(commonPrefix(greedy(asSource(q8), 60), reference)).toBe(60);
  }, 60_000);

  test("down_proj (cols 172, no LUT group divides it) is kept as q8 and says so; the rest is bit-plane", async () => {
    const source = await load();
    const notes: string[] = [];
    const r = await quantizeModel(source, { bits: 2, report: false, onProgress: (e) => e.note && notes.push(`${e.name}: ${e.note}`) });
    const byName = new Map(r.tensors.map((t) => [t.name, t]));
    expect(byName.get("model.layers.0.mlp.down_proj.weight")!.encoding).toEqual({ kind: "q8", group: 32 });
    expect(byName.get("model.layers.0.mlp.up_proj.weight")!.encoding).toEqual({ kind: "bitplane", bits: 2, group: 32, scales: "zero-point" });
    expect(byName.get("model.embed_tokens.weight")!.encoding).toEqual({ kind: "q8", group: 128 }); // the tied head: 2-bit rtn's default
    expect(notes).toContain("model.layers.0.mlp.down_proj.weight: cols 172 not a multiple of 32/64/128/256: kept as q8");
    expect(r.header.quantization.notes).toMatchObject({ "model.layers.4.mlp.down_proj.weight": expect.stringContaining("q8") });
  });

  test("XQuant factors (GQA 8/4) rebuild the quantised K and V projections", async () => {
    const source = await load();
    const r = await quantizeModel(source, { bits: 3, report: false });
    expect(r.header.extra.xquant).toMatchObject({ rank: 32, layers: 5 });
    const byName = new Map(r.tensors.map((t) => [t.name, t]));
    for (const proj of ["k_proj", "v_proj"]) {
      const base = `model.layers.2.self_attn.${proj}`;
      const w = byName.get(`${base}.weight`)!;
      const wq = dequantize(w.encoding, w.bytes, 32, 64); // (kvDim, hidden)
      const u = unpackF16(byName.get(`${base}.xquant_u`)!.bytes, 64 * 32); // (hidden, rank)
      const sb = unpackF16(byName.get(`${base}.xquant_sb`)!.bytes, 32 * 32); // (rank, kvDim)
      let worst = 0, scale = 0;
      for (let h = 0; h < 64; h++) {
        for (let c = 0; c < 32; c++) {
          let s = 0;
          for (let j = 0; j < 32; j++) s += u[h * 32 + j] * sb[j * 32 + c];
          worst = Math.max(worst, Math.abs(s - wq[c * 64 + h]));
          scale = Math.max(scale, Math.abs(wq[c * 64 + h]));
        }
      }
      expect(worst).toBeLessThan(5e-3 * scale);
    }
  });
});
