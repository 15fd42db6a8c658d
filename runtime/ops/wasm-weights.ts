/**
 * The weights of a packed model as the WASM ops read them: matrices already resident in WASM
 * memory (runtime/engine/packed-model.ts streams them there), and the 1-D parameters (norm
 * weights, biases), which the loader keeps as f32 arrays, copied into WASM memory once so the
 * kernels can read them.
 */
import { FormatError } from "../errors.ts";
import type { Kernels } from "../kernels/wasm.ts";
import type { WeightStore } from "./types.ts";
import type { WasmMatrix, WasmVector } from "./wasm-ops.ts";

let nextId = 1;

/** Copies a vector into WASM memory (64-byte aligned). */
export function uploadVector(kernels: Kernels, name: string, values: Float32Array): WasmVector {
  const ptr = kernels.arena.alloc(Math.max(1, values.length) * 4, 64);
  new Float32Array(kernels.memory.buffer, ptr, values.length).set(values);
  return { name, length: values.length, ptr, id: nextId++ };
}

/** Weights of a packed model by HF name; every vector is uploaded here, once. */
export function createWasmWeights(
  kernels: Kernels,
  matrices: ReadonlyMap<string, WasmMatrix>,
  vectors: ReadonlyMap<string, Float32Array>,
  file: string,
): WeightStore<WasmMatrix, WasmVector> {
  const uploaded = new Map<string, WasmVector>();
  for (const [name, values] of vectors) uploaded.set(name, uploadVector(kernels, name, values));
  const missing = (name: string): never => {
    throw new FormatError(`checkpoint has no tensor "${name}"`, { file, tensor: name });
  };
  return {
    has: (name) => matrices.has(name) || uploaded.has(name),
    matrix: (name) => matrices.get(name) ?? missing(name),
    vector: (name) => uploaded.get(name) ?? missing(name),
  };
}
