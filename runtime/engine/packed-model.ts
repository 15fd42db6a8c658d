/**
 * Loads a packed crumb checkpoint into WebAssembly memory. The memory is grown once, up front,
 * for the weights and what the caller reserves (KV cache, scratch); the file's whole tensor
 * data section is then read straight into one arena region with large positioned reads, several
 * in flight, so every matrix lands at its final address in the kernels' native layout (the
 * file is 64-byte aligned, so is the region) and nothing is copied again. Each tensor's XXH32
 * is computed by the kernels over the bytes already in memory while later reads run
 * (runtime/format/read-data.ts). 1-D parameters (norm weights, biases) are then kept as fp32 in
 * JS. Refuses, before allocating, a model that cannot fit the 4 GiB wasm32 heap.
 */
import { FormatError } from "../errors.ts";
import { type CheckpointFile, openCheckpoint } from "../format/file.ts";
import type { CheckpointHeader } from "../format/header.ts";
import { dequantize } from "../format/pack-dequantize.ts";
import { TENSOR_ALIGN } from "../format/encoding.ts";
import { dataSectionBytes } from "../format/read-data.ts";
import { xxh32StateBytes, xxh32StreamAt } from "../kernels/checksum.ts";
import { alignUp, formatBytes, type Kernels, loadKernels, WASM_MAX_BYTES } from "../kernels/wasm.ts";
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
  /** How the load went, for a file read from disk (bench/load.ts prints it). */
  readonly loadStats?: LoadStats;
}

/** Where a load's time went (milliseconds of wall clock). */
export interface LoadStats {
  /** Bytes of the tensor data section read. */
  readonly bytes: number;
  /** Growing the WASM memory to its full size (once). */
  readonly growMs: number;
  /** Reading and verifying the data section (reads and hashing overlap). */
  readonly readMs: number;
  /** Of readMs, the main thread's time in the XXH32 kernel. */
  readonly hashMs: number;
  /** Converting the 1-D parameters to fp32 and describing the matrices. */
  readonly finishMs: number;
}

export interface LoadProgress {
  readonly tensor: string;
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

export interface LoadPackedOptions {
  /** Called as each tensor's data is in and verified (for a progress bar). */
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
    return await loadPackedCheckpoint(file, options);
  } finally {
    await file.close();
  }
}

/** Loads an open checkpoint (its metadata already validated); the caller closes it. */
export async function loadPackedCheckpoint(file: CheckpointFile, options: LoadPackedOptions = {}): Promise<PackedModel> {
  const odd = file.tensors.find((t) => t.shape.length !== 1 && t.shape.length !== 2);
  if (odd !== undefined) {
    throw new FormatError(`tensor "${odd.name}" has rank ${odd.shape.length}; crumb models hold only 1-D and 2-D tensors`, {
      file: file.path,
      tensor: odd.name,
      offset: odd.offset,
    });
  }
  const kernels = options.kernels ?? loadKernels();
  const reserveBytes = options.reserveBytes ?? 0;
  const sectionBytes = dataSectionBytes(file);
  const stateBytes = xxh32StateBytes(kernels);
  const mark = kernels.arena.mark();
  const needed = alignUp(mark, TENSOR_ALIGN) + TENSOR_ALIGN + sectionBytes + reserveBytes;
  if (needed > WASM_MAX_BYTES) {
    throw new FormatError(
      `model needs ${formatBytes(needed)} of WASM memory (weights ${formatBytes(sectionBytes)} + cache and scratch ${formatBytes(reserveBytes)}), ` +
        `but wasm32 memory is capped at 4 GiB; quantise to fewer bits (--bits 2), use a smaller --ctx or a compressed cache (--kv q4)`,
      { file: file.path },
    );
  }
  let started = performance.now();
  kernels.arena.reserve(TENSOR_ALIGN + sectionBytes + reserveBytes);
  const growMs = performance.now() - started;
  try {
    const state = kernels.arena.alloc(stateBytes, TENSOR_ALIGN);
    const base = kernels.arena.alloc(sectionBytes, TENSOR_ALIGN);
    // Made after the one growth above, so the view stays valid for the whole read.
    const section = new Uint8Array(kernels.memory.buffer, base, sectionBytes);
    let hashMs = 0;
    // One tensor is hashed at a time (read-data.ts), so every tensor reuses the one state region.
    const createHash = () => {
      const stream = xxh32StreamAt(kernels, state);
      return {
        update(bytes: Uint8Array) {
          const t = performance.now();
          stream.update(bytes);
          hashMs += performance.now() - t;
        },
        digest: () => stream.digest(),
      };
    };
    started = performance.now();
    await file.readData(section, {
      createHash,
      onTensor: (record, bytesDone, bytesTotal) => options.onProgress?.({ tensor: record.name, bytesDone, bytesTotal }),
    });
    const readMs = performance.now() - started;
    started = performance.now();
    const matrices = new Map<string, WasmMatrix>();
    const vectors = new Map<string, Float32Array>();
    for (const record of file.tensors) {
      const at = record.offset - file.dataOffset;
      if (record.shape.length === 2) {
        const [rows, cols] = record.shape;
        matrices.set(record.name, { ...packedMatrixAt(kernels, record.encoding, rows, cols, base + at), name: record.name });
      } else {
        vectors.set(record.name, dequantize(record.encoding, section.subarray(at, at + record.byteLength), 1, record.shape[0]));
      }
    }
    const finishMs = performance.now() - started;
    const loadStats: LoadStats = { bytes: sectionBytes, growMs, readMs, hashMs, finishMs };
    return { path: file.path, header: file.header, kernels, matrices, vectors, weightBytes: sectionBytes, loadStats };
  } catch (error) {
    // Every read has finished (readData settles only then): give the region back.
    kernels.arena.release(mark);
    throw error;
  }
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
