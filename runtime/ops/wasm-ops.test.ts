/**
 * The WASM ops over the shared-memory worker pool: logits are bit-identical for 1, 2 and 3
 * threads (prefill and decode, with q/k/v biases and q/k norms, LUT and q8 weights), the
 * sibling matrices of a layer (q/k/v, gate/up) run as one pool batch, a result computed
 * ahead is only handed out for the input it was computed from, and the kernel SwiGLU matches
 * the reference loop.
 */
import { afterAll, describe, expect, test } from "bun:test";
import type { Encoding } from "../format/encoding.ts";
import { packedModelFromBytes } from "../engine/packed-model.ts";
import { createWasmBackend, type WasmBackend } from "../engine/wasm-backend.ts";
import { createPool, disposePool, type Pool } from "../kernels/pool.ts";
import { createKernels } from "../kernels/wasm.ts";
import { createRandomModel, type RandomModelSpec } from "../../test/fixtures/random-model.ts";
import { headerFor, packModel } from "../../test/fixtures/pack-model.ts";
import { siluMulInto } from "./reference.ts";
import { createWasmOps } from "./wasm-ops.ts";

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

describe("shared-memory pool: threads never change results", () => {
  for (const [arch, encoding] of [["llama", Q2], ["qwen2", Q8], ["qwen3", Q2]] as const) {
    test(`${arch} ${encoding.kind}: 2 and 3 threads equal 1 thread bit for bit`, async () => {
      const spec: RandomModelSpec = { ...BASE, arch, headDim: arch === "qwen3" ? 32 : undefined };
      const source = createRandomModel(spec);
      const tensors = packModel(source, encoding);
      const run = async (threads: number) => {
        const backend = await createWasmBackend(packedModelFromBytes(headerFor(source), tensors), { threads, kv: "f16", contextLength: 64 });
        backends.push(backend);
        return [backend.forward(TOKENS.slice(0, 5), { allLogits: true }), ...TOKENS.slice(5).map((t) => backend.forward([t]))];
      };
      const one = await run(1);
      for (const threads of [2, 3]) expect(await run(threads)).toEqual(one);
    });
  }
});

describe("sibling matrices", () => {
  const spec: RandomModelSpec = { ...BASE, arch: "qwen2" };
  const source = createRandomModel(spec);
  const model = packedModelFromBytes(headerFor(source), packModel(source, Q2), createKernels({ shared: true }));
  const m = (name: string) => model.matrices.get(`model.layers.0.${name}.weight`)!;
  const x = Float32Array.from({ length: 2 * BASE.hidden }, (_, i) => Math.sin(i * 0.3));
  const bias = Float32Array.from({ length: m("self_attn.k_proj").rows }, (_, i) => i / 7);

  test("q/k/v and gate/up run as one batch each; results equal separate calls", async () => {
    const pool = await createPool({ threads: 2, kernels: model.kernels });
    pools.push(pool);
    let batches = 0;
    const counting: Pool = { ...pool, runTasks: (tasks) => (batches++, pool.runTasks(tasks)) };
    const fused = createWasmOps(model.kernels, counting, { matrices: model.matrices });
    const plain = createWasmOps(model.kernels);
    const names = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"];
    const want = names.map((name) => plain.linear(x, 2, m(name), name === "self_attn.k_proj" ? bias : undefined).slice());
    const got = names.map((name) => fused.linear(x, 2, m(name), name === "self_attn.k_proj" ? bias : undefined).slice());
    expect(got).toEqual(want);
    expect(batches).toBe(2);
  });

  test("a result computed ahead is not used for another input", async () => {
    const pool = await createPool({ threads: 2, kernels: model.kernels });
    pools.push(pool);
    const fused = createWasmOps(model.kernels, pool, { matrices: model.matrices });
    const plain = createWasmOps(model.kernels);
    const other = x.map((v) => v * -0.5);
    fused.linear(x, 2, m("self_attn.q_proj"));
    expect(fused.linear(other, 2, m("self_attn.k_proj"))).toEqual(plain.linear(other, 2, m("self_attn.k_proj")));
    // v was computed ahead from x with q, then again with k from `other`: the latest input wins.
    expect(fused.linear(other, 2, m("self_attn.v_proj"))).toEqual(plain.linear(other, 2, m("self_attn.v_proj")));
    fused.linear(x, 2, m("mlp.gate_proj"));
    fused.resetTables();
    expect(fused.linear(x, 2, m("mlp.up_proj"))).toEqual(plain.linear(x, 2, m("mlp.up_proj")));
  });
});

test("siluMul in the kernels is within 1e-6 of the reference loop, for lengths off the SIMD width", () => {
  const ops = createWasmOps(createKernels({ shared: false }));
  for (const n of [1, 7, 5632]) {
    const gate = Float32Array.from({ length: n }, (_, i) => 12 * Math.sin(i * 0.7));
    const up = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.3));
    const want = siluMulInto(new Float32Array(n), gate, up);
    const got = ops.siluMul(gate, up);
    expect(got.length).toBe(n);
    for (let i = 0; i < n; i++) expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want[i])));
  }
  expect(() => ops.siluMul(new Float32Array(3), new Float32Array(4))).toThrow(/equal lengths/);
});
