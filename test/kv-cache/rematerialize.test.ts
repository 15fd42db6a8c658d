// XQuant's rematerialised keys and values against directly computed ones: the cache's K/V
// equal the projection of the reference twin's dequantised X (or latents) to float
// rounding, and that twin stays within the quantisation bound of the true X, so K/V differ
// from the direct ones by at most what the bound allows. XQuant-CL likewise, with the
// cross-layer accumulator simulated by the twin (its error must not grow with depth).
import { describe, expect, test } from "bun:test";
import { packedModelFromBytes } from "../../runtime/engine/packed-model.ts";
import { createRandom } from "../../runtime/engine/sampler.ts";
import { fakeQuantize } from "../../runtime/engine/kv-cache/kv-quant.ts";
import { createXquantCache } from "../../runtime/engine/kv-cache/xquant-cache.ts";
import { createXquantClCache } from "../../runtime/engine/kv-cache/xquant-cl-cache.ts";
import { createLatentCodec } from "../../runtime/engine/kv-cache/xquant-svd.ts";
import { loadKernels } from "../../runtime/kernels/wasm.ts";
import { resolveModel } from "../../runtime/models/registry.ts";
import { createWasmOps, packedWeightStore } from "../../runtime/ops/wasm-ops.ts";
import type { KvProjector } from "../../runtime/ops/types.ts";
import { createRandomModel, type RandomModelSpec } from "../fixtures/random-model.ts";
import { headerFor, type PackedTensor } from "../fixtures/pack-model.ts";
import { dequantize } from "../../runtime/format/pack-dequantize.ts";
import { packF16 } from "../../runtime/format/pack-f16.ts";
import { xquantFactors, xquantNames } from "../../quantizer/xquant.ts";
import { GQA, maxAbs, maxAbsDiff, MHA, packedTensors, QWEN3 } from "./helpers.ts";

const POSITIONS = 15;
const WINDOW = 4;

function setup(spec: RandomModelSpec) {
  const kernels = loadKernels();
  const source = createRandomModel(spec);
  const model = packedModelFromBytes(headerFor(source), packedTensors(spec), kernels);
  const { arch, args } = resolveModel(source.config);
  const ops = createWasmOps(kernels);
  const weights = packedWeightStore(model.matrices, model.vectors, "memory");
  const projector: KvProjector = (layer, x, n, first) => arch.projectKv(args, { ops, weights }, layer, x, n, first);
  const shape = { numLayers: args.numLayers, numHeads: args.numHeads, numKvHeads: args.numKvHeads, headDim: args.headDim, contextLength: 32 };
  const random = createRandom(spec.seed ?? 1);
  // Layer inputs X (positions, hidden) per layer; neighbouring layers similar, as in real models.
  const xs: Float32Array[] = [];
  for (let l = 0; l < args.numLayers; l++) {
    xs.push(Float32Array.from({ length: POSITIONS * args.hiddenSize }, (_, i) => (l === 0 ? 0 : xs[l - 1][i]) + (random() - 0.5) * (l === 0 ? 2 : 0.5)));
  }
  return { kernels, arch, args, ops, weights, projector, shape, xs };
}

/** Feeds every layer a prefill of 12 positions, then 3 single positions. */
function feed(cache: { attend: (input: any) => Float32Array }, s: ReturnType<typeof setup>) {
  const { args, xs, projector } = s;
  const qDim = args.numHeads * args.headDim;
  for (const [first, n] of [[0, 12], [12, 1], [13, 1], [14, 1]]) {
    for (let l = 0; l < args.numLayers; l++) {
      const x = xs[l].slice(first * args.hiddenSize, (first + n) * args.hiddenSize);
      const { k, v } = projector(l, x, n, first);
      cache.attend({ layer: l, q: new Float32Array(n * qDim).fill(0.1), k, v, n, startPos: first, x });
    }
  }
}

/** Rows quantised per token with groups of `group` channels (the twin of the X store). */
function twinRows(x: Float32Array, rows: number, width: number, group: number, bits: number): Float32Array {
  const out = x.slice();
  for (let r = 0; r < rows; r++) {
    for (let c0 = 0; c0 < width; c0 += group) out.set(fakeQuantize(x.subarray(r * width + c0, r * width + Math.min(width, c0 + group)), bits), r * width + c0);
  }
  return out;
}

const quantized = POSITIONS - WINDOW; // per-token stores: everything older than the window

describe("xquant rematerialisation", () => {
  for (const [label, spec] of [["llama MHA (caches X)", MHA], ["llama MHA 3-bit", MHA]] as const) {
    test(label, () => {
      const s = setup(spec);
      const bits = label.includes("3-bit") ? 3 : 4;
      const cache = createXquantCache(s.kernels, undefined, s.shape, { hidden: s.args.hiddenSize, projector: s.projector }, { window: WINDOW, bits });
      feed(cache, s);
      for (let l = 0; l < s.args.numLayers; l++) {
        const got = cache.rematerialize(l, 0, POSITIONS);
        const twinX = twinRows(s.xs[l], quantized, s.args.hiddenSize, 128, bits);
        const twin = s.projector(l, twinX, POSITIONS, 0);
        expect(maxAbsDiff(got.k, twin.k)).toBeLessThan(1e-5 * maxAbs(twin.k));
        expect(maxAbsDiff(got.v, twin.v)).toBeLessThan(1e-5 * maxAbs(twin.v));
        // Against the direct K/V: |ΔK| ≤ Σ_c |W_rc|·|ΔX_c| per pre-RoPE row; RoPE rotates pairs, so compare pair norms.
        const direct = s.projector(l, s.xs[l], POSITIONS, 0);
        const dx = s.xs[l].map((x, i) => Math.abs(x - twinX[i]));
        const wk = s.weights.matrix(`model.layers.${l}.self_attn.k_proj.weight`);
        expect(maxAbsDiff(got.k, direct.k)).toBeGreaterThan(1e-4 * maxAbs(direct.k)); // the quantisation is exercised
        const absW = absWeights(s, wk.name);
        const kvDim = wk.rows;
        const half = s.args.headDim / 2;
        for (let p = 0; p < POSITIONS; p++) {
          const b = new Float64Array(kvDim);
          for (let r = 0; r < kvDim; r++) for (let c = 0; c < wk.cols; c++) b[r] += absW[r * wk.cols + c] * dx[p * wk.cols + c];
          for (let h = 0; h < kvDim / s.args.headDim; h++) {
            for (let i = 0; i < half; i++) {
              const a = p * kvDim + h * s.args.headDim + i;
              const err = Math.hypot(got.k[a] - direct.k[a], got.k[a + half] - direct.k[a + half]);
              const allowed = Math.hypot(b[h * s.args.headDim + i], b[h * s.args.headDim + i + half]);
              expect(err).toBeLessThanOrEqual(allowed * 1.001 + 1e-5);
              if (p >= quantized) expect(err).toBeLessThan(1e-5 * maxAbs(direct.k));
            }
          }
        }
      }
    });
  }

  function absWeights(s: ReturnType<typeof setup>, name: string): Float32Array {
    const m = s.weights.matrix(name);
    const rows = new Float32Array(m.cols * m.cols).fill(0);
    for (let i = 0; i < m.cols; i++) rows[i * m.cols + i] = 1;
    // W·e_i for each basis vector: the dense f16 GEMM returns W's columns exactly.
    const out = new Float32Array(m.rows * m.cols);
    for (let i = 0; i < m.cols; i += 64) {
      const n = Math.min(64, m.cols - i);
      const cols = s.ops.linear(rows.slice(i * m.cols, (i + n) * m.cols), n, m);
      for (let t = 0; t < n; t++) for (let r = 0; r < m.rows; r++) out[r * m.cols + i + t] = Math.abs(cols[t * m.rows + r]);
    }
    return out;
  }

  for (const [label, spec] of [["llama GQA (SVD latents)", GQA], ["qwen3 GQA (latents, k_norm re-applied)", QWEN3]] as const) {
    test(label, () => {
      const s = setup(spec);
      const codec = createLatentCodec(s.kernels, s.ops, s.weights, s.args, s.arch.projectKv);
      expect(codec.storedFactors).toBe(false);
      const keyBlock = 4;
      const cache = createXquantCache(s.kernels, undefined, s.shape, { hidden: s.args.hiddenSize, projector: s.projector, latent: codec }, { window: WINDOW, keyBlock });
      feed(cache, s);
      const rank = codec.rank;
      for (let l = 0; l < s.args.numLayers; l++) {
        const latents = codec.encode(l, s.xs[l], POSITIONS); // (positions, 2·rank)
        // The SVD path itself reproduces the direct projection (f16 factors).
        const exact = codec.decode(l, latents, POSITIONS, 0);
        const direct = s.projector(l, s.xs[l], POSITIONS, 0);
        expect(maxAbsDiff(exact.k, direct.k)).toBeLessThan(3e-3 * maxAbs(direct.k));
        expect(maxAbsDiff(exact.v, direct.v)).toBeLessThan(3e-3 * maxAbs(direct.v));
        // Twin: key latents per channel over blocks of 4 positions, value latents per token.
        const keyQuantized = Math.floor((POSITIONS - WINDOW) / keyBlock) * keyBlock;
        const twin = latents.slice();
        for (let b = 0; b < keyQuantized; b += keyBlock) {
          for (let c = 0; c < rank; c++) {
            const column = Array.from({ length: keyBlock }, (_, r) => latents[(b + r) * 2 * rank + c]);
            fakeQuantize(column, 4).forEach((x, r) => (twin[(b + r) * 2 * rank + c] = x));
          }
        }
        for (let p = 0; p < quantized; p++) twin.set(fakeQuantize(latents.subarray(p * 2 * rank + rank, (p + 1) * 2 * rank), 4), p * 2 * rank + rank);
        const want = codec.decode(l, twin, POSITIONS, 0);
        const got = cache.rematerialize(l, 0, POSITIONS);
        expect(maxAbsDiff(got.k, want.k)).toBeLessThan(1e-5 * maxAbs(want.k));
        expect(maxAbsDiff(got.v, want.v)).toBeLessThan(1e-5 * maxAbs(want.v));
        // And the quantised rebuild stays near the direct K/V (4-bit latents).
        expect(maxAbsDiff(got.k, direct.k)).toBeGreaterThan(maxAbsDiff(exact.k, direct.k));
        expect(maxAbsDiff(got.k, direct.k)).toBeLessThan(0.15 * maxAbs(direct.k));
        expect(maxAbsDiff(got.v, direct.v)).toBeLessThan(0.15 * maxAbs(direct.v));
      }
    });
  }
});

test("factors stored by the quantizer (xquant_u, xquant_sb) are used as they are", () => {
  const base = packedTensors(GQA);
  const kvDim = 32, hidden = GQA.hidden;
  const extra: PackedTensor[] = [];
  for (const t of base.filter((t) => /k_proj.weight|v_proj.weight/.test(t.name))) {
    const f = xquantFactors(dequantize(t.encoding, t.bytes, kvDim, hidden), kvDim, hidden);
    const names = xquantNames(t.name.replace(".weight", ""));
    extra.push({ name: names.u, shape: [hidden, kvDim], encoding: { kind: "f16" }, bytes: packF16(f.u) });
    extra.push({ name: names.sb, shape: [kvDim, kvDim], encoding: { kind: "f16" }, bytes: packF16(f.sb) });
  }
  const kernels = loadKernels();
  const source = createRandomModel(GQA);
  const model = packedModelFromBytes(headerFor(source), [...base, ...extra], kernels);
  const { arch, args } = resolveModel(source.config);
  const ops = createWasmOps(kernels);
  const weights = packedWeightStore(model.matrices, model.vectors, "memory");
  const codec = createLatentCodec(kernels, ops, weights, args, arch.projectKv);
  expect(codec.storedFactors).toBe(true);
  const x = Float32Array.from({ length: 5 * hidden }, (_, i) => Math.sin(i));
  const direct = arch.projectKv(args, { ops, weights }, 1, x, 5, 3);
  const rebuilt = codec.decode(1, codec.encode(1, x, 5), 5, 3);
  expect(maxAbsDiff(rebuilt.k, direct.k)).toBeLessThan(3e-3 * maxAbs(direct.k));
  expect(maxAbsDiff(rebuilt.v, direct.v)).toBeLessThan(3e-3 * maxAbs(direct.v));
});

describe("xquant-cl rematerialisation", () => {
  test("equals the twin's cross-layer reconstruction; its error does not grow with depth", () => {
    const spec = { ...MHA, layers: 4 };
    const s = setup(spec);
    const hidden = s.args.hiddenSize;
    const cache = createXquantClCache(s.kernels, undefined, s.shape, { hidden, projector: s.projector }, { window: WINDOW, bits: 3, firstBits: 4 });
    feed(cache, s);
    let previous = new Float32Array(0);
    for (let l = 0; l < s.args.numLayers; l++) {
      // X̂_0 = Q4(X_0); X̂_l = X̂_{l-1} + Q3(X_l − X̂_{l-1}) for rows older than the window.
      const delta = l === 0 ? s.xs[0] : s.xs[l].map((x, i) => (i < quantized * hidden ? x - previous[i] : x));
      const q = twinRows(delta, quantized, hidden, 128, l === 0 ? 4 : 3);
      const xHat = l === 0 ? q : q.map((d, i) => (i < quantized * hidden ? d + previous[i] : d));
      const halfStep = Math.max(...Array.from({ length: quantized }, (_, r) => {
        const row = delta.subarray(r * hidden, (r + 1) * hidden);
        return (Math.max(...row) - Math.min(...row)) / (2 * ((l === 0 ? 15 : 7)));
      }));
      expect(maxAbsDiff(xHat, s.xs[l])).toBeLessThanOrEqual(halfStep * 1.002 + 1e-4);
      const want = s.projector(l, xHat, POSITIONS, 0);
      const got = cache.rematerialize(l, 0, POSITIONS);
      expect(maxAbsDiff(got.k, want.k)).toBeLessThan(1e-4 * maxAbs(want.k));
      expect(maxAbsDiff(got.v, want.v)).toBeLessThan(1e-4 * maxAbs(want.v));
      previous = xHat;
    }
  });

  test("layers out of order are refused", () => {
    const s = setup(MHA);
    const cache = createXquantClCache(s.kernels, undefined, s.shape, { hidden: s.args.hiddenSize, projector: s.projector });
    const x = s.xs[1].slice(0, s.args.hiddenSize);
    const { k, v } = s.projector(1, x, 1, 0);
    expect(() => cache.attend({ layer: 1, q: new Float32Array(s.args.numHeads * s.args.headDim), k, v, n: 1, startPos: 0, x })).toThrow(/layers run in order/);
  });
});
