// A prompt prefilled as one block gives the same attention outputs, bit for bit, as the same
// tokens fed one at a time: attention_tokens_* (the block kernel) equals the decode kernel per
// token, on one thread and split across a worker pool, with and without a sliding window,
// for the f16 cache and the f32 staging of the compressed caches.
import { afterAll, describe, expect, test } from "bun:test";
import { createStagedAttention } from "../../runtime/engine/kv-cache/staged-attention.ts";
import { createWasmCache } from "../../runtime/engine/kv-cache/wasm-cache.ts";
import { createWasmOps, type WasmOps } from "../../runtime/ops/wasm-ops.ts";
import { createKernelQueue } from "../../runtime/threads/kernel-queue.ts";
import { createPool, disposePool, type Pool } from "../../runtime/threads/pool.ts";
import { randomF32 } from "../fixtures/kernel-data.ts";
import { loadKernels } from "../../runtime/kernels/wasm.ts";

const kernels = loadKernels();
const pools: Pool[] = [];
afterAll(async () => {
  for (const pool of pools.splice(0)) await disposePool(pool);
});

const SHAPE = { numLayers: 2, numHeads: 6, numKvHeads: 2, headDim: 20, contextLength: 96 };
const PROMPT = 69; // 5 tokens, then one block of ATTENTION_BLOCK_TOKENS (64)

async function opsOn(threads: number): Promise<WasmOps> {
  const pool = threads > 1 ? await createPool({ threads, kernels }) : undefined;
  if (pool !== undefined) pools.push(pool);
  return createWasmOps(createKernelQueue(kernels, pool));
}

describe("block attention equals token-by-token attention", () => {
  for (const threads of [1, 2]) {
    for (const slidingWindow of [undefined, 9]) {
      test(`f16 cache, ${threads} thread(s), sliding window ${slidingWindow ?? "none"}`, async () => {
        const ops = await opsOn(threads);
        const shape = { ...SHAPE, slidingWindow };
        const qDim = shape.numHeads * shape.headDim;
        const kvDim = shape.numKvHeads * shape.headDim;
        const q = randomF32(1, PROMPT * qDim, 2);
        const k = randomF32(2, PROMPT * kvDim);
        const v = randomF32(3, PROMPT * kvDim);
        const io = ops.createState({ q: qDim, k: kvDim, v: kvDim, out: qDim }, 64, shape.contextLength);
        const attend = (cache: ReturnType<typeof createWasmCache>, layer: number, first: number, n: number) => {
          ops.write(io.q, n, q.subarray(first * qDim, (first + n) * qDim));
          ops.write(io.k, n, k.subarray(first * kvDim, (first + n) * kvDim));
          ops.write(io.v, n, v.subarray(first * kvDim, (first + n) * kvDim));
          cache.attend({ layer, q: io.q, k: io.k, v: io.v, x: io.q, n, startPos: first, out: io.out });
          return ops.read(io.out, n).slice();
        };
        const block = createWasmCache(ops.queue, shape, "f16");
        const stepwise = createWasmCache(ops.queue, shape, "f16");
        for (let layer = 0; layer < shape.numLayers; layer++) {
          // 5 tokens first, so the block starts at a position > 0, then the rest in one call.
          const head = attend(block, layer, 0, 5);
          const rest = attend(block, layer, 5, PROMPT - 5);
          const one = new Float32Array(PROMPT * qDim);
          for (let t = 0; t < PROMPT; t++) one.set(attend(stepwise, layer, t, 1), t * qDim);
          expect(new Float32Array([...head, ...rest])).toEqual(one);
        }
      });
    }
  }

  test("f32 staging (compressed caches), 2 threads, block starting past the first position", async () => {
    const ops = await opsOn(2);
    const shape = { ...SHAPE, slidingWindow: 12 };
    const qDim = shape.numHeads * shape.headDim;
    const staged = createStagedAttention(ops, shape);
    const { k, v } = staged.views();
    k.set(randomF32(4, PROMPT * shape.numKvHeads * shape.headDim));
    v.set(randomF32(5, PROMPT * shape.numKvHeads * shape.headDim));
    const q = randomF32(6, 39 * qDim, 2);
    // Queries at positions 30..68; staged row 0 is the first position the block reads.
    const base = staged.firstNeeded(30);
    const shift = (x: Float32Array) => x.copyWithin(0, base * shape.numKvHeads * shape.headDim);
    shift(k);
    shift(v);
    const io = ops.createState({ q: qDim, out: qDim }, 64, shape.contextLength);
    ops.write(io.q, 39, q);
    staged.run(io.q, io.out, 39, 30, base);
    const whole = ops.read(io.out, 39).slice();
    for (let t = 0; t < 39; t++) {
      ops.write(io.q, 1, q.subarray(t * qDim, (t + 1) * qDim));
      staged.run(io.q, io.out, 1, 30 + t, base);
      expect(ops.read(io.out, 1)).toEqual(whole.subarray(t * qDim, (t + 1) * qDim));
    }
  });
});
