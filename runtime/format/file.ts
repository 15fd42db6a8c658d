/**
 * File helpers over the pure reader and writer (node:fs/promises, which Bun and Deno both
 * provide): `writeCheckpointFile` writes through a temp file, fsyncs and renames, so a crash
 * or error never leaves a partial checkpoint; `openCheckpoint` reads only the metadata and
 * streams tensor data on demand, with progress, straight into a caller's buffer.
 */

import { open, rename, rm } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import process from "node:process";
import { CrumbError, InvalidArgumentError } from "../errors.ts";
import {
  type ByteSource,
  type CheckpointInfo,
  readCheckpointHeader,
  readTensorInto,
  type TensorReadOptions,
  verifyCheckpoint,
} from "./reader.ts";
import type { TensorRecord } from "./tensor-table.ts";
import { type CheckpointInput, type CheckpointPlan, checkpointChunks, planCheckpoint } from "./writer.ts";

/** A ByteSource over an open file handle. */
export function fileByteSource(handle: FileHandle, size: number): ByteSource {
  return {
    size,
    async read(target, position) {
      const { bytesRead } = await handle.read(target, 0, target.length, position);
      return bytesRead;
    },
  };
}

function ioError(action: string, path: string, cause: unknown): CrumbError {
  if (cause instanceof CrumbError) return cause;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new CrumbError(
    "io_error",
    `cannot ${action} checkpoint ${path}: ${reason}; check that the directory exists, is writable and has free space`,
    { cause },
  );
}

/** The temporary name a checkpoint is written under before the rename. */
export function checkpointTempPath(path: string): string {
  return `${path}.tmp-${process.pid}`;
}

/** Writes all of `bytes` at `position` (handle.write may write less than asked). */
export async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * Writes `path` atomically: `write` fills `checkpointTempPath(path)`, which is then fsynced and
 * renamed over `path`. On any error the temp file is removed and the error is rethrown (a
 * CrumbError as is, anything else as an io_error naming the path).
 */
export async function writeFileAtomically(path: string, write: (handle: FileHandle) => Promise<void>): Promise<void> {
  const temp = checkpointTempPath(path);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, "w", 0o644);
    await write(handle);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, path);
  } catch (cause) {
    await handle?.close().catch(() => undefined);
    await rm(temp, { force: true }).catch(() => undefined);
    throw ioError("write", path, cause);
  }
  await syncDirectory(dirname(path));
}

/**
 * Writes a checkpoint to `path` atomically (`writeFileAtomically`). Input is validated before
 * any file is created.
 */
export async function writeCheckpointFile(path: string, input: CheckpointInput): Promise<CheckpointPlan> {
  const plan = planCheckpoint(input);
  await writeFileAtomically(path, async (handle) => {
    let position = 0;
    for (const chunk of checkpointChunks(plan, input)) {
      await writeAll(handle, chunk, position);
      position += chunk.length;
    }
  });
  return plan;
}

/** Makes the rename durable where the platform allows fsync on a directory (best effort). */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some platforms and file systems refuse fsync on directories; the data itself is synced.
  }
}

/** An open checkpoint: validated metadata in memory, tensor data read on demand. */
export interface CheckpointFile extends CheckpointInfo {
  readonly path: string;
  /** The record for `name`; throws InvalidArgumentError naming a few known tensors when absent. */
  tensor(name: string): TensorRecord;
  /** Streams a tensor into `target` (e.g. WASM memory), verifying its checksum unless `verify: false`. */
  readTensorInto(tensor: string | TensorRecord, target: Uint8Array, options?: TensorReadOptions): Promise<void>;
  /** A tensor's bytes in a new array, verified unless `verify: false`. */
  readTensor(tensor: string | TensorRecord, options?: TensorReadOptions): Promise<Uint8Array>;
  /** Verifies every tensor's checksum; progress is over the whole data section. */
  verify(options?: Omit<TensorReadOptions, "verify" | "file">): Promise<void>;
  close(): Promise<void>;
}

/** Opens a checkpoint and validates its metadata without reading tensor data. */
export async function openCheckpoint(path: string): Promise<CheckpointFile> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (cause) {
    throw new InvalidArgumentError("path", `cannot open checkpoint ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    const size = (await handle.stat()).size;
    const source = fileByteSource(handle, size);
    const info = await readCheckpointHeader(source, { file: path });
    const byName = new Map(info.tensors.map((t) => [t.name, t]));
    const lookup = (tensor: string | TensorRecord): TensorRecord => {
      if (typeof tensor !== "string") return tensor;
      const record = byName.get(tensor);
      if (record === undefined) {
        const known = info.tensors.slice(0, 5).map((t) => t.name).join(", ");
        throw new InvalidArgumentError(
          "tensor",
          `checkpoint ${path} has no tensor "${tensor}" (it has ${info.tensors.length}: ${known}${
            info.tensors.length > 5 ? ", ..." : ""
          })`,
        );
      }
      return record;
    };
    const file: CheckpointFile = {
      ...info,
      path,
      tensor: lookup,
      readTensorInto: (tensor, target, options = {}) =>
        readTensorInto(source, lookup(tensor), target, { ...options, file: path }),
      async readTensor(tensor, options = {}) {
        const record = lookup(tensor);
        const out = new Uint8Array(record.byteLength);
        await readTensorInto(source, record, out, { ...options, file: path });
        return out;
      },
      verify: (options = {}) => verifyCheckpoint(source, info, { ...options, file: path }),
      close: () => handle.close(),
    };
    return file;
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}
