/**
 * Reads a checkpoint's whole tensor data section, bytes [dataOffset, fileLength), into one
 * target (a view of WASM memory) at memory speed: large positioned reads straight into the
 * target, several in flight (the runtime's I/O threads copy and take the page faults of fresh
 * memory side by side), and every tensor's XXH32 computed in file order over the bytes already
 * in, while later reads are still running. Tensors land at `offset - dataOffset` in the
 * target, so the 64-byte alignment of the file is the alignment in memory. A tensor whose
 * checksum differs is refused with a FormatError naming it; the target is never written after
 * the returned promise settles.
 */
import { FormatError, InvalidArgumentError } from "../errors.ts";
import { XxHash32 } from "./checksum.ts";
import { type ByteSource, type CheckpointInfo, checksumMismatch, type ReadOptions } from "./reader.ts";
import type { TensorRecord } from "./tensor-table.ts";

/** A hash fed in pieces (`XxHash32`, or the kernels' `xxh32StreamAt`). */
export interface StreamingHash {
  update(bytes: Uint8Array): unknown;
  digest(): number;
}

export interface DataReadOptions extends ReadOptions {
  /** Bytes per read (default 8 MiB). */
  chunkSize?: number;
  /** Reads in flight at once (default 4). */
  concurrency?: number;
  /**
   * A new XXH32 (seed 0) for the next tensor (default `new XxHash32()`). Tensors are hashed
   * one at a time in file order: a tensor's digest is taken before the next hash is asked for,
   * so a factory may hand out the same state each time.
   */
  createHash?: () => StreamingHash;
  /** Called once each tensor's data is in and verified, with the bytes of the section done. */
  onTensor?: (record: TensorRecord, bytesDone: number, bytesTotal: number) => void;
}

export const DATA_CHUNK = 8 << 20;
export const DATA_CONCURRENCY = 4;

/** Bytes a target must hold for `readDataSection`: the data section's length. */
export function dataSectionBytes(info: CheckpointInfo): number {
  return info.fileLength - info.dataOffset;
}

function positiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError(name, `${name} must be a positive integer, got ${value}`);
}

/** The tensor holding file byte `position`, if any (for naming the tensor a short read cuts). */
function tensorAt(sorted: readonly TensorRecord[], position: number): TensorRecord | undefined {
  return sorted.find((t) => position >= t.offset && position < t.offset + t.byteLength);
}

/**
 * Reads [dataOffset, fileLength) into target[0, fileLength - dataOffset), verifying every
 * tensor's checksum. Rejects with FormatError (mismatch or a file that ends early, naming the
 * tensor) only after every read in flight has finished.
 */
export async function readDataSection(
  source: ByteSource,
  info: CheckpointInfo,
  target: Uint8Array,
  options: DataReadOptions = {},
): Promise<void> {
  const { file, chunkSize = DATA_CHUNK, concurrency = DATA_CONCURRENCY, createHash = () => new XxHash32() } = options;
  positiveInteger("chunkSize", chunkSize);
  positiveInteger("concurrency", concurrency);
  const start = info.dataOffset;
  const total = dataSectionBytes(info);
  if (target.length < total) {
    throw new InvalidArgumentError("target", `target of ${target.length} bytes cannot hold the ${total}-byte tensor data section`);
  }
  const sorted = [...info.tensors].sort((a, b) => a.offset - b.offset);
  const chunks = Math.ceil(total / chunkSize);
  const arrived = new Uint8Array(chunks);
  let nextChunk = 0; // the next chunk a lane will read
  let inOrder = 0; // chunks [0, inOrder) are all in
  let nextTensor = 0; // sorted[nextTensor] is the first tensor not yet verified
  let hashedTo = start; // file bytes [start, hashedTo) have gone into hashes
  let hash: StreamingHash | undefined;
  let failure: unknown;

  /** Hashes file bytes [hashedTo, to) into the tensors they belong to, verifying each tensor that completes. */
  const hashUpTo = (to: number) => {
    while (nextTensor < sorted.length) {
      const record = sorted[nextTensor];
      const end = record.offset + record.byteLength;
      if (record.offset > to) break;
      hash ??= createHash();
      const from = Math.max(hashedTo, record.offset);
      const stop = Math.min(end, to);
      if (stop > from) hash.update(target.subarray(from - start, stop - start));
      hashedTo = Math.max(hashedTo, stop);
      if (end > to) break;
      const computed = hash.digest() >>> 0;
      hash = undefined;
      if (computed !== record.checksum) throw checksumMismatch(record, computed, file);
      nextTensor++;
      options.onTensor?.(record, end - start, total);
    }
  };

  const lane = async () => {
    while (failure === undefined && nextChunk < chunks) {
      const k = nextChunk++;
      const from = start + k * chunkSize;
      const to = Math.min(start + total, from + chunkSize);
      for (let at = from; at < to;) {
        const n = await source.read(target.subarray(at - start, to - start), at);
        if (!Number.isInteger(n) || n <= 0) {
          const cut = tensorAt(sorted, at);
          throw new FormatError(
            `file ends at byte ${at} while reading ${cut === undefined ? "tensor data" : `tensor "${cut.name}"`}: it is truncated`,
            {
              file,
              tensor: cut?.name,
              offset: at,
            },
          );
        }
        at += n;
      }
      arrived[k] = 1;
      if (failure !== undefined) return;
      while (inOrder < chunks && arrived[inOrder] === 1) {
        inOrder++;
        hashUpTo(Math.min(start + total, start + inOrder * chunkSize));
      }
    }
  };

  const lanes = Array.from({ length: Math.min(concurrency, Math.max(chunks, 1)) }, () =>
    lane().catch((error) => {
      failure ??= error;
    }));
  await Promise.all(lanes);
  if (failure !== undefined) throw failure;
}
