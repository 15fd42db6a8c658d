// The output head in the quantizer (issue 13): the streaming calibrator's head statistics equal
// what the whole fp32 model records for its head's input; a calibrated head is quantised last,
// on those statistics (its bytes equal GPTQ run directly on them); a tied table is stored once
// in the head's encoding, and --embeddings alone still sets it; a --keep rule naming a tensor no
// calibration reaches falls back to rtn and says so (it used to fail).
import { describe, expect, test } from "bun:test";
import { createStreamingCalibrator } from "../../quantizer/calibrate-stream.ts";
import { accumulateXtxReference, createStatsRecorder } from "../../quantizer/calibration-stats.ts";
import { packQuantized, quantizeGptq } from "../../quantizer/methods/index.ts";
import type { LayerStats } from "../../quantizer/methods/types.ts";
import { quantizeModel } from "../../quantizer/quantize.ts";
import { parseHead } from "../../quantizer/recipe.ts";
import { tokenStream } from "../../quantizer/texts.ts";
import { createReferenceCache } from "../../runtime/engine/kv-cache/reference-cache.ts";
import { encodingName } from "../../runtime/format/encoding.ts";
import { resolveModel } from "../../runtime/models/registry.ts";
import type { ModelSource } from "../../runtime/models/types.ts";
import type { ForwardContext } from "../../runtime/ops/types.ts";
import { createReferenceWeights, referenceOps } from "../../runtime/ops/reference.ts";
import { createRandomModel } from "../fixtures/random-model.ts";

const EMBED = "model.embed_tokens.weight";
const spec = (tied: boolean) => ({
  arch: "llama",
  hidden: 64,
  intermediate: 96,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  vocab: 80,
  maxPositions: 64,
  tieEmbeddings: tied,
});

/** The head's input statistics recorded while the whole fp32 model computes every position's logits. */
function wholeModelHeadStats(source: ModelSource, tokens: number[], head: string, window = 32): LayerStats {
  const { arch, args } = resolveModel(source.config);
  const recorder = createStatsRecorder(referenceOps, { wanted: (name) => name === head, hessian: true }, accumulateXtxReference);
  const weights = createReferenceWeights(source);
  for (let start = 0; start < tokens.length; start += window) {
    const chunk = tokens.slice(start, start + window);
    const attention = createReferenceCache({ ...args, contextLength: chunk.length });
    const state = recorder.ops.createState(arch.stateLayout(args), chunk.length, chunk.length);
    arch.forward(args, { ops: recorder.ops, weights, attention, state } as unknown as ForwardContext, chunk, 0, { allLogits: true });
  }
  return recorder.finish().get(head)!;
}

async function streamedHeadStats(source: ModelSource, tokens: number[], engine: "reference" | "wasm"): Promise<LayerStats> {
  const calibrator = await createStreamingCalibrator(source, tokens, {
    wanted: () => false,
    hessian: true,
    window: 32,
    engine,
    threads: 2,
  });
  const read = (name: string) => source.tensors.get(name)!.read();
  try {
    expect(() => calibrator.headStats(read)).toThrow(/head statistics need all 2 layers/);
    for (let l = 0; l < 2; l++) {
      await calibrator.collect(l, read);
      await calibrator.advance(l);
    }
    return calibrator.headStats(read);
  } finally {
    await calibrator.dispose();
  }
}

function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return diff / scale;
}

describe("head statistics", () => {
  for (const tied of [true, false]) {
    test(`equal the whole model's record of the head's input (${tied ? "tied" : "untied"}; reference exactly, wasm within f32 rounding)`, async () => {
      const source = createRandomModel(spec(tied));
      const tokens = tokenStream(source, "", 80, 1);
      const want = wholeModelHeadStats(source, tokens, tied ? EMBED : "lm_head.weight");
      expect(want.hessian!.length).toBe(64 * 64);
      expect(await streamedHeadStats(source, tokens, "reference")).toEqual(want);
      const wasm = await streamedHeadStats(source, tokens, "wasm");
      expect(relativeError(wasm.importance!, want.importance!)).toBeLessThan(1e-5);
      expect(relativeError(wasm.hessian!, want.hessian!)).toBeLessThan(1e-5);
    });
  }
});

describe("the head in quantizeModel", () => {
  test("a calibrated head is GPTQ on the final norm's statistics, stored once for a tied model, and recorded", async () => {
    const source = createRandomModel(spec(true));
    const options = {
      bits: 2,
      method: "gptq",
      calibrationTokens: 64,
      calibrationInputs: "fp32",
      calibrationEngine: "reference",
      report: false,
    } as const;
    const r = await quantizeModel(source, options);
    expect(r.tensors.some((t) => t.name === "lm_head.weight")).toBe(false);
    const table = r.tensors.find((t) => t.name === EMBED)!;
    expect(encodingName(table.encoding)).toBe("q4g64zp");
    expect(r.header.quantization).toMatchObject({ head: "q4g64", head_default: true, embeddings: "q8" });
    expect((r.header.quantization.notes as Record<string, string>)[EMBED]).toBeUndefined();
    // With fp32 calibration inputs the head's statistics are the whole model's (one window of
    // the model's 64 positions), so GPTQ run directly on them must give the file's bytes.
    const stats = wholeModelHeadStats(source, tokenStream(source, "", 64, 1), EMBED, 64);
    const weights = source.tensors.get(EMBED)!.read();
    const direct = packQuantized(quantizeGptq({ weights, rows: 80, cols: 64, group: 64, bits: 4, ...stats }), 80, 64);
    expect(Buffer.from(table.bytes).equals(Buffer.from(direct))).toBe(true);
  }, 30_000);

  test("--head and --embeddings on tied and untied models; --keep beyond calibration's reach falls back to rtn", async () => {
    const tied = createRandomModel(spec(true));
    const untied = createRandomModel(spec(false));
    const quick = { bits: 2, report: false, xquant: false } as const;
    const enc = async (source: ModelSource, options: Parameters<typeof quantizeModel>[1]) =>
      new Map((await quantizeModel(source, { ...quick, ...options })).tensors.map((t) => [t.name, encodingName(t.encoding)]));
    expect((await enc(tied, {})).get(EMBED)).toBe("q8g128"); // rtn at 2 bits: an uncalibrated q4 head costs too much
    expect((await enc(tied, { head: parseHead("q4g64") })).get(EMBED)).toBe("q4g64zp");
    expect((await enc(tied, { embeddings: "f16" })).get(EMBED)).toBe("f16");
    expect((await enc(tied, { embeddings: "f16", head: parseHead("q8") })).get(EMBED)).toBe("q8g32");
    const u = await enc(untied, { head: parseHead("q4g64") });
    expect([u.get(EMBED), u.get("lm_head.weight")]).toEqual(["q8g32", "q4g64zp"]);
    const kept = await quantizeModel(untied, { ...quick, method: "gptq", calibrationTokens: 32, keep: [{ pattern: EMBED, action: "q4" }] });
    expect(encodingName(kept.tensors.find((t) => t.name === EMBED)!.encoding)).toBe("q4g32zp");
    expect((kept.header.quantization.notes as Record<string, string>)[EMBED]).toBe("no calibration statistics reach this tensor: rtn");
  }, 30_000);
});
