/**
 * File helpers over the pure reader and writer (node:fs/promises, which Bun and Deno both
 * provide): `writeCheckpointFile` writes through a temp file, fsyncs and renames, so a crash
 * or error never leaves a partial checkpoint; `openCheckpoint` reads only the metadata and
 * streams tensor data on demand, with progress, straight into a caller's buffer, or the whole
 * data section at once with several positioned reads in flight (`readData`). On Deno the reads
 * go through Deno.FsFile (one handle per read in flight: its node:fs file handles run one read
 * at a time), elsewhere through node:fs/promises.
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
import { type DataReadOptions, readDataSection } from "./read-data.ts";

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

/** A file's ByteSource that serves concurrent positioned reads, and closes what it opened. */
export interface FileSource extends ByteSource {
  /** The file API the reads go through. */
  readonly api: "Deno.FsFile" | "node:fs";
  close(): Promise<void>;
}

/** The parts of Deno's file API a FileSource uses. */
interface DenoFile {
  seek(offset: number, whence: number): Promise<number>;
  read(target: Uint8Array): Promise<number | null>;
  stat(): Promise<{ size: number }>;
  close(): void;
}
interface DenoFileApi {
  open(path: string, options: { read: true }): Promise<DenoFile>;
}
const SEEK_START = 0; // Deno.SeekMode.Start

/** Opens `path` for positioned reads (Deno.FsFile handles on Deno, else a node:fs/promises handle). */
export async function openFileSource(path: string): Promise<FileSource> {
  const deno = (globalThis as { Deno?: Partial<DenoFileApi> }).Deno;
  if (typeof deno?.open === "function") return await openDenoSource(deno as DenoFileApi, path);
  const handle = await open(path, "r");
  try {
    const size = (await handle.stat()).size;
    return { ...fileByteSource(handle, size), api: "node:fs", close: () => handle.close() };
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}

/**
 * A Deno file as a FileSource: a read borrows an idle handle (opening another when all are
 * busy), seeks and reads, so reads in flight at once run side by side on Deno's I/O threads.
 */
async function openDenoSource(deno: DenoFileApi, path: string): Promise<FileSource> {
  const first = await deno.open(path, { read: true });
  const all = [first];
  const idle = [first];
  let size: number;
  try {
    size = (await first.stat()).size;
  } catch (error) {
    first.close();
    throw error;
  }
  return {
    size,
    api: "Deno.FsFile",
    async read(target, position) {
      let handle = idle.pop();
      if (handle === undefined) {
        handle = await deno.open(path, { read: true });
        all.push(handle);
      }
      try {
        await handle.seek(position, SEEK_START);
        return (await handle.read(target)) ?? 0;
      } finally {
        idle.push(handle);
      }
    },
    close() {
      for (const handle of all.splice(0)) handle.close();
      idle.length = 0;
      return Promise.resolve();
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
  /**
   * Reads the whole tensor data section into `target` (at least `fileLength - dataOffset`
   * bytes; each tensor at `offset - dataOffset`), verifying every checksum (read-data.ts).
   */
  readData(target: Uint8Array, options?: Omit<DataReadOptions, "file">): Promise<void>;
  /** Verifies every tensor's checksum; progress is over the whole data section. */
  verify(options?: Omit<TensorReadOptions, "verify" | "file">): Promise<void>;
  close(): Promise<void>;
}

/** Opens a checkpoint and validates its metadata without reading tensor data. */
export async function openCheckpoint(path: string): Promise<CheckpointFile> {
  let source: FileSource;
  try {
    source = await openFileSource(path);
  } catch (cause) {
    throw new InvalidArgumentError("path", `cannot open checkpoint ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
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
      readData: (target, options = {}) => readDataSection(source, info, target, { ...options, file: path }),
      verify: (options = {}) => verifyCheckpoint(source, info, { ...options, file: path }),
      close: () => source.close(),
    };
    return file;
  } catch (error) {
    await source.close().catch(() => undefined);
    throw error;
  }
}
