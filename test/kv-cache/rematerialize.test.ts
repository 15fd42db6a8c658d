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
import { createWasmOps, type WasmActivation } from "../../runtime/ops/wasm-ops.ts";
import { createWasmWeights } from "../../runtime/ops/wasm-weights.ts";
import { createKernelQueue } from "../../runtime/threads/kernel-queue.ts";
import type { KvProjector } from "../../runtime/ops/types.ts";
import { createRandomModel, type RandomModelSpec } from "../fixtures/random-model.ts";
import { headerFor, type PackedTensor } from "../fixtures/pack-model.ts";
import { dequantize } from "../../runtime/format/pack-dequantize.ts";
import { packF16 } from "../../runtime/format/pack-f16.ts";
import { xquantFactors, xquantNames } from "../../runtime/engine/kv-cache/xquant-factors.ts";
import { GQA, maxAbs, maxAbsDiff, MHA, packedTensors, QWEN3 } from "./helpers.ts";

const POSITIONS = 15;
const WINDOW = 4;

function setup(spec: RandomModelSpec) {
  const kernels = loadKernels();
  const source = createRandomModel(spec);
  const model = packedModelFromBytes(headerFor(source), packedTensors(spec), kernels);
  const { arch, args } = resolveModel(source.config);
  const ops = createWasmOps(createKernelQueue(kernels, undefined));
  const weights = createWasmWeights(kernels, model.matrices, model.vectors, "memory");
  const projector: KvProjector<WasmActivation> = (layer, x, n, first, k, v) => arch.projectKv(args, { ops, weights }, layer, x, n, first, k, v);
  const shape = { numLayers: args.numLayers, numHeads: args.numHeads, numKvHeads: args.numKvHeads, headDim: args.headDim, contextLength: 32 };
  const kvDim = args.numKvHeads * args.headDim;
  const qDim = args.numHeads * args.headDim;
  // Run-state buffers for the test's own projections and attention inputs.
  const io = ops.createState({ x: args.hiddenSize, latents: 2 * kvDim, k: kvDim, v: kvDim, q: qDim, out: qDim }, 32, 32);
  /** K and V (copies) of X rows through the architecture's projectKv. */
  const project = (layer: number, x: Float32Array, n: number, first: number) => {
    ops.write(io.x, n, x);
    projector(layer, io.x, n, first, io.k, io.v);
    return { k: ops.read(io.k, n).slice(), v: ops.read(io.v, n).slice() };
  };
  const random = createRandom(spec.seed ?? 1);
  // Layer inputs X (positions, hidden) per layer; neighbouring layers similar, as in real models.
  const xs: Float32Array[] = [];
  for (let l = 0; l < args.numLayers; l++) {
    xs.push(Float32Array.from({ length: POSITIONS * args.hiddenSize }, (_, i) => (l === 0 ? 0 : xs[l - 1][i]) + (random() - 0.5) * (l === 0 ? 2 : 0.5)));
  }
  return { kernels, arch, args, ops, weights, projector, project, io, shape, xs };
}

/** Feeds every layer a prefill of 12 positions, then 3 single positions. */
function feed(cache: { attend: (input: any) => void }, s: ReturnType<typeof setup>) {
  const { args, xs, projector, ops, io } = s;
  const qDim = args.numHeads * args.headDim;
  for (const [first, n] of [[0, 12], [12, 1], [13, 1], [14, 1]]) {
    for (let l = 0; l < args.numLayers; l++) {
      ops.write(io.x, n, xs[l].slice(first * args.hiddenSize, (first + n) * args.hiddenSize));
      projector(l, io.x, n, first, io.k, io.v);
      ops.write(io.q, n, new Float32Array(n * qDim).fill(0.1));
      cache.attend({ layer: l, q: io.q, k: io.k, v: io.v, n, startPos: first, x: io.x, out: io.out });
    }
  }
}

/** Latents (copies) of X rows, and K/V (copies) decoded from latent rows. */
function latentIo(s: ReturnType<typeof setup>, codec: ReturnType<typeof createLatentCodec>) {
  const { ops, io } = s;
  return {
    encode(layer: number, x: Float32Array, n: number) {
      ops.write(io.x, n, x);
      return codec.encode(layer, io.x, n).slice();
    },
    decode(layer: number, latents: Float32Array, n: number, first: number) {
      ops.write(io.latents, n, latents);
      codec.decode(layer, io.latents, n, first, io.k, io.v);
      return { k: ops.read(io.k, n).slice(), v: ops.read(io.v, n).slice() };
    },
  };
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
      const cache = createXquantCache(s.ops, s.shape, { hidden: s.args.hiddenSize, projector: s.projector }, { window: WINDOW, bits });
      feed(cache, s);
      for (let l = 0; l < s.args.numLayers; l++) {
        const got = cache.rematerialize(l, 0, POSITIONS);
        const twinX = twinRows(s.xs[l], quantized, s.args.hiddenSize, 128, bits);
        const twin = s.project(l, twinX, POSITIONS, 0);
        expect(maxAbsDiff(got.k, twin.k)).toBeLessThan(1e-5 * maxAbs(twin.k));
        expect(maxAbsDiff(got.v, twin.v)).toBeLessThan(1e-5 * maxAbs(twin.v));
        // Against the direct K/V: |ΔK| ≤ Σ_c |W_rc|·|ΔX_c| per pre-RoPE row; RoPE rotates pairs, so compare pair norms.
        const direct = s.project(l, s.xs[l], POSITIONS, 0);
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
    const io = s.ops.createState({ e: m.cols, w: m.rows }, 64, 32);
    const group = [{ weight: m, out: io.w }];
    for (let i = 0; i < m.cols; i += 64) {
      const n = Math.min(64, m.cols - i);
      s.ops.write(io.e, n, rows.slice(i * m.cols, (i + n) * m.cols));
      s.ops.linear(io.e, n, group);
      const cols = s.ops.read(io.w, n);
      for (let t = 0; t < n; t++) for (let r = 0; r < m.rows; r++) out[r * m.cols + i + t] = Math.abs(cols[t * m.rows + r]);
    }
    return out;
  }

  for (const [label, spec] of [["llama GQA (SVD latents)", GQA], ["qwen3 GQA (latents, k_norm re-applied)", QWEN3]] as const) {
    test(label, () => {
      const s = setup(spec);
      const codec = createLatentCodec(s.ops, s.weights, s.args, s.arch.projectKv);
      expect(codec.storedFactors).toBe(false);
      const latent = latentIo(s, codec);
      const keyBlock = 4;
      const cache = createXquantCache(s.ops, s.shape, { hidden: s.args.hiddenSize, projector: s.projector, latent: codec }, { window: WINDOW, keyBlock });
      feed(cache, s);
      const rank = codec.rank;
      for (let l = 0; l < s.args.numLayers; l++) {
        const latents = latent.encode(l, s.xs[l], POSITIONS); // (positions, 2·rank)
        // The SVD path itself reproduces the direct projection (f16 factors).
        const exact = latent.decode(l, latents, POSITIONS, 0);
        const direct = s.project(l, s.xs[l], POSITIONS, 0);
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
        const want = latent.decode(l, twin, POSITIONS, 0);
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
  const ops = createWasmOps(createKernelQueue(kernels, undefined));
  const weights = createWasmWeights(kernels, model.matrices, model.vectors, "memory");
  const codec = createLatentCodec(ops, weights, args, arch.projectKv);
  expect(codec.storedFactors).toBe(true);
  const io = ops.createState({ x: hidden, latents: 2 * kvDim, k: kvDim, v: kvDim }, 8, 16);
  ops.write(io.x, 5, Float32Array.from({ length: 5 * hidden }, (_, i) => Math.sin(i)));
  arch.projectKv(args, { ops, weights }, 1, io.x, 5, 3, io.k, io.v);
  const direct = { k: ops.read(io.k, 5).slice(), v: ops.read(io.v, 5).slice() };
  ops.write(io.latents, 5, codec.encode(1, io.x, 5));
  codec.decode(1, io.latents, 5, 3, io.k, io.v);
  const rebuilt = { k: ops.read(io.k, 5).slice(), v: ops.read(io.v, 5).slice() };
  expect(maxAbsDiff(rebuilt.k, direct.k)).toBeLessThan(3e-3 * maxAbs(direct.k));
  expect(maxAbsDiff(rebuilt.v, direct.v)).toBeLessThan(3e-3 * maxAbs(direct.v));
});

describe("xquant-cl rematerialisation", () => {
  test("equals the twin's cross-layer reconstruction; its error does not grow with depth", () => {
    const spec = { ...MHA, layers: 4 };
    const s = setup(spec);
    const hidden = s.args.hiddenSize;
    const cache = createXquantClCache(s.ops, s.shape, { hidden, projector: s.projector }, { window: WINDOW, bits: 3, firstBits: 4 });
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
      const want = s.project(l, xHat, POSITIONS, 0);
      const got = cache.rematerialize(l, 0, POSITIONS);
      expect(maxAbsDiff(got.k, want.k)).toBeLessThan(1e-4 * maxAbs(want.k));
      expect(maxAbsDiff(got.v, want.v)).toBeLessThan(1e-4 * maxAbs(want.v));
      previous = xHat;
    }
  });

  test("layers out of order are refused", () => {
    const s = setup(MHA);
    const cache = createXquantClCache(s.ops, s.shape, { hidden: s.args.hiddenSize, projector: s.projector });
    const { io } = s;
    s.ops.write(io.x, 1, s.xs[1].slice(0, s.args.hiddenSize));
    s.projector(1, io.x, 1, 0, io.k, io.v);
    expect(() => cache.attend({ layer: 1, q: io.q, k: io.k, v: io.v, n: 1, startPos: 0, x: io.x, out: io.out })).toThrow(/layers run in order/);
  });
});
