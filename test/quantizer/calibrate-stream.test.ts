// Layer-by-layer calibration against the whole-model path: with fp32 inputs to later layers the
// reference engine gives exactly the whole-model statistics and the WASM engine the same within
// f32 rounding, on a random model of every architecture; the WASM matmul and XᵀX blocks match
// their float64 twins; quantising interleaved with calibration is deterministic; the streamed
// quality report equals the whole-model one.
import { describe, expect, test } from "bun:test";
import { collectCalibrationStats } from "../../quantizer/calibrate.ts";
import { type CalibrationEngine, createStreamingCalibrator } from "../../quantizer/calibrate-stream.ts";
import { accumulateXtxReference } from "../../quantizer/calibration-stats.ts";
import { createDenseEngine } from "../../quantizer/dense-engine.ts";
import type { LayerStats } from "../../quantizer/methods/types.ts";
import { quantizeModel } from "../../quantizer/quantize.ts";
import { compareModels, compareModelsStreaming } from "../../quantizer/report.ts";
import { packedSource } from "../../runtime/import/crumb.ts";
import { tokenStream } from "../../quantizer/texts.ts";
import { SUPPORTED_MODEL_TYPES } from "../../runtime/models/registry.ts";
import type { ModelSource } from "../../runtime/models/types.ts";
import { denseLinearInto } from "../../runtime/ops/reference.ts";
import { createRandomModel } from "../fixtures/random-model.ts";

const spec = (arch: string) => ({ arch, hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 2, vocab: 80, maxPositions: 64 });
const isLinear = (name: string) => name.startsWith("model.layers.") && name.endsWith("_proj.weight");

async function streamed(source: ModelSource, tokens: number[], engine: CalibrationEngine): Promise<Map<string, LayerStats>> {
  const calibrator = await createStreamingCalibrator(source, tokens, { wanted: isLinear, hessian: true, window: 32, engine, threads: 2 });
  const all = new Map<string, LayerStats>();
  try {
    expect(calibrator.engine).toBe(engine);
    const layers = Number(source.config.num_hidden_layers);
    for (let l = 0; l < layers; l++) {
      for (const [name, stats] of await calibrator.collect(l, (name) => source.tensors.get(name)!.read())) all.set(name, stats);
      await calibrator.advance(l);
    }
  } finally {
    await calibrator.dispose();
  }
  return all;
}

/** max |got - want| / max |want|. */
function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return diff / scale;
}

function random(seed: number, n: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

describe("streaming calibration equals whole-model calibration", () => {
  for (const arch of SUPPORTED_MODEL_TYPES) {
    test(arch, async () => {
      const source = createRandomModel(spec(arch));
      const tokens = tokenStream(source, "", 80, 1); // 3 windows of at most 32
      const whole = await collectCalibrationStats(source, tokens, { wanted: isLinear, hessian: true, window: 32 });
      expect(whole.size).toBe(14);
      expect(await streamed(source, tokens, "reference")).toEqual(whole);
      const wasm = await streamed(source, tokens, "wasm");
      expect([...wasm.keys()].sort()).toEqual([...whole.keys()].sort());
      for (const [name, want] of whole) {
        const got = wasm.get(name)!;
        expect(relativeError(got.importance!, want.importance!)).toBeLessThan(1e-5);
        expect(relativeError(got.hessian!, want.hessian!)).toBeLessThan(1e-5);
      }
    });
  }
});

describe("dense engine", () => {
  for (const threads of [1, 2]) {
    test(`matmul and XᵀX blocks match the float64 twins (${threads} thread${threads > 1 ? "s" : ""})`, async () => {
      const engine = await createDenseEngine({ threads });
      try {
        for (const [n, rows, cols] of [[1, 3, 5], [37, 130, 72], [70, 200, 2600]]) {
          const data = random(rows + cols, rows * cols);
          const x = random(n, n * cols);
          const mark = engine.mark();
          const got = engine.matmul(x, n, engine.upload("w", data, rows, cols));
          engine.release(mark);
          const want = new Float32Array(n * rows);
          denseLinearInto(x, n, { name: "w", rows, cols, data }, want);
          expect(relativeError(got, want)).toBeLessThan(1e-5);
          if (cols > 1000) continue;
          const wantXtx = new Float64Array(cols * cols);
          accumulateXtxReference(wantXtx, x, n, cols);
          const xtx = new Float64Array(cols * cols);
          engine.accumulateXtx(xtx, x, n, cols);
          expect(relativeError(xtx, wantXtx)).toBeLessThan(1e-5);
          for (let i = 1; i < cols; i++) expect(xtx[i * cols]).toBe(0); // lower triangle untouched
        }
      } finally {
        await engine.dispose();
      }
    });
  }
});

describe("quantising interleaved with streaming calibration", () => {
  test("gptq and imatrix give the same bytes twice; fp32 and quantised calibration inputs differ past layer 0", async () => {
    const source = createRandomModel(spec("llama"));
    const options = { bits: 2 as const, calibrationTokens: 64, report: false };
    for (const method of ["gptq", "imatrix"] as const) {
      const a = await quantizeModel(source, { ...options, method });
      const b = await quantizeModel(source, { ...options, method });
      expect(a.tensors.slice(0, source.tensors.size).map((t) => t.name)).toEqual([...source.tensors.keys()]); // source order, then XQuant factors
      expect(b.tensors.map((t) => t.bytes)).toEqual(a.tensors.map((t) => t.bytes));
    }
    const bytes = async (calibrationInputs: "quantized" | "fp32") =>
      new Map((await quantizeModel(source, { ...options, method: "gptq", calibrationInputs })).tensors.map((t) => [t.name, t.bytes]));
    const [q, f] = [await bytes("quantized"), await bytes("fp32")];
    expect(q.get("model.layers.0.self_attn.q_proj.weight")).toEqual(f.get("model.layers.0.self_attn.q_proj.weight")!);
    expect(q.get("model.layers.1.self_attn.q_proj.weight")).not.toEqual(f.get("model.layers.1.self_attn.q_proj.weight")!);
  }, 60_000); // four quantisations: seconds on a loaded 2-core host
});

describe("streamed quality report", () => {
  test("equals the whole-model report (reference engine exactly, wasm within f32 rounding)", async () => {
    const source = createRandomModel({ ...spec("qwen2"), tieEmbeddings: true });
    const q = await quantizeModel(source, { bits: 2, report: false });
    const quantized = packedSource("memory", q.header, q.tensors.map((t) => ({ ...t, bytes: () => t.bytes })));
    const tokens = tokenStream(source, "", 70, 2);
    const whole = compareModels(source, quantized, tokens, { window: 32 });
    expect(whole.positions).toBe(31 + 31 + 5);
    expect(await compareModelsStreaming(source, quantized, tokens, { window: 32, engine: "reference" })).toEqual(whole);
    const wasm = await compareModelsStreaming(source, quantized, tokens, { window: 32, engine: "wasm", threads: 2 });
    expect(wasm.positions).toBe(whole.positions);
    expect(wasm.top1).toBe(whole.top1);
    for (const key of ["kl_mean", "kl_p99", "kl_max", "ppl_ratio"] as const) {
      expect(Math.abs(wasm[key] - whole[key])).toBeLessThan(1e-4 * Math.max(1e-3, whole[key]));
    }
  });
});
