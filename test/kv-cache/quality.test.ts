// Every compressed attention state against the f32 cache (itself checked against the fp32
// reference cache in test/wasm-engine.test.ts) on random models: KL divergence of the
// next-token distributions and top-1 agreement over a prefill + decode stream, and the
// compact bytes per cached position. Small windows make most positions quantised.
import { afterAll, describe, expect, test } from "bun:test";
import type { KvOptions } from "../../runtime/engine/kv-cache/create-kv-cache.ts";
import { backendFor, backends, compareStreams, GQA, MHA, QWEN3, randomTokens, streamLogits } from "./helpers.ts";

afterAll(async () => {
  for (const b of backends) await b.dispose();
});

const SMALL_WINDOWS: KvOptions = { kivi: { window: 8, group: 8 }, xquant: { window: 8 }, xquantCl: { window: 8 } };
const STREAM = randomTokens(110, 211, 3);
const PREFILL = 40;

// Measured (mean KL over 110 positions, these seeds): q4 ≈ 9e-3, xquant 4-bit ≈ 7e-3 to
// 1e-2, xquant-cl 3-bit ≈ 1.1e-2 to 1.6e-2; these bounds leave about 3x margin. Random models
// have near-tied logits, so top-1 flips more easily than on trained ones.
// f16 and q8 are held close to what they measure, so that losing one bit shows:
//   f16: 7.6e-8 (MHA), 1.3e-7 (GQA), 8.1e-8 (qwen3); bound 4e-7.
//   q8: 2.6e-5 (MHA), 3.7e-5 (GQA), 2.8e-5 (qwen3); bound 6e-5. With the codes kept to 7 bits
//   (step doubled) it measures 1.0e-4, 1.1e-4 and 1.3e-4.
const BOUNDS = {
  f16: { meanKl: 4e-7, top1: 0.99 },
  q8: { meanKl: 6e-5, top1: 0.95 },
  q4: { meanKl: 0.03, top1: 0.65 },
  xquant: { meanKl: 0.04, top1: 0.65 },
  "xquant-cl": { meanKl: 0.05, top1: 0.65 },
} as const;

describe("compressed caches stay close to the f32 cache", () => {
  for (const [label, spec] of [["llama MHA", MHA], ["llama GQA 8/2", GQA], ["qwen3 GQA (k_norm)", QWEN3]] as const) {
    test(label, async () => {
      const reference = await streamLogits(await backendFor(spec, "f32"), STREAM, PREFILL);
      for (const [mode, bound] of Object.entries(BOUNDS)) {
        const backend = await backendFor(spec, mode as keyof typeof BOUNDS, { kvOptions: SMALL_WINDOWS });
        const stats = compareStreams(reference, await streamLogits(backend, STREAM, PREFILL));
        expect({ mode, ok: stats.meanKl < bound.meanKl && stats.top1 >= bound.top1, stats }).toEqual({ mode, ok: true, stats });
      }
    }, 60_000);
  }

  test("q8 with the default windows is near-free: KL < 1.5e-4 at every position", async () => {
    // Measured: max 4.9e-5 (mean 1.6e-5); with 7-bit codes, max 2.3e-4.
    const reference = await streamLogits(await backendFor(MHA, "f32"), STREAM, PREFILL);
    const stats = compareStreams(reference, await streamLogits(await backendFor(MHA, "q8"), STREAM, PREFILL));
    expect(stats.maxKl).toBeLessThan(1.5e-4);
  });
});

describe("bytes per cached position", () => {
  test("match the layouts (MHA: hidden 128, kvDim 128, 3 layers)", async () => {
    const expected = {
      f32: 3 * 2 * 128 * 4,
      f16: 3 * 2 * 128 * 2,
      // K and V codes + per-channel (min, step) f16 per 32-position block + per-token f16 pairs per 32 channels
      q8: 3 * (2 * 128 + (4 * 128) / 32 + 4 * 4),
      q4: 3 * (2 * 64 + (4 * 128) / 32 + 4 * 4),
      // X at 4 bits, one f16 pair per 128 channels
      xquant: 3 * (64 + 4),
      // layer 0 at 4 bits, deltas at 3 bits
      "xquant-cl": 64 + 4 + 2 * (48 + 4),
    } as const;
    for (const [mode, bytes] of Object.entries(expected)) {
      expect({ mode, bytes: (await backendFor(MHA, mode as keyof typeof expected)).cache.bytesPerToken }).toEqual({ mode, bytes });
    }
  });

  test("grouped-query xquant caches the SVD latents (rank kvDim), 2-bit keeps latent channel 0 in f16", async () => {
    // GQA: kvDim 32 (2 heads of 16): key latents per channel (32-position blocks), value latents per token (one group of 32).
    expect((await backendFor(GQA, "xquant")).cache.bytesPerToken).toBe(3 * (16 + (4 * 32) / 32 + 16 + 4));
    expect((await backendFor(GQA, "xquant", { kvOptions: { xquant: { bits: 2 } } })).cache.bytesPerToken).toBe(3 * (8 + 4 + 2 + 8 + 4));
  });
});
