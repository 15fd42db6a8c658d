/**
 * Parity of the elementwise and attention WASM kernels with their TypeScript twins on fixed
 * seeds and odd sizes, with asserted error bounds, plus the wrappers' argument checks.
 */
import { describe, expect, test } from "bun:test";
import { KernelError, ShapeError } from "../errors.ts";
import {
  type Activation,
  activationF32,
  addF32,
  attention,
  f16ToF32,
  f32ToF16,
  gatedActivationF32,
  layernormF32,
  mulF32,
  rmsnormF32,
  ropeF32,
  ropeTableF32,
  scaleF32,
  softmaxF32,
  swigluF32,
} from "./elementwise.ts";
import {
  activationRef,
  addRef,
  attentionRef,
  f16ToF32Ref,
  f32ToF16Ref,
  gatedActivationRef,
  layernormRef,
  mulRef,
  rmsnormRef,
  ropeInvFreqRef,
  ropeRef,
  ropeTableRef,
  scaleRef,
  softmaxRef,
} from "./reference.ts";
import { alloc, createRng, expectClose, getF32, getU16, put, QUICK, randomF32, withArena } from "../../test/fixtures/kernel-data.ts";
import { loadKernels } from "./wasm.ts";

const kern = loadKernels();
const LENGTHS = QUICK ? [1, 7, 67] : [1, 3, 4, 5, 15, 16, 17, 63, 100, 1031, 4099];

describe("norms", () => {
  test.each(LENGTHS)("rmsnorm_f32 matches the twin, n=%d", (n) =>
    withArena(kern, () => {
      const rows = 3;
      const x = randomF32(n, rows * n, 3);
      const w = randomF32(n + 1, n);
      const px = put(kern, x);
      const pw = put(kern, w);
      const out = alloc(kern, rows * n);
      rmsnormF32(kern, { x: px, weight: pw, out, rows, n, eps: 1e-6 });
      expectClose(getF32(kern, out, rows * n), rmsnormRef(x, w, rows, n, 1e-6), 1e-7, 4e-6);
      rmsnormF32(kern, { x: px, weight: null, out: px, rows, n, eps: 1e-5 }); // in place, no weight
      expectClose(getF32(kern, px, rows * n), rmsnormRef(x, null, rows, n, 1e-5), 1e-7, 4e-6);
    }));

  test.each(LENGTHS)("layernorm_f32 matches the twin, n=%d", (n) =>
    withArena(kern, () => {
      const rows = 2;
      const x = randomF32(2 * n, rows * n, 2).map((v) => v + 5); // offset mean exercises the two-pass variance
      const w = randomF32(2 * n + 1, n);
      const b = randomF32(2 * n + 2, n);
      const [px, pw, pb] = [put(kern, x), put(kern, w), put(kern, b)];
      const out = alloc(kern, rows * n);
      layernormF32(kern, { x: px, weight: pw, bias: pb, out, rows, n, eps: 1e-5 });
      expectClose(getF32(kern, out, rows * n), layernormRef(x, w, b, rows, n, 1e-5), 2e-6, 1e-5);
      layernormF32(kern, { x: px, weight: null, bias: null, out, rows, n, eps: 1e-12 });
      expectClose(getF32(kern, out, rows * n), layernormRef(x, null, null, rows, n, 1e-12), 2e-6, 1e-5);
    }));
});

describe("rope", () => {
  const cases = QUICK
    ? [{ headDim: 64, rotDim: 64, theta: 10000 }, { headDim: 80, rotDim: 20, theta: 10000 }]
    : [
      { headDim: 64, rotDim: 64, theta: 10000 },
      { headDim: 48, rotDim: 48, theta: 1e6 },
      { headDim: 80, rotDim: 80, theta: 500000 },
      { headDim: 80, rotDim: 20, theta: 10000 }, // partial rotary: a 10-dim half, not a multiple of 4
      { headDim: 128, rotDim: 64, theta: 10000 },
      { headDim: 6, rotDim: 6, theta: 10000 },
    ];

  test.each(cases)("rope_table_f32 and rope_f32 match the twins, %o", ({ headDim, rotDim, theta }) =>
    withArena(kern, () => {
      const [nTokens, nHeads, pos0] = [3, 5, 4093];
      const invFreq = ropeInvFreqRef(rotDim, theta);
      const table = alloc(kern, nTokens * rotDim);
      ropeTableF32(kern, { invFreq: put(kern, invFreq), half: rotDim / 2, pos0, nTokens, factor: 1.25, table });
      const tableGot = getF32(kern, table, nTokens * rotDim);
      expectClose(tableGot, ropeTableRef(invFreq, pos0, nTokens, 1.25), 2.5e-7, 0); // ≤ 1 ulp of cos/sin·1.25
      const x = randomF32(headDim, nTokens * nHeads * headDim);
      const px = put(kern, x);
      ropeF32(kern, { x: px, table, nTokens, nHeads, headDim, rotDim });
      // Same table in, same f32 products and sums out: exact.
      expect(getF32(kern, px, x.length)).toEqual(ropeRef(x, tableGot, nTokens, nHeads, headDim, rotDim));
    }));

  test("rotate-half pairs dim i with i + rotDim/2 (hand-computed)", () =>
    withArena(kern, () => {
      const invFreq = new Float32Array([1, 0.5]);
      const table = alloc(kern, 4);
      ropeTableF32(kern, { invFreq: put(kern, invFreq), half: 2, pos0: 1, table });
      const px = put(kern, new Float32Array([1, 0, 0, 0, 9]));
      ropeF32(kern, { x: px, table, nHeads: 1, headDim: 5, rotDim: 4 });
      expectClose(getF32(kern, px, 5), [Math.cos(1), 0, Math.sin(1), 0, 9], 1e-7, 0);
    }));
});

describe("softmax and activations", () => {
  test.each(LENGTHS)("softmax_f32 matches the twin, n=%d", (n) =>
    withArena(kern, () => {
      const x = randomF32(3 * n, 2 * n, 8);
      x[0] = -Infinity; // a masked entry gets probability 0
      const px = put(kern, x);
      softmaxF32(kern, { x: px, rows: 2, n });
      const want = softmaxRef(x, 2, n);
      expectClose(getF32(kern, px, 2 * n), want, 1e-12, 2e-5);
    }));

  // Bounds: silu/relu² within a few ulp. gelu_tanh rounds u = √(2/π)(x + 0.044715x³) to f32 (as
  // torch does), so for x < −5, where gelu is below 1e-6, the relative error grows with |u|: an
  // absolute 1e-12 covers it. gelu_erf uses A&S 7.1.26 (|erf error| ≤ 1.5e-7), so its absolute
  // error reaches 0.5·|x|·1.5e-7, asserted as 1e-7·(1 + |x|).
  const ACTS: Array<[Activation, (x: number) => number, number]> = [
    ["silu", () => 1e-30, 4e-6],
    ["geluTanh", () => 1e-12, 4e-6],
    ["geluErf", (x) => 1e-7 * (1 + Math.abs(x)), 4e-6],
    ["relu2", () => 0, 2e-7],
  ];
  const specials = [0, -0, 1e-8, -1e-8, 3, -3, 20, -20, 80, -80, 95, -95, 200, -200, Infinity, -Infinity];

  test.each(ACTS)("%s: activation and gated (act·up) kernels match the twins", (name, absBound, rtol) =>
    withArena(kern, () => {
      for (const n of LENGTHS) {
        const x = Float32Array.from([...specials, ...randomF32(n, n, 4)]);
        const up = randomF32(n + 7, x.length);
        const len = x.length;
        const [px, pu, out] = [put(kern, x), put(kern, up), alloc(kern, len)];
        activationF32(kern, name, { x: px, out, n: len });
        expectNear(getF32(kern, out, len), activationRef(name, x), x.map(absBound), rtol);
        gatedActivationF32(kern, name, { gate: px, up: pu, out: pu, n: len }); // out aliases up
        const atol = x.map((v, i) => absBound(v) * Math.abs(up[i]));
        expectNear(getF32(kern, pu, len), gatedActivationRef(name, x, up), atol, rtol);
      }
    }));

  test("swiglu_f32 is silu(gate)·up; add/mul/scale are exact", () =>
    withArena(kern, () => {
      const n = 37;
      const [a, b] = [randomF32(1, n), randomF32(2, n)];
      const [pa, pb, out] = [put(kern, a), put(kern, b), alloc(kern, n)];
      swigluF32(kern, { gate: pa, up: pb, out, n });
      expectClose(getF32(kern, out, n), gatedActivationRef("silu", a, b), 1e-30, 4e-6);
      addF32(kern, { a: pa, b: pb, out, n });
      expect(getF32(kern, out, n)).toEqual(addRef(a, b));
      mulF32(kern, { a: pa, b: pb, out, n });
      expect(getF32(kern, out, n)).toEqual(mulRef(a, b));
      scaleF32(kern, { x: pa, s: 0.125, out: pa, n });
      expect(getF32(kern, pa, n)).toEqual(scaleRef(a, 0.125));
    }));
});

/** expectClose with a per-element absolute bound (NaN matches NaN, ±Infinity must match exactly). */
function expectNear(got: Float32Array, want: Float32Array, atol: Float32Array, rtol: number): void {
  const fixed = Float32Array.from(got, (g, i) => (Number.isNaN(want[i]) && Number.isNaN(g)) || g === want[i] ? want[i] : g);
  const err = fixed.map((g, i) => (g === want[i] ? 0 : Math.abs(g - want[i]) - atol[i] - rtol * Math.abs(want[i])));
  const worst = err.reduce((w, e, i) => (e > 0 && (w < 0 || e > err[w]) ? i : w), -1);
  expect(worst < 0 ? null : { index: worst, got: fixed[worst], want: want[worst] }).toBeNull();
}

describe("f16 conversion", () => {
  test("f16_to_f32 is exact for all 65536 bit patterns", () =>
    withArena(kern, () => {
      const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
      const dst = alloc(kern, all.length);
      f16ToF32(kern, { src: put(kern, all.subarray(1)), dst, n: 65535 }); // odd length: tail path
      const got = getF32(kern, dst, 65535);
      const want = Float32Array.from(all.subarray(1), (h) => f16ToF32Ref(h));
      expect(Array.from(got, (v, i) => (Number.isNaN(v) && Number.isNaN(want[i])) || Object.is(v, want[i]))).not.toContain(false);
    }));

  test("f32_to_f16 rounds to nearest even, with overflow, subnormals and NaN", () =>
    withArena(kern, () => {
      const rng = createRng(16);
      const bits = new Uint32Array(QUICK ? 4000 : 100_000).map(() => Math.floor(rng.uniform() * 2 ** 32));
      const random = new Float32Array(bits.buffer);
      const edges = [0, -0, 1, -1, 65504, 65519.99, 65520, -65520, 1e10, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -26, 2 ** -14, 2 ** -14 - 2 ** -25,
        2 ** -14 * (1 - 2 ** -12), 1 + 2 ** -11, 1 + 3 * 2 ** -11, Infinity, -Infinity, NaN];
      const x = Float32Array.from([...edges, ...random]);
      const dst = kern.arena.alloc(x.length * 2);
      f32ToF16(kern, { src: put(kern, x), dst, n: x.length });
      const got = getU16(kern, dst, x.length);
      const isNaN16 = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      const want = Uint16Array.from(x, (v) => f32ToF16Ref(v));
      const agree = Array.from(got, (g, i) => g === want[i] || (isNaN16(g) && isNaN16(want[i])));
      expect(agree.indexOf(false)).toBe(-1);
      const F16 = (globalThis as { Float16Array?: Float32ArrayConstructor }).Float16Array;
      if (F16 !== undefined) {
        const native = new Uint16Array(F16.from(x).buffer);
        expect(Array.from(got, (g, i) => g === native[i] || (isNaN16(g) && isNaN16(native[i]))).indexOf(false)).toBe(-1);
      }
    }));
});

describe("attention", () => {
  const shapes = QUICK
    ? [{ headDim: 64, nKvHeads: 2, ratio: 4, kvLen: 37 }, { headDim: 48, nKvHeads: 1, ratio: 8, kvLen: 5 }]
    : [64, 48, 80].flatMap((headDim) =>
      [1, 2, 4, 8].flatMap((ratio) => [1, 19, 130].map((kvLen) => ({ headDim, nKvHeads: ratio === 8 ? 1 : 2, ratio, kvLen })))
    );

  test.each(shapes)("attention_f32 and attention_f16 match the twin, %o", ({ headDim, nKvHeads, ratio, kvLen }) =>
    withArena(kern, () => {
      const nHeads = nKvHeads * ratio;
      const seed = headDim * 1000 + ratio * 100 + kvLen;
      const q = randomF32(seed, nHeads * headDim, 2);
      const capacity = kvLen + 3; // the cache holds more rows than are attended
      const k = randomF32(seed + 1, capacity * nKvHeads * headDim);
      const v = randomF32(seed + 2, capacity * nKvHeads * headDim);
      const pq = put(kern, q);
      const out = alloc(kern, nHeads * headDim);
      const scratch = alloc(kern, nHeads * kvLen);
      const base = { q: pq, out, scratch, nHeads, nKvHeads, headDim, kvLen };
      attention(kern, "f32", { ...base, kCache: put(kern, k), vCache: put(kern, v) });
      const want = attentionRef(q, k, v, nHeads, nKvHeads, headDim, kvLen, 1 / Math.sqrt(headDim));
      expectClose(getF32(kern, out, nHeads * headDim), want, 2e-6, 2e-5);

      const k16 = Uint16Array.from(k, (x) => f32ToF16Ref(x));
      const v16 = Uint16Array.from(v, (x) => f32ToF16Ref(x));
      const [pk16, pv16] = [put(kern, k16), put(kern, v16)];
      attention(kern, "f16", { ...base, kCache: pk16, vCache: pv16 });
      const want16 = attentionRef(q, Array.from(k16, f16ToF32Ref), Array.from(v16, f16ToF32Ref), nHeads, nKvHeads, headDim, kvLen, 1 / Math.sqrt(headDim));
      const got16 = getF32(kern, out, nHeads * headDim);
      expectClose(got16, want16, 2e-6, 2e-5);

      // Split heads as a worker pool would (odd split inside a GQA group): identical result.
      const split = Math.max(1, Math.floor(nHeads / 2) + (ratio > 1 ? 1 : 0)) % nHeads || nHeads;
      const out2 = alloc(kern, nHeads * headDim);
      const scratch2 = alloc(kern, nHeads * kvLen);
      for (const [headBegin, headEnd, s] of [[0, split, scratch], [split, nHeads, scratch2]]) {
        if (headBegin === headEnd) continue;
        attention(kern, "f16", { ...base, out: out2, scratch: s, kCache: pk16, vCache: pv16, headBegin, headEnd });
      }
      expect(getF32(kern, out2, nHeads * headDim)).toEqual(got16);
    }));
  // The f16 kernel converts in registers assuming finite values and redoes a KV head holding
  // Inf/NaN (or a query too large to prescale) with the exact conversion.
  test("attention_f16 with Inf/NaN in the cache or a huge query matches the twin", () =>
    withArena(kern, () => {
      const [nHeads, nKvHeads, headDim, kvLen] = [4, 2, 72, 9];
      const n = kvLen * nKvHeads * headDim;
      const cases: [string, (q: Float32Array, k: Uint16Array, v: Uint16Array) => void][] = [
        ["Inf in K (kv head 0)", (_q, k) => void (k[(3 * nKvHeads + 0) * headDim + 5] = 0x7c00)],
        ["NaN in V (kv head 1)", (_q, _k, v) => void (v[(6 * nKvHeads + 1) * headDim + 17] = 0x7e01)],
        ["-Inf in V tail (kv head 0)", (_q, _k, v) => void (v[(2 * nKvHeads + 0) * headDim + 70] = 0xfc00)],
        ["query beyond 2^15", (q) => q.forEach((x, i) => (q[i] = x * 1e5))],
      ];
      for (const [, edit] of cases) {
        const q = randomF32(11, nHeads * headDim, 2);
        const k = Uint16Array.from(randomF32(12, n), (x) => f32ToF16Ref(x));
        const v = Uint16Array.from(randomF32(13, n), (x) => f32ToF16Ref(x));
        edit(q, k, v);
        const out = alloc(kern, nHeads * headDim);
        const scratch = alloc(kern, nHeads * kvLen);
        const args = { q: put(kern, q), out, scratch, nHeads, nKvHeads, headDim, kvLen };
        attention(kern, "f16", { ...args, kCache: put(kern, k), vCache: put(kern, v), scale: 0.125 });
        const got = Array.from(getF32(kern, out, nHeads * headDim));
        const want = Array.from(attentionRef(q, Array.from(k, f16ToF32Ref), Array.from(v, f16ToF32Ref), nHeads, nKvHeads, headDim, kvLen, 0.125));
        const special = want.map((w) => (Number.isFinite(w) ? "" : String(w)));
        expect(got.map((g) => (Number.isFinite(g) ? "" : String(g)))).toEqual(special);
        expect(special.some((x) => x !== "") || q[0] !== randomF32(11, 1, 2)[0]).toBe(true);
        const finite = (a: number[]) => a.map((x, i) => (special[i] === "" ? x : 0));
        expectClose(finite(got), finite(want), 2e-6, 2e-5);
      }
    }));
});

describe("argument checks", () => {
  test("bad shapes throw ShapeError, bad pointers KernelError", () =>
    withArena(kern, () => {
      const p = alloc(kern, 128);
      const end = kern.memory.buffer.byteLength;
      expect(() => rmsnormF32(kern, { x: p, weight: null, out: p, n: 0, eps: 1e-6 })).toThrow(ShapeError);
      expect(() => rmsnormF32(kern, { x: p, weight: null, out: p, n: 2.5, eps: 1e-6 })).toThrow(ShapeError);
      expect(() => rmsnormF32(kern, { x: p + 2, weight: null, out: p, n: 4, eps: 1e-6 })).toThrow(KernelError);
      expect(() => rmsnormF32(kern, { x: 0, weight: null, out: p, n: 4, eps: 1e-6 })).toThrow(KernelError);
      expect(() => softmaxF32(kern, { x: end - 8, n: 4 })).toThrow(/beyond the .*-byte kernel memory/);
      expect(() => addF32(kern, { a: p, b: p, out: p + 4, n: 8 })).toThrow(/overlaps/);
      expect(() => ropeF32(kern, { x: p, table: p + 128, nHeads: 1, headDim: 8, rotDim: 5 })).toThrow(ShapeError);
      expect(() => ropeF32(kern, { x: p, table: p + 128, nHeads: 1, headDim: 8, rotDim: 10 })).toThrow(ShapeError);
      expect(() => ropeTableF32(kern, { invFreq: p, half: 4, pos0: -1, table: p + 64 })).toThrow(ShapeError);
      expect(() => activationF32(kern, "tanh" as Activation, { x: p, out: p, n: 4 })).toThrow(ShapeError);
      expect(() => f16ToF32(kern, { src: p + 1, dst: p + 64, n: 4 })).toThrow(KernelError);
      const att = { q: p, kCache: p + 64, vCache: p + 128, out: p + 192, scratch: p + 256, nHeads: 4, nKvHeads: 2, headDim: 4, kvLen: 2 };
      attention(kern, "f32", att); // the valid call passes
      expect(() => attention(kern, "f32", { ...att, nHeads: 3 })).toThrow(ShapeError);
      expect(() => attention(kern, "f32", { ...att, headDim: 513, kvLen: 1, nHeads: 1, nKvHeads: 1 })).toThrow(/headDim ≤ 512/);
      expect(() => attention(kern, "f32", { ...att, headBegin: 2, headEnd: 2 })).toThrow(ShapeError);
      expect(() => attention(kern, "f32", { ...att, scratch: p + 240 })).toThrow(/overlaps/);
      expect(() => attention(kern, "f32", { ...att, out: p })).toThrow(/overlaps/);
      expect(() => attention(kern, "q4" as "f32", att)).toThrow(ShapeError);
    }));
});
