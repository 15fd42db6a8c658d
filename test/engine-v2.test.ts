// The engine v2 forward (run state in WASM memory, ops on handles, kernel queue) against the
// reference backend on the same packed weights (the kernels' TypeScript twins over plain
// arrays, fp32 KV cache):
// - stories260K quantised to q8 and q4: the twin's greedy ids wherever they are clear, within
//   KL bounds, for 120 tokens from BOS;
// - random models of every architecture, 1 and 2 threads, every KV mode: logits within the
//   tolerance of the mode (float rounding for f32/f16, the quantisation of q8/q4/XQuant
//   measured as KL divergence and top-1 agreement).
import { afterAll, describe, expect, test } from "bun:test";
import { quantizeModel } from "../quantizer/quantize.ts";
import { createReferenceCache } from "../runtime/engine/kv-cache/reference-cache.ts";
import { KV_MODES, type KvMode } from "../runtime/engine/kv-cache/types.ts";
import { packedModelFromBytes } from "../runtime/engine/packed-model.ts";
import { createWasmBackend, type WasmBackend } from "../runtime/engine/wasm-backend.ts";
import type { CheckpointHeader } from "../runtime/format/header.ts";
import { importModel } from "../runtime/import/index.ts";
import { resolveModel } from "../runtime/models/registry.ts";
import { dequantize } from "../runtime/format/pack-dequantize.ts";
import { type PackedBytesMatrix, packedReferenceOps } from "../runtime/ops/packed-reference.ts";
import type { ForwardContext, WeightStore } from "../runtime/ops/types.ts";
import { createRandomModel, type RandomModelSpec } from "./fixtures/random-model.ts";
import { headerFor, type PackedTensor, packModel } from "./fixtures/pack-model.ts";
import { compareStreams } from "./kv-cache/helpers.ts";
import { haveFiles, modelPath } from "./shared-data.ts";

const backends: WasmBackend[] = [];
afterAll(async () => {
  for (const b of backends.splice(0)) await b.dispose();
});

/** The reference backend over packed tensors: the forward of `header`'s architecture on the kernels' twins. */
function createTwin(header: CheckpointHeader, tensors: readonly PackedTensor[], contextLength: number) {
  const { arch, args } = resolveModel(header.config);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const vectors = new Map<string, Float32Array>();
  const weights: WeightStore<PackedBytesMatrix, Float32Array> = {
    has: (name) => byName.has(name),
    matrix(name) {
      const t = byName.get(name)!;
      return { name, rows: t.shape[0], cols: t.shape[1], encoding: t.encoding, bytes: t.bytes };
    },
    vector(name) {
      if (!vectors.has(name)) {
        const t = byName.get(name)!;
        vectors.set(name, dequantize(t.encoding, t.bytes, 1, t.shape[0]));
      }
      return vectors.get(name)!;
    },
  };
  const cache = createReferenceCache({ ...args, contextLength });
  const state = packedReferenceOps.createState(arch.stateLayout(args), 64, contextLength);
  const ctx = { ops: packedReferenceOps, weights, attention: cache, state } as unknown as ForwardContext;
  return {
    args,
    forward: (tokens: number[], options = {}) => arch.forward(args, ctx, tokens, cache.length(), options),
  };
}

/** The twin's greedy ids from BOS and its logits at each step. */
function greedyWithLogits(forward: (tokens: number[]) => Float32Array, count: number): { ids: number[]; logits: Float32Array[] } {
  const ids: number[] = [];
  const logits: Float32Array[] = [];
  let current = forward([1]).slice();
  for (let i = 0; i < count; i++) {
    logits.push(current);
    ids.push(argmax(current));
    current = forward([ids[i]]).slice();
  }
  return { ids, logits };
}

function argmax(l: Float32Array): number {
  let best = 0;
  for (let v = 1; v < l.length; v++) if (l[v] > l[best]) best = v;
  return best;
}

/** Gap between the largest and the second largest logit. */
function topGap(l: Float32Array): number {
  const top = argmax(l);
  let second = -Infinity;
  for (let v = 0; v < l.length; v++) if (v !== top && l[v] > second) second = l[v];
  return l[top] - second;
}

/** KL(softmax(p) || softmax(q)). */
function kl(p: Float32Array, q: Float32Array): number {
  const lse = (l: Float32Array) => {
    let m = -Infinity;
    for (const x of l) m = Math.max(m, x);
    let z = 0;
    for (const x of l) z += Math.exp(x - m);
    return m + Math.log(z);
  };
  const [lp, lq] = [lse(p), lse(q)];
  let sum = 0;
  for (let v = 0; v < p.length; v++) sum += Math.exp(p[v] - lp) * (p[v] - lp - (q[v] - lq));
  return sum;
}

const STORIES = ["stories260K/stories260K.bin", "stories260K/tok512.bin"] as const;

// The engine's LUT tables and int8 activations round inputs that differ from the twin's by
// float rounding (the kernels' summation order), so a value on a rounding boundary can go the
// other way: the logits then move by up to about 0.36 (measured over these 120 steps, q8 and
// q4), the KL stays small (mean 5.3e-5 at q8, 2.8e-4 at q4; max 2.5e-3) and the greedy choice
// differs only where the twin's two best logits are within 1.6e-3. So the engine runs on the
// twin's ids (teacher forcing), picks the twin's token wherever the twin's top-2 gap exceeds
// 0.02, stays within those KL bounds, and gives identical logits on 1 and 2 threads.
describe.skipIf(!haveFiles(...STORIES))("stories260K: v2 against the reference backend on the same packed weights", () => {
  for (const bits of [8, 4] as const) {
    test(`q${bits} (rtn), 120 tokens from BOS: the twin's clear greedy ids, small KL, 1 and 2 threads identical`, async () => {
      const source = await importModel(modelPath(STORIES[0]), { tokenizer: modelPath(STORIES[1]) });
      const q = await quantizeModel(source, { bits, report: false });
      const twin = createTwin(q.header, q.tensors, 256);
      const want = greedyWithLogits((t) => twin.forward(t), 120);
      const byThreads: Float32Array[][] = [];
      for (const threads of [1, 2]) {
        const backend = await createWasmBackend(packedModelFromBytes(q.header, q.tensors), { threads, kv: "f32", contextLength: 256 });
        backends.push(backend);
        const got = [backend.forward([1]).slice(), ...want.ids.slice(0, -1).map((id) => backend.forward([id]).slice())];
        byThreads.push(got);
        const clearMisses = got.flatMap((l, i) => (argmax(l) !== want.ids[i] && topGap(want.logits[i]) > 0.02 ? [i] : []));
        expect(clearMisses).toEqual([]);
        const kls = got.map((l, i) => kl(want.logits[i], l));
        expect(kls.reduce((a, b) => a + b) / kls.length).toBeLessThan(bits === 8 ? 2e-4 : 1e-3);
        expect(Math.max(...kls)).toBeLessThan(1e-2);
      }
      expect(byThreads[1]).toEqual(byThreads[0]);
    }, 60_000);
  }
});

const TOKENS = [1, 17, 42, 5, 96, 33, 8, 61, 2, 77, 14, 90, 3, 51, 28, 66, 9, 40];
const PREFILL = 6;
const BASE = { hidden: 64, intermediate: 96, layers: 2, vocab: 97, seed: 7, heads: 4, kvHeads: 2 } as const;
const SPECS: Record<string, RandomModelSpec> = {
  llama: { ...BASE, arch: "llama" },
  mistral: { ...BASE, arch: "mistral", slidingWindow: 5 },
  qwen2: { ...BASE, arch: "qwen2", tieEmbeddings: true },
  qwen3: { ...BASE, arch: "qwen3", headDim: 32 },
};

/**
 * Tolerances per KV mode on f16 weights: f32 and f16 caches differ from the twin by float
 * rounding (f16 keys/values: 2^-11 relative); the compressed ones by their quantisation, with
 * small windows (4 positions) so most positions are quantised.
 */
const KV_OPTIONS = { kivi: { group: 4, window: 4 }, xquant: { window: 4, keyBlock: 4 }, xquantCl: { window: 4 } };
// Measured (mean KL, all four architectures): f32 ≤ 8e-14, f16 ≤ 8e-8, q8 ≤ 2e-5, q4 ≤ 6.3e-3,
// xquant ≤ 3.3e-3, xquant-cl ≤ 1.1e-2; 1 and 2 threads bit-identical.
const MAX_KL: Record<KvMode, number> = { f32: 1e-9, f16: 1e-6, q8: 1e-4, q4: 3e-2, xquant: 3e-2, "xquant-cl": 3e-2 };

describe("random models: v2 logits against the reference backend, every architecture, KV mode and 1-2 threads", () => {
  for (const [name, spec] of Object.entries(SPECS)) {
    test(name, async () => {
      const source = createRandomModel(spec);
      const tensors = packModel(source, { kind: "f16" }, { kind: "f16" });
      const header = headerFor(source);
      const twin = createTwin(header, tensors, 64);
      const all = twin.forward(TOKENS, { allLogits: true });
      const vocab = twin.args.vocabSize;
      const want = TOKENS.map((_, i) => all.slice(i * vocab, (i + 1) * vocab));
      for (const kv of KV_MODES) {
        let oneThread: Float32Array[] | undefined;
        for (const threads of [1, 2]) {
          const backend = await createWasmBackend(packedModelFromBytes(header, tensors), { threads, kv, contextLength: 64, kvOptions: KV_OPTIONS });
          backends.push(backend);
          const first = backend.forward(TOKENS.slice(0, PREFILL), { allLogits: true });
          const got = TOKENS.slice(0, PREFILL).map((_, i) => first.slice(i * vocab, (i + 1) * vocab));
          for (const token of TOKENS.slice(PREFILL)) got.push(backend.forward([token]).slice());
          const { meanKl, maxKl, top1 } = compareStreams(want, got);
          expect({ kv, threads, ok: meanKl <= MAX_KL[kv] && maxKl <= 10 * MAX_KL[kv] }).toEqual({ kv, threads, ok: true });
          // The exact and near-exact caches keep every argmax; the compressed ones are held by KL.
          if (kv === "f32" || kv === "f16" || kv === "q8") expect(top1).toBe(1);
          if (oneThread === undefined) oneThread = got;
          else expect(got).toEqual(oneThread); // a second thread changes no bit
          if (kv === "f32") {
            // f32 everywhere but the kernels' sum order: float rounding only.
            let worst = 0, scale = 0;
            for (let i = 0; i < want.length; i++) {
              for (let v = 0; v < vocab; v++) {
                worst = Math.max(worst, Math.abs(got[i][v] - want[i][v]));
                scale = Math.max(scale, Math.abs(want[i][v]));
              }
            }
            expect(worst / scale).toBeLessThan(1e-4);
          }
        }
      }
    }, 60_000);
  }
});
