/**
 * Loads a packed crumb checkpoint into WebAssembly memory: matrices are streamed straight
 * into 64-byte aligned arena regions in the kernels' native layout (checksums verified while
 * reading, no intermediate copy), 1-D parameters (norm weights, biases) are kept as fp32 in
 * JS. Refuses, before allocating, a model that cannot fit the 4 GiB wasm32 heap.
 */
import { FormatError } from "../errors.ts";
import { type CheckpointFile, openCheckpoint } from "../format/file.ts";
import type { CheckpointHeader } from "../format/header.ts";
import { dequantize } from "../format/pack-dequantize.ts";
import { TENSOR_ALIGN } from "../format/encoding.ts";
import { formatBytes, type Kernels, loadKernels, WASM_MAX_BYTES } from "../kernels/wasm.ts";
import { createPackedMatrix, packedMatrixAt } from "../kernels/matmul.ts";
import type { WasmMatrix } from "../ops/wasm-ops.ts";

export interface PackedModel {
  readonly path: string;
  readonly header: CheckpointHeader;
  readonly kernels: Kernels;
  readonly matrices: ReadonlyMap<string, WasmMatrix>;
  readonly vectors: ReadonlyMap<string, Float32Array>;
  /** Bytes of tensor data held in WASM memory. */
  readonly weightBytes: number;
}

export interface LoadProgress {
  readonly tensor: string;
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

export interface LoadPackedOptions {
  /** Called as tensor data streams in (for a progress bar). */
  readonly onProgress?: (progress: LoadProgress) => void;
  /** Bytes the caller will need besides the weights (KV cache, scratch), for the fit check. */
  readonly reserveBytes?: number;
  readonly kernels?: Kernels;
}

/** True when the file starts with the crumb checkpoint magic. */
export function isPackedCheckpoint(bytes: Uint8Array): boolean {
  const magic = [0x89, 0x43, 0x52, 0x55, 0x4d, 0x42, 0x0d, 0x0a];
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

export async function loadPackedModel(path: string, options: LoadPackedOptions = {}): Promise<PackedModel> {
  const file = await openCheckpoint(path);
  try {
    return await loadFrom(file, options);
  } finally {
    await file.close();
  }
}

async function loadFrom(file: CheckpointFile, options: LoadPackedOptions): Promise<PackedModel> {
  const kernels = options.kernels ?? loadKernels();
  const matrixRecords = file.tensors.filter((t) => t.shape.length === 2);
  const weightBytes = matrixRecords.reduce((sum, t) => sum + Math.ceil(t.byteLength / TENSOR_ALIGN) * TENSOR_ALIGN, 0);
  const needed = kernels.arena.mark() + weightBytes + (options.reserveBytes ?? 0);
  if (needed > WASM_MAX_BYTES) {
    throw new FormatError(
      `model needs ${formatBytes(needed)} of WASM memory (weights ${formatBytes(weightBytes)} + cache and scratch ${formatBytes(options.reserveBytes ?? 0)}), ` +
        `but wasm32 memory is capped at 4 GiB; quantise to fewer bits (--bits 2), use a smaller --ctx or a compressed cache (--kv q4)`,
      { file: file.path },
    );
  }
  const bytesTotal = file.tensors.reduce((sum, t) => sum + t.byteLength, 0);
  let bytesDone = 0;
  const matrices = new Map<string, WasmMatrix>();
  const vectors = new Map<string, Float32Array>();
  for (const record of file.tensors) {
    const before = bytesDone;
    const onProgress = (done: number) => options.onProgress?.({ tensor: record.name, bytesDone: before + done, bytesTotal });
    if (record.shape.length === 2) {
      const [rows, cols] = record.shape;
      const ptr = kernels.arena.alloc(record.byteLength, TENSOR_ALIGN);
      await file.readTensorInto(record, new Uint8Array(kernels.memory.buffer, ptr, record.byteLength), { onProgress });
      matrices.set(record.name, { ...packedMatrixAt(kernels, record.encoding, rows, cols, ptr), name: record.name });
    } else if (record.shape.length === 1) {
      const bytes = await file.readTensor(record, { onProgress });
      vectors.set(record.name, dequantize(record.encoding, bytes, 1, record.shape[0]));
    } else {
      throw new FormatError(`tensor "${record.name}" has rank ${record.shape.length}; crumb models hold only 1-D and 2-D tensors`, {
        file: file.path,
        tensor: record.name,
      });
    }
    bytesDone = before + record.byteLength;
  }
  return { path: file.path, header: file.header, kernels, matrices, vectors, weightBytes };
}

/** For tests and tools: a packed model built in memory from already-packed tensors. */
export function packedModelFromBytes(
  header: CheckpointHeader,
  tensors: readonly { name: string; shape: readonly number[]; encoding: Parameters<typeof dequantize>[0]; bytes: Uint8Array }[],
  kernels: Kernels = loadKernels(),
): PackedModel {
  const matrices = new Map<string, WasmMatrix>();
  const vectors = new Map<string, Float32Array>();
  let weightBytes = 0;
  for (const t of tensors) {
    if (t.shape.length === 2) {
      matrices.set(t.name, { ...createPackedMatrix(kernels, t.encoding, t.shape[0], t.shape[1], t.bytes), name: t.name });
      weightBytes += t.bytes.length;
    } else vectors.set(t.name, dequantize(t.encoding, t.bytes, 1, t.shape[0]));
  }
  return { path: "memory", header, kernels, matrices, vectors, weightBytes };
}
