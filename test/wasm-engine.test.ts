// The WASM backend (packed weights in WASM memory, LUT kernels, worker pool, KV cache in WASM
// memory) against its reference twin: the same architectures' forward pass over the
// TypeScript twins of the kernels on the same packed bytes, with the fp32 reference cache.
import { afterAll, describe, expect, test } from "bun:test";
import { resolveModel } from "../runtime/models/registry.ts";
import type { Encoding } from "../runtime/format/encoding.ts";
import { packedModelFromBytes } from "../runtime/engine/packed-model.ts";
import { createKernels } from "../runtime/kernels/wasm.ts";
import { createWasmBackend, type WasmBackend } from "../runtime/engine/wasm-backend.ts";
import { createReferenceCache } from "../runtime/engine/kv-cache/reference-cache.ts";
import { type PackedBytesMatrix, packedReferenceOps } from "../runtime/ops/packed-reference.ts";
import type { ForwardContext, WeightStore } from "../runtime/ops/types.ts";
import { ContextLengthError, FormatError } from "../runtime/errors.ts";
import { createRandomModel, type RandomModelSpec } from "./fixtures/random-model.ts";
import { headerFor, type PackedTensor, packModel } from "./fixtures/pack-model.ts";

const backends: WasmBackend[] = [];
afterAll(async () => {
  for (const b of backends) await b.dispose();
  backends.length = 0; // bun keeps finished test files in memory; drop the WASM memories
});

function twinForward(spec: RandomModelSpec, tensors: PackedTensor[], tokens: number[]): Float32Array {
  const source = createRandomModel(spec);
  const { arch, args } = resolveModel(source.config);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const vectors = new Map<string, Float32Array>();
  const weights: WeightStore<PackedBytesMatrix> = {
    has: (name) => byName.has(name),
    matrix(name) {
      const t = byName.get(name)!;
      return { name, rows: t.shape[0], cols: t.shape[1], encoding: t.encoding, bytes: t.bytes };
    },
    vector(name) {
      if (!vectors.has(name)) vectors.set(name, source.tensors.get(name)!.read());
      return vectors.get(name)!;
    },
  };
  const cache = createReferenceCache({ ...args, contextLength: 64 });
  const state = packedReferenceOps.createState(arch.stateLayout(args), tokens.length, 64);
  const ctx = { ops: packedReferenceOps, weights, attention: cache, state } as unknown as ForwardContext;
  return arch.forward(args, ctx, tokens, 0, { allLogits: true });
}

async function wasmForward(spec: RandomModelSpec, tensors: PackedTensor[], tokens: number[], threads: number, kv: "f32" | "f16") {
  const source = createRandomModel(spec);
  const backend = await createWasmBackend(packedModelFromBytes(headerFor(source), tensors), { threads, kv, contextLength: 64 });
  backends.push(backend);
  // Prefill a block, then decode the rest token by token (each result a view: copied).
  const parts = [backend.forward(tokens.slice(0, 5), { allLogits: true }).slice()];
  for (const token of tokens.slice(5)) parts.push(backend.forward([token]).slice());
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return { logits: out, backend };
}

function relativeError(got: Float32Array, want: Float32Array): number {
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < want.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
    maxRef = Math.max(maxRef, Math.abs(want[i]));
  }
  return maxDiff / maxRef;
}

const TOKENS = [1, 17, 42, 5, 96, 33, 8, 61, 2];
const BASE = { hidden: 64, intermediate: 96, layers: 2, vocab: 97, seed: 5 } as const;

const ENCODINGS: Encoding[] = [
  { kind: "f32" },
  { kind: "f16" },
  { kind: "q8", group: 32 },
  { kind: "bitplane", bits: 2, group: 32, scales: "zero-point" },
  { kind: "bitplane", bits: 3, group: 64, scales: "per-plane" },
  { kind: "bitplane", bits: 4, group: 32, scales: "zero-point" },
  { kind: "ternary", group: 64, planes: 1 },
  { kind: "ternary", group: 32, planes: 2 },
];

// Why these tolerances: with f32/f16 weights nothing quantises activations, so the backend
// stays at float tolerance of its twin (the norms, RoPE and attention run in f32 SIMD kernels
// there, in f64 loops here). Models whose matmuls quantise their input (LUT tables and q8's
// int8 blocks) round those last-bit differences to whole quanta at the next matmul, so they
// drift by up to a few quanta, for one token too (the norm kernel's f32 sum differs from the
// twin's f64 one in the last bit).
const quantisesActivations = (e: Encoding) => e.kind === "bitplane" || e.kind === "ternary" || e.kind === "q8";

describe("WASM backend equals its kernel twins on packed weights", () => {
  for (const encoding of ENCODINGS) {
    const label = JSON.stringify(encoding);
    test(`llama GQA, ${label}, 1 and 2 threads`, async () => {
      const spec: RandomModelSpec = { ...BASE, arch: "llama", heads: 4, kvHeads: 2 };
      const tensors = packModel(createRandomModel(spec), encoding);
      const single = twinForward(spec, tensors, [TOKENS[0]]);
      const want = twinForward(spec, tensors, TOKENS);
      for (const threads of [1, 2]) {
        const first = await wasmForward(spec, tensors, [TOKENS[0]], threads, "f32");
        expect(relativeError(first.logits, single)).toBeLessThan(quantisesActivations(encoding) ? 1e-2 : 2e-5);
        const { logits } = await wasmForward(spec, tensors, TOKENS, threads, "f32");
        expect(logits.length).toBe(want.length);
        expect(relativeError(logits, want)).toBeLessThan(quantisesActivations(encoding) ? 3e-2 : 2e-5);
      }
    });
  }

  for (const arch of ["qwen2", "qwen3", "mistral"]) {
    test(`${arch}: f16 weights and q4 weights, f16 KV cache`, async () => {
      const spec: RandomModelSpec = {
        ...BASE,
        arch,
        heads: 4,
        kvHeads: 2,
        tieEmbeddings: arch === "qwen2",
        headDim: arch === "qwen3" ? 32 : undefined,
        slidingWindow: arch === "mistral" ? 4 : undefined,
      };
      const dense = packModel(createRandomModel(spec), { kind: "f16" }, { kind: "f16" });
      // The f16 cache rounds keys and values (relative 2^-11).
      expect(relativeError((await wasmForward(spec, dense, TOKENS, 2, "f16")).logits, twinForward(spec, dense, TOKENS))).toBeLessThan(5e-3);
      const q4 = packModel(createRandomModel(spec), { kind: "bitplane", bits: 4, group: 32, scales: "zero-point" }, { kind: "q8", group: 32 });
      expect(relativeError((await wasmForward(spec, q4, TOKENS, 2, "f16")).logits, twinForward(spec, q4, TOKENS))).toBeLessThan(5e-2);
    });
  }
});

describe("row-shard fallback (runtimes without shared WebAssembly memory)", () => {
  for (const [arch, encoding] of [["llama", ENCODINGS[3]], ["qwen2", ENCODINGS[2]]] as const) {
    test(`${arch} ${JSON.stringify(encoding)}: 2 and 3 threads on private memories equal 1 thread bit for bit`, async () => {
      const spec: RandomModelSpec = { ...BASE, arch, heads: 4, kvHeads: 2, tieEmbeddings: arch === "qwen2" };
      const source = createRandomModel(spec);
      const tensors = packModel(source, encoding);
      const run = async (threads: number) => {
        const model = packedModelFromBytes(headerFor(source), tensors, createKernels({ shared: false }));
        const backend = await createWasmBackend(model, { threads, kv: "f16", contextLength: 64 });
        backends.push(backend);
        const logits = [backend.forward(TOKENS.slice(0, 5), { allLogits: true }).slice(), ...TOKENS.slice(5).map((t) => backend.forward([t]).slice())];
        return { name: backend.name, logits };
      };
      const one = await run(1);
      for (const threads of [2, 3]) {
        const many = await run(threads);
        expect(many.name).toContain(`${threads} threads (row shards`);
        expect(many.logits).toEqual(one.logits);
      }
    });
  }
});

describe("a tied table stored in the head's LUT encoding (issue 13)", () => {
  test("embedding rows (lutRow) and the head GEMV equal the twins', on 1 and 2 threads and on row shards", async () => {
    const spec: RandomModelSpec = { ...BASE, arch: "qwen2", heads: 4, kvHeads: 2, tieEmbeddings: true };
    const source = createRandomModel(spec);
    const head: Encoding = { kind: "bitplane", bits: 4, group: 64, scales: "zero-point" };
    const tensors = packModel(source, { kind: "bitplane", bits: 2, group: 32, scales: "zero-point" }, head);
    expect(tensors.some((t) => t.name === "lm_head.weight")).toBe(false);
    const single = twinForward(spec, tensors, [TOKENS[0]]);
    const want = twinForward(spec, tensors, TOKENS);
    for (const threads of [1, 2]) {
      expect(relativeError((await wasmForward(spec, tensors, [TOKENS[0]], threads, "f32")).logits, single)).toBeLessThan(2e-5);
      expect(relativeError((await wasmForward(spec, tensors, TOKENS, threads, "f32")).logits, want)).toBeLessThan(3e-2);
    }
    const sharded = await createWasmBackend(packedModelFromBytes(headerFor(source), tensors, createKernels({ shared: false })), { threads: 2, kv: "f32", contextLength: 8 });
    backends.push(sharded);
    expect(sharded.name).toContain("row shards");
    expect(relativeError(sharded.forward([TOKENS[0]]), single)).toBeLessThan(2e-5);
  });
});

describe("WASM backend errors", () => {
  test("context overflow and a missing tensor are refused", async () => {
    const spec: RandomModelSpec = { ...BASE, arch: "llama", heads: 4 };
    const source = createRandomModel(spec);
    const tensors = packModel(source, { kind: "f16" });
    const backend = await createWasmBackend(packedModelFromBytes(headerFor(source), tensors), { contextLength: 8 });
    expect(() => backend.forward(new Array(9).fill(1))).toThrow(ContextLengthError);

    const missing = tensors.filter((t) => t.name !== "model.layers.1.mlp.up_proj.weight");
    await expect(createWasmBackend(packedModelFromBytes(headerFor(source), missing))).rejects.toThrow(FormatError);
  });
});

describe("sessions through the engine", () => {
  test("a restored session continues exactly like the uninterrupted conversation", async () => {
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { writeCheckpointFile } = await import("../runtime/format/file.ts");
    const { loadEngine } = await import("../runtime/engine/load-engine.ts");
    const { loadFixtureTokenizer } = await import("./fixtures/write-model.ts");
    const dir = mkdtempSync(join(tmpdir(), "crumb-session-"));
    try {
      const spec: RandomModelSpec = { arch: "llama", hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2, vocab: 32000, seed: 9 };
      const source = createRandomModel(spec, loadFixtureTokenizer("llama2"));
      const model = join(dir, "tiny.q4");
      await writeCheckpointFile(model, {
        header: headerFor(source),
        tensors: packModel(source, { kind: "bitplane", bits: 4, group: 32, scales: "zero-point" }, { kind: "q8", group: 32 }),
      });
      const greedy = { temperature: 0, maxTokens: 8, stopAtEos: false } as const;
      const run = async (engine: Awaited<ReturnType<typeof loadEngine>>, prompt: string) => {
        const ids: number[] = [];
        for await (const e of engine.generate(prompt, greedy)) if (e.type === "token") ids.push(e.id);
        return ids;
      };
      const first = "Hello there, how are you";
      const second = "Hello there, how are you today? I am";
      const uninterrupted = await loadEngine(model, { kv: "q8", threads: 1 });
      await run(uninterrupted, first);
      const expected = await run(uninterrupted, second);
      const session = join(dir, "chat.session");
      const a = await loadEngine(model, { kv: "q8", threads: 1 });
      await run(a, first);
      expect(await a.saveSession(session)).toBeGreaterThan(0);
      const b = await loadEngine(model, { kv: "q8", threads: 1 });
      expect(await b.restoreSession(session)).toBeGreaterThan(5);
      expect(await run(b, second)).toEqual(expected);
      for (const e of [uninterrupted, a, b]) await e.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
