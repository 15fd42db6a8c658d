// Shared by the KV cache tests: random packed models on the WASM backend with a chosen
// attention state, token streams, and the quality measures of DESIGN.md ("Quality").
import { createRandom } from "../../runtime/engine/sampler.ts";
import { packedModelFromBytes } from "../../runtime/engine/packed-model.ts";
import { createWasmBackend, type KvType, type WasmBackend } from "../../runtime/engine/wasm-backend.ts";
import type { KvOptions } from "../../runtime/engine/kv-cache/create-kv-cache.ts";
import type { Encoding } from "../../runtime/format/encoding.ts";
import { createRandomModel, type RandomModelSpec } from "../fixtures/random-model.ts";
import { headerFor, type PackedTensor, packModel } from "../fixtures/pack-model.ts";

export const MHA: RandomModelSpec = { arch: "llama", hidden: 128, intermediate: 192, layers: 3, heads: 4, vocab: 211, seed: 11 };
export const GQA: RandomModelSpec = { ...MHA, heads: 8, kvHeads: 2, seed: 12 };
export const QWEN3: RandomModelSpec = { ...GQA, arch: "qwen3", headDim: 32, seed: 13 };

const packed = new Map<string, PackedTensor[]>();

export function packedTensors(spec: RandomModelSpec, encoding: Encoding = { kind: "f16" }, extra: (t: PackedTensor[]) => PackedTensor[] = (t) => t) {
  const key = JSON.stringify([spec, encoding]);
  if (!packed.has(key)) packed.set(key, packModel(createRandomModel(spec), encoding));
  return extra(packed.get(key)!);
}

export const backends: WasmBackend[] = [];

export async function backendFor(
  spec: RandomModelSpec,
  kv: KvType,
  options: { kvOptions?: KvOptions; contextLength?: number; threads?: number; kvBudget?: number; tensors?: PackedTensor[] } = {},
): Promise<WasmBackend> {
  const source = createRandomModel(spec);
  const tensors = options.tensors ?? packedTensors(spec);
  const backend = await createWasmBackend(packedModelFromBytes(headerFor(source), tensors), {
    kv,
    kvOptions: options.kvOptions,
    kvBudget: options.kvBudget,
    contextLength: options.contextLength ?? 160,
    threads: options.threads ?? 1,
  });
  backends.push(backend);
  return backend;
}

export function randomTokens(count: number, vocab: number, seed: number): number[] {
  const random = createRandom(seed);
  return Array.from({ length: count }, () => 1 + Math.floor(random() * (vocab - 1)));
}

/** Logits (positions, vocab) of a stream: a prefill of `prefill` tokens, then one token per step. */
export async function streamLogits(backend: WasmBackend, tokens: readonly number[], prefill: number): Promise<Float32Array[]> {
  const rows: Float32Array[] = [];
  const vocab = backend.args.vocabSize;
  const first = await backend.forward(tokens.slice(0, prefill), { allLogits: true });
  for (let i = 0; i < prefill; i++) rows.push(first.slice(i * vocab, (i + 1) * vocab));
  for (const token of tokens.slice(prefill)) rows.push((await backend.forward([token])).slice());
  return rows;
}

function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x);
  let total = 0;
  for (const x of logits) total += Math.exp(x - max);
  const lse = max + Math.log(total);
  return Float64Array.from(logits, (x) => x - lse);
}

/** KL(reference ‖ test) per position; mean, max and top-1 agreement. */
export function compareStreams(reference: Float32Array[], test: Float32Array[]) {
  const kls = reference.map((ref, i) => {
    const p = logSoftmax(ref);
    const q = logSoftmax(test[i]);
    let kl = 0;
    for (let j = 0; j < p.length; j++) kl += Math.exp(p[j]) * (p[j] - q[j]);
    return Math.max(0, kl);
  });
  const argmax = (a: Float32Array) => a.reduce((best, x, i) => (x > a[best] ? i : best), 0);
  const agree = reference.filter((ref, i) => argmax(ref) === argmax(test[i])).length / reference.length;
  return { meanKl: kls.reduce((a, b) => a + b, 0) / kls.length, maxKl: Math.max(...kls), top1: agree };
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const x of a) m = Math.max(m, Math.abs(x));
  return m;
}
