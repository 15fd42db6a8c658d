/**
 * attention_tokens_{f32,f16}, the prefill block's attention: bit-identical to attention_* called
 * once per token (the decode kernel, so a prompt gives the same outputs whether it is prefilled
 * in a block or fed token by token), close to the twin, with sliding windows, head splits, odd
 * head sizes, Inf/NaN in the f16 cache and the wrapper's argument checks.
 */
import { describe, expect, test } from "bun:test";
import { KernelError, ShapeError } from "../errors.ts";
import { attention, attentionTokens, attentionTokensScratchFloats, type CacheType } from "./elementwise.ts";
import { attentionTokensRef, f16ToF32Ref, f32ToF16Ref } from "./reference.ts";
import { alloc, expectClose, getF32, put, QUICK, randomF32, withArena } from "../../test/fixtures/kernel-data.ts";
import { loadKernels } from "./wasm.ts";

const kern = loadKernels();

interface Shape {
  headDim: number;
  nKvHeads: number;
  ratio: number;
  end0: number;
  nTokens: number;
  window: number;
}

const SHAPES: Shape[] = QUICK
  ? [
    { headDim: 64, nKvHeads: 2, ratio: 4, end0: 5, nTokens: 9, window: 0 },
    { headDim: 36, nKvHeads: 3, ratio: 1, end0: 1, nTokens: 7, window: 4 },
  ]
  : [64, 36, 20].flatMap((headDim) =>
    [1, 2, 8].flatMap((ratio) =>
      [
        { end0: 1, nTokens: 1, window: 0 },
        { end0: 1, nTokens: 9, window: 0 },
        { end0: 17, nTokens: 6, window: 0 },
        { end0: 3, nTokens: 11, window: 5 },
        { end0: 1, nTokens: 13, window: 6 },
      ].map((s) => ({ headDim, nKvHeads: ratio === 8 ? 1 : 2, ratio, ...s }))
    )
  );

/** Per-token attention_* calls (the decode path): the result the block kernel must equal. */
function perToken(cache: CacheType, s: Shape, ptr: { q: number; k: number; v: number }, scale: number): Float32Array {
  const nHeads = s.nKvHeads * s.ratio;
  const qDim = nHeads * s.headDim;
  const kvDim = s.nKvHeads * s.headDim;
  const elem = cache === "f32" ? 4 : 2;
  const out = new Float32Array(s.nTokens * qDim);
  for (let t = 0; t < s.nTokens; t++) {
    const end = s.end0 + t;
    const first = s.window > 0 ? Math.max(0, end - s.window) : 0;
    const o = alloc(kern, qDim);
    const scratch = alloc(kern, nHeads * (end - first));
    attention(kern, cache, {
      q: ptr.q + t * qDim * 4,
      kCache: ptr.k + first * kvDim * elem,
      vCache: ptr.v + first * kvDim * elem,
      out: o,
      scratch,
      nHeads,
      nKvHeads: s.nKvHeads,
      headDim: s.headDim,
      kvLen: end - first,
      scale,
    });
    out.set(getF32(kern, o, qDim), t * qDim);
  }
  return out;
}

describe("attention over a block of tokens", () => {
  test.each(SHAPES)("equals per-token attention bit for bit, and the twin, %o", (s) =>
    withArena(kern, () => {
      const nHeads = s.nKvHeads * s.ratio;
      const kvMax = s.end0 + s.nTokens - 1;
      const qDim = nHeads * s.headDim;
      const seed = s.headDim * 1000 + s.ratio * 100 + s.end0 * 10 + s.nTokens + s.window;
      const q = randomF32(seed, s.nTokens * qDim, 2);
      const k = randomF32(seed + 1, (kvMax + 2) * s.nKvHeads * s.headDim);
      const v = randomF32(seed + 2, (kvMax + 2) * s.nKvHeads * s.headDim);
      const scale = 1 / Math.sqrt(s.headDim);
      const pq = put(kern, q);
      for (const cache of ["f32", "f16"] as const) {
        const kc = cache === "f32" ? k : Uint16Array.from(k, (x) => f32ToF16Ref(x));
        const vc = cache === "f32" ? v : Uint16Array.from(v, (x) => f32ToF16Ref(x));
        const ptr = { q: pq, k: put(kern, kc), v: put(kern, vc) };
        const out = alloc(kern, s.nTokens * qDim);
        const args = { q: pq, kCache: ptr.k, vCache: ptr.v, out, nHeads, nKvHeads: s.nKvHeads, headDim: s.headDim, end0: s.end0, nTokens: s.nTokens, window: s.window };
        attentionTokens(kern, cache, { ...args, scratch: alloc(kern, attentionTokensScratchFloats(kvMax)) });
        const got = getF32(kern, out, s.nTokens * qDim);
        expect(got).toEqual(perToken(cache, s, ptr, scale));
        const values = (c: Float32Array | Uint16Array) => (c instanceof Float32Array ? c : Array.from(c, f16ToF32Ref));
        expectClose(got, attentionTokensRef(q, values(kc), values(vc), { ...s, nHeads }, scale), 2e-6, 2e-5);

        // Heads split as the worker pool splits them (inside a GQA group), each with its own scratch.
        const split = Math.max(1, Math.floor(nHeads / 2) + (s.ratio > 1 ? 1 : 0)) % nHeads || nHeads;
        const out2 = alloc(kern, s.nTokens * qDim);
        for (const [headBegin, headEnd] of [[0, split], [split, nHeads]]) {
          if (headBegin === headEnd) continue;
          const scratch = alloc(kern, attentionTokensScratchFloats(kvMax));
          attentionTokens(kern, cache, { ...args, out: out2, scratch, headBegin, headEnd });
        }
        expect(getF32(kern, out2, s.nTokens * qDim)).toEqual(got);
      }
    }));

  // The f16 block kernel, like the decode kernel, redoes a tile that read Inf/NaN (here a row
  // only the later tokens of a tile attend) or a query too large to prescale.
  test("f16 cache with Inf/NaN rows or a huge query equals per-token attention", () =>
    withArena(kern, () => {
      const s: Shape = { headDim: 24, nKvHeads: 2, ratio: 2, end0: 3, nTokens: 6, window: 0 };
      const nHeads = 4;
      const kvMax = s.end0 + s.nTokens - 1;
      const n = kvMax * s.nKvHeads * s.headDim;
      const row = (pos: number, kvh: number, i: number) => (pos * s.nKvHeads + kvh) * s.headDim + i;
      const cases: [string, (q: Float32Array, k: Uint16Array, v: Uint16Array) => void][] = [
        ["Inf in K at position 4", (_q, k) => void (k[row(4, 0, 5)] = 0x7c00)],
        ["NaN in V at position 5", (_q, _k, v) => void (v[row(5, 1, 17)] = 0x7e01)],
        ["query beyond 2^15", (q) => q.forEach((x, i) => (q[i] = x * 1e5))],
      ];
      for (const [, edit] of cases) {
        const q = randomF32(21, s.nTokens * nHeads * s.headDim, 2);
        const k = Uint16Array.from(randomF32(22, n), (x) => f32ToF16Ref(x));
        const v = Uint16Array.from(randomF32(23, n), (x) => f32ToF16Ref(x));
        edit(q, k, v);
        const ptr = { q: put(kern, q), k: put(kern, k), v: put(kern, v) };
        const out = alloc(kern, s.nTokens * nHeads * s.headDim);
        attentionTokens(kern, "f16", {
          q: ptr.q,
          kCache: ptr.k,
          vCache: ptr.v,
          out,
          scratch: alloc(kern, attentionTokensScratchFloats(kvMax)),
          nHeads,
          nKvHeads: s.nKvHeads,
          headDim: s.headDim,
          end0: s.end0,
          nTokens: s.nTokens,
          scale: 0.2,
        });
        const got = Array.from(getF32(kern, out, s.nTokens * nHeads * s.headDim));
        const want = Array.from(perToken("f16", s, ptr, 0.2));
        expect(got.map(String)).toEqual(want.map(String));
      }
    }));

  test("bad arguments throw ShapeError or KernelError", () =>
    withArena(kern, () => {
      const p = alloc(kern, 1024);
      const args = { q: p, kCache: p + 256, vCache: p + 512, out: p + 768, scratch: p + 1024, nHeads: 2, nKvHeads: 1, headDim: 4, end0: 2, nTokens: 3 };
      const scratchFloats = attentionTokensScratchFloats(4);
      attentionTokens(kern, "f32", { ...args, scratch: alloc(kern, scratchFloats) }); // the valid call passes
      expect(() => attentionTokens(kern, "f32", { ...args, nTokens: 0 })).toThrow(ShapeError);
      expect(() => attentionTokens(kern, "f32", { ...args, window: -1 })).toThrow(/window/);
      expect(() => attentionTokens(kern, "f32", { ...args, nHeads: 3, nKvHeads: 2 })).toThrow(ShapeError);
      expect(() => attentionTokens(kern, "f32", { ...args, headBegin: 1, headEnd: 3 })).toThrow(ShapeError);
      expect(() => attentionTokens(kern, "f32", { ...args, scratch: p + 800 })).toThrow(/overlaps/);
      expect(() => attentionTokens(kern, "f32", { ...args, kCache: kern.memory.buffer.byteLength - 16 })).toThrow(KernelError);
      expect(() => attentionTokens(kern, "q4" as "f32", args)).toThrow(ShapeError);
    }));
});
