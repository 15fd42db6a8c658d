/**
 * The WASM ops against the reference ops (their twin) op by op on random run-state buffers:
 * embedding rows of f32/f16/q8 tables, fused linear groups with biases, RMSNorm (also per
 * head), RoPE at a start position, SwiGLU and residual adds; a plan is built once per (buffers,
 * rows) and reused; over a worker pool, logits are bit-identical for 1, 2 and 3 threads and
 * a fused group (q/k/v, gate/up) is one pool dispatch.
 */
import { afterAll, describe, expect, test } from "bun:test";
import type { Encoding } from "../format/encoding.ts";
import { dequantize } from "../format/pack-dequantize.ts";
import { packedModelFromBytes } from "../engine/packed-model.ts";
import { createWasmBackend, type WasmBackend } from "../engine/wasm-backend.ts";
import { createKernelQueue } from "../threads/kernel-queue.ts";
import { createPool, disposePool, type Pool } from "../threads/pool.ts";
import { createKernels, type Kernels } from "../kernels/wasm.ts";
import { createRandomModel, type RandomModelSpec } from "../../test/fixtures/random-model.ts";
import { headerFor, packModel } from "../../test/fixtures/pack-model.ts";
import { quantizeRtn, randomFloats } from "../../test/fixtures/matmul-fixtures.ts";
import { referenceOps } from "./reference.ts";
import { packedReferenceOps } from "./packed-reference.ts";
import { createWasmOps, type WasmMatrix, type WasmOps } from "./wasm-ops.ts";
import { uploadVector } from "./wasm-weights.ts";

const backends: WasmBackend[] = [];
const pools: Pool[] = [];
afterAll(async () => {
  for (const b of backends) await b.dispose();
  for (const p of pools) await disposePool(p);
});

const TOKENS = [1, 17, 42, 5, 96, 33, 8, 61, 2];
const BASE = { hidden: 64, intermediate: 96, layers: 2, vocab: 97, seed: 11, heads: 4, kvHeads: 2 } as const;
const Q2: Encoding = { kind: "bitplane", bits: 2, group: 32, scales: "zero-point" };
const Q8: Encoding = { kind: "q8", group: 32 };

function maxRelative(got: Float32Array, want: Float32Array): number {
  expect(got.length).toBe(want.length);
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return worst / scale;
}

/** The same buffers on both backends, filled with the same values. */
function twinStates(ops: WasmOps, widths: Record<string, number>, rows: number, seed: number) {
  const wasm = ops.createState(widths, rows, 64);
  const ref = referenceOps.createState(widths, rows, 64);
  let s = seed;
  for (const name of Object.keys(widths)) {
    const values = randomFloats(rows * widths[name], s++, 2);
    ops.write(wasm[name], rows, values);
    ref[name].data.set(values);
  }
  return { wasm, ref };
}

function packedMatrix(kernels: Kernels, encoding: Encoding, rows: number, cols: number, seed: number) {
  const data = randomFloats(rows * cols, seed, 0.2);
  const bytes = quantizeRtn(encoding, data, rows, cols);
  const model = packedModelFromBytes(headerFor(createRandomModel({ ...BASE, arch: "llama" })), [{ name: "w", shape: [rows, cols], encoding, bytes }], kernels);
  return { wasm: model.matrices.get("w")! as WasmMatrix, twin: { name: "w", rows, cols, encoding, bytes }, dense: dequantize(encoding, bytes, rows, cols) };
}

describe("each op equals its reference twin", () => {
  const kernels = createKernels({ shared: false });
  const ops = createWasmOps(createKernelQueue(kernels, undefined));

  for (const encoding of [{ kind: "f32" }, { kind: "f16" }, Q8] as Encoding[]) {
    test(`embed: rows of a ${encoding.kind} table are the dequantised rows, bit for bit`, () => {
      const { wasm } = packedMatrix(kernels, encoding, 50, 64, 3);
      const { dense } = packedMatrix(kernels, encoding, 50, 64, 3);
      const state = ops.createState({ x: 64 }, 4, 16);
      ops.embed([49, 0, 7], wasm, state.x);
      const want = new Float32Array([...dense.subarray(49 * 64, 50 * 64), ...dense.subarray(0, 64), ...dense.subarray(7 * 64, 8 * 64)]);
      expect(ops.read(state.x, 3)).toEqual(want);
      expect(() => ops.embed([50], wasm, state.x)).toThrow(/token id/);
    });
  }

  for (const encoding of [{ kind: "f16" }, Q8, Q2] as Encoding[]) {
    test(`linear: a fused group of three ${encoding.kind} projections with biases, 1 and 5 rows`, () => {
      const mats = [96, 32, 32].map((rows, i) => packedMatrix(kernels, encoding, rows, 64, 10 + i));
      const biases = mats.map((m, i) => randomFloats(m.wasm.rows, 20 + i));
      for (const n of [1, 5]) {
        const { wasm, ref } = twinStates(ops, { x: 64, q: 96, k: 32, v: 32 }, 8, n);
        const outs = ["q", "k", "v"] as const;
        const group = mats.map((m, i) => ({ weight: m.wasm, out: wasm[outs[i]], bias: uploadVector(kernels, `b${i}`, biases[i]) }));
        ops.linear(wasm.x, n, group);
        const twinGroup = mats.map((m, i) => ({ weight: m.twin, out: ref[outs[i]], bias: biases[i] }));
        packedReferenceOps.linear(ref.x, n, twinGroup);
        for (const name of outs) {
          const tolerance = encoding.kind === "f16" ? 1e-6 : 2e-2; // LUT and q8 quantise x (last-bit differences of the tables)
          expect(maxRelative(ops.read(wasm[name], n), ref[name].data.subarray(0, n * wasm[name].width))).toBeLessThan(tolerance);
        }
      }
    });
  }

  test("rmsNorm (rows and per head, in place), rope at a start position, siluMul and add", () => {
    const n = 5;
    const { wasm, ref } = twinStates(ops, { x: 64, h: 64, q: 64, g: 96, u: 96 }, 8, 40);
    const weight = randomFloats(64, 50);
    const headWeight = randomFloats(16, 51);
    const invFreq = Float32Array.from({ length: 8 }, (_, i) => 1 / 10000 ** (i / 8));
    ops.rmsNorm(wasm.x, n, uploadVector(kernels, "w", weight), 1e-6, wasm.h);
    referenceOps.rmsNorm(ref.x, n, weight, 1e-6, ref.h);
    ops.rmsNorm(wasm.q, n * 4, uploadVector(kernels, "hw", headWeight), 1e-6, wasm.q);
    referenceOps.rmsNorm(ref.q, n * 4, headWeight, 1e-6, ref.q);
    ops.rope(wasm.q, n, 4, 16, 7, invFreq);
    referenceOps.rope(ref.q, n, 4, 16, 7, invFreq);
    ops.siluMul(wasm.g, wasm.u, n, wasm.g);
    referenceOps.siluMul(ref.g, ref.u, n, ref.g);
    ops.add(wasm.x, wasm.h, n);
    referenceOps.add(ref.x, ref.h, n);
    // f32 kernels (SIMD sums, f32 RoPE angles) against f64 loops.
    for (const name of ["h", "q", "g", "x"] as const) {
      expect(maxRelative(ops.read(wasm[name], n), ref[name].data.subarray(0, n * wasm[name].width))).toBeLessThan(2e-6);
    }
  });

  test("shape mismatches are refused with ShapeError before any kernel runs", () => {
    const ops = createWasmOps(createKernelQueue(kernels, undefined)); // positions: this state's 16
    const state = ops.createState({ x: 64, y: 32 }, 4, 16);
    const { wasm: w } = packedMatrix(kernels, { kind: "f16" }, 32, 64, 2);
    expect(() => ops.linear(state.y, 1, [{ weight: w, out: state.x }])).toThrow(/input of width 64/);
    expect(() => ops.linear(state.x, 5, [{ weight: w, out: state.y }])).toThrow(/rows of x/);
    expect(() => ops.add(state.x, state.y, 1)).toThrow(/equal widths/);
    expect(() => ops.rope(state.x, 2, 4, 16, 15, new Float32Array(8))).toThrow(/positions below 16/);
  });
});

describe("worker pool", () => {
  for (const [arch, encoding] of [["llama", Q2], ["qwen2", Q8], ["qwen3", Q2]] as const) {
    test(`${arch} ${encoding.kind}: 2 and 3 threads equal 1 thread bit for bit`, async () => {
      const spec: RandomModelSpec = { ...BASE, arch, headDim: arch === "qwen3" ? 32 : undefined };
      const source = createRandomModel(spec);
      const tensors = packModel(source, encoding);
      const run = async (threads: number) => {
        const backend = await createWasmBackend(packedModelFromBytes(headerFor(source), tensors), { threads, kv: "f16", contextLength: 64 });
        backends.push(backend);
        return [backend.forward(TOKENS.slice(0, 5), { allLogits: true }).slice(), ...TOKENS.slice(5).map((t) => backend.forward([t]).slice())];
      };
      const one = await run(1);
      for (const threads of [2, 3]) expect(await run(threads)).toEqual(one);
    });
  }

  test("a fused group is one dispatch; its results equal separate calls", async () => {
    const kernels = createKernels({ shared: true });
    const pool = await createPool({ threads: 2, kernels });
    pools.push(pool);
    const fused = createWasmOps(createKernelQueue(kernels, pool, "step"));
    const plain = createWasmOps(createKernelQueue(kernels, undefined));
    const mats = [96, 32, 32].map((rows, i) => packedMatrix(kernels, Q2, rows, 64, 30 + i).wasm);
    const a = fused.createState({ x: 64, q: 96, k: 32, v: 32 }, 4, 16);
    const b = plain.createState({ x: 64, q: 96, k: 32, v: 32 }, 4, 16);
    const x = randomFloats(2 * 64, 9);
    fused.write(a.x, 2, x);
    plain.write(b.x, 2, x);
    const before = pool.dispatches;
    fused.linear(a.x, 2, [{ weight: mats[0], out: a.q }, { weight: mats[1], out: a.k }, { weight: mats[2], out: a.v }]);
    // The tables (one call for 2 tokens: split in two) and the three matmuls' row shards: one step each, one dispatch each.
    expect(pool.dispatches - before).toBeLessThanOrEqual(2);
    for (const [i, name] of (["q", "k", "v"] as const).entries()) {
      plain.linear(b.x, 2, [{ weight: mats[i], out: b[name] }]);
      expect(fused.read(a[name], 2)).toEqual(plain.read(b[name], 2));
    }
  });
});

describe("call plans and dispatches of a decode step", () => {
  const spec: RandomModelSpec = { ...BASE, arch: "qwen2" }; // biases: every op kind
  const source = createRandomModel(spec);
  const tensors = packModel(source, Q2, Q8);

  test("plans are built on the first step and reused after; 'forward' wakes the pool once per token", async () => {
    const dispatches: Record<string, number> = {};
    for (const flush of ["step", "layer", "forward"] as const) {
      const backend = await createWasmBackend(packedModelFromBytes(headerFor(source), tensors), { threads: 2, kv: "f16", contextLength: 64, flush });
      backends.push(backend);
      const plans = () => backend.ops.plansBuilt;
      backend.forward(TOKENS.slice(0, 5));
      backend.forward([TOKENS[5]]);
      const afterWarmUp = plans();
      const before = backend.ops.queue.dispatches;
      for (const t of TOKENS.slice(6)) backend.forward([t]);
      expect(plans()).toBe(afterWarmUp);
      dispatches[flush] = (backend.ops.queue.dispatches - before) / (TOKENS.length - 6);
    }
    expect(dispatches.forward).toBe(1);
    expect(dispatches.layer).toBeLessThanOrEqual(BASE.layers + 1);
    expect(dispatches.step).toBeGreaterThan(dispatches.layer);
  });
});
