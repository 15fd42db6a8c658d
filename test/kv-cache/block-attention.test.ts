// A prompt prefilled as one block gives the same attention outputs, bit for bit, as the same
// tokens fed one at a time: attention_tokens_* (the block kernel) equals the decode kernel per
// token, on one thread and split across a worker pool, with and without a sliding window,
// for the f16 cache and the f32 staging of the compressed caches.
import { afterAll, describe, expect, test } from "bun:test";
import { createStagedAttention } from "../../runtime/engine/kv-cache/staged-attention.ts";
import { createWasmCache } from "../../runtime/engine/kv-cache/wasm-cache.ts";
import { createPool, disposePool, type Pool } from "../../runtime/kernels/pool.ts";
import { randomF32 } from "../../runtime/kernels/test-data.ts";
import { loadKernels } from "../../runtime/kernels/wasm.ts";

const kernels = loadKernels();
const pools: Pool[] = [];
afterAll(async () => {
  for (const pool of pools.splice(0)) await disposePool(pool);
});

const SHAPE = { numLayers: 2, numHeads: 6, numKvHeads: 2, headDim: 20, contextLength: 96 };
const PROMPT = 70; // more than one block of ATTENTION_BLOCK_TOKENS (64)

describe("block attention equals token-by-token attention", () => {
  for (const threads of [1, 2]) {
    for (const slidingWindow of [undefined, 9]) {
      test(`f16 cache, ${threads} thread(s), sliding window ${slidingWindow ?? "none"}`, async () => {
        const pool = threads > 1 ? await createPool({ threads, kernels }) : undefined;
        if (pool !== undefined) pools.push(pool);
        const shape = { ...SHAPE, slidingWindow };
        const qDim = shape.numHeads * shape.headDim;
        const kvDim = shape.numKvHeads * shape.headDim;
        const q = randomF32(1, PROMPT * qDim, 2);
        const k = randomF32(2, PROMPT * kvDim);
        const v = randomF32(3, PROMPT * kvDim);
        const block = createWasmCache(kernels, pool, shape, "f16");
        const stepwise = createWasmCache(kernels, pool, shape, "f16");
        for (let layer = 0; layer < shape.numLayers; layer++) {
          // 5 tokens first, so the block starts at a position > 0, then the rest in one call.
          const head = block.attend({ layer, q: q.subarray(0, 5 * qDim), k: k.subarray(0, 5 * kvDim), v: v.subarray(0, 5 * kvDim), n: 5, startPos: 0 });
          const rest = block.attend({ layer, q: q.subarray(5 * qDim), k: k.subarray(5 * kvDim), v: v.subarray(5 * kvDim), n: PROMPT - 5, startPos: 5 });
          const one = new Float32Array(PROMPT * qDim);
          for (let t = 0; t < PROMPT; t++) {
            const at = (x: Float32Array, d: number) => x.subarray(t * d, (t + 1) * d);
            one.set(stepwise.attend({ layer, q: at(q, qDim), k: at(k, kvDim), v: at(v, kvDim), n: 1, startPos: t }), t * qDim);
          }
          expect(new Float32Array([...head, ...rest])).toEqual(one);
        }
      });
    }
  }

  test("f32 staging (compressed caches), 2 threads, block starting past the first position", async () => {
    const pool = await createPool({ threads: 2, kernels });
    pools.push(pool);
    const shape = { ...SHAPE, slidingWindow: 12 };
    const qDim = shape.numHeads * shape.headDim;
    const staged = createStagedAttention(kernels, pool, shape);
    const { k, v } = staged.views();
    k.set(randomF32(4, PROMPT * shape.numKvHeads * shape.headDim));
    v.set(randomF32(5, PROMPT * shape.numKvHeads * shape.headDim));
    const q = randomF32(6, 40 * qDim, 2);
    // Queries at positions 30..69; staged row 0 is the first position the block reads.
    const base = staged.firstNeeded(30);
    const shift = (x: Float32Array) => x.copyWithin(0, base * shape.numKvHeads * shape.headDim);
    shift(k);
    shift(v);
    const whole = staged.run(q, 40, 30, base);
    for (let t = 0; t < 40; t++) {
      const one = staged.run(q.subarray(t * qDim, (t + 1) * qDim), 1, 30 + t, base);
      expect(one).toEqual(whole.subarray(t * qDim, (t + 1) * qDim));
    }
  });
});
