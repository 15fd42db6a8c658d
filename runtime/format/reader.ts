/**
 * Reads a crumb checkpoint (FORMAT.md) from memory or any random-access byte source:
 * the preamble, JSON header and tensor table are read and fully validated (checksum,
 * lengths against the real file size, alignment, overlaps, encodings) before anything is
 * returned; tensor data is read on demand, in chunks, and verified against its XXH32.
 * Every failure is a FormatError naming the byte offset (and the tensor when there is one).
 */

import { FormatError, InvalidArgumentError } from "../errors.ts";
import { formatChecksum, XxHash32 } from "./checksum.ts";
import { type CheckpointHeader, decodeHeader, decodePreamble, PREAMBLE, PREAMBLE_SIZE, type Preamble } from "./header.ts";
import { decodeTable, type TensorRecord } from "./tensor-table.ts";

/** Random-access bytes: an in-memory array, an open file, an HTTP range reader. */
export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /** Copies up to target.length bytes from `position` into target; returns how many (0 at end of data). */
  read(target: Uint8Array, position: number): number | Promise<number>;
}

/** A checkpoint's validated metadata. */
export interface CheckpointInfo {
  readonly version: number;
  readonly flags: number;
  readonly header: CheckpointHeader;
  /** In table order (the order the writer was given). */
  readonly tensors: readonly TensorRecord[];
  readonly dataOffset: number;
  readonly fileLength: number;
}

export interface ReadOptions {
  /** File path for error messages. */
  file?: string;
}

export interface TensorReadOptions extends ReadOptions {
  /** Check the tensor's XXH32 (default true). */
  verify?: boolean;
  /** Bytes per read (default 4 MiB). */
  chunkSize?: number;
  /** Called after every chunk with bytes done and the tensor's total. */
  onProgress?: (done: number, total: number) => void;
}

const DEFAULT_CHUNK = 4 << 20;

/** Wraps an in-memory file as a ByteSource. */
export function bytesSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    read(target, position) {
      const n = Math.max(0, Math.min(target.length, bytes.length - position));
      target.set(bytes.subarray(position, position + n));
      return n;
    },
  };
}

function asSource(source: Uint8Array | ByteSource): ByteSource {
  return source instanceof Uint8Array ? bytesSource(source) : source;
}

/** Fills `target` from `position`; a short read means the file shrank under us: truncation. */
async function readExactly(
  source: ByteSource,
  target: Uint8Array,
  position: number,
  what: string,
  file?: string,
  tensor?: string,
): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const n = await source.read(target.subarray(done), position + done);
    if (!Number.isInteger(n) || n <= 0) {
      throw new FormatError(`file ends at byte ${position + done} while reading ${what}: it is truncated`, {
        file,
        tensor,
        offset: position + done,
      });
    }
    done += n;
  }
}

/** Checksum, header, table and file-length checks once the metadata bytes are in hand. */
function finishHeader(p: Preamble, preamble: Uint8Array, meta: Uint8Array, size: number, file?: string): CheckpointInfo {
  const metaEnd = PREAMBLE_SIZE + meta.length;
  const computed = new XxHash32().update(preamble.subarray(0, PREAMBLE.metaChecksum)).update(meta).digest();
  if (computed !== p.metaChecksum) {
    throw new FormatError(
      `header checksum mismatch: stored ${formatChecksum(p.metaChecksum)}, computed ${formatChecksum(computed)} ` +
        `over bytes [0, ${metaEnd}) (preamble, JSON header, tensor table); the file is corrupt: re-download or re-quantize it`,
      { file, offset: PREAMBLE.metaChecksum },
    );
  }
  const header = decodeHeader(meta.subarray(0, p.headerLength), file, PREAMBLE_SIZE);
  const tensors = decodeTable(meta.subarray(p.headerLength), {
    tableOffset: PREAMBLE_SIZE + p.headerLength,
    tensorCount: p.tensorCount,
    dataOffset: p.dataOffset,
    fileLength: p.fileLength,
    file,
    version: p.version,
  });
  const dataEnd = tensors.reduce((end, t) => Math.max(end, t.offset + t.byteLength), p.dataOffset);
  if (dataEnd !== p.fileLength) {
    throw new FormatError(`file length field says ${p.fileLength} bytes but the last tensor ends at ${dataEnd}; the file is corrupt`, {
      file,
      offset: PREAMBLE.fileLength,
    });
  }
  if (size < p.fileLength) {
    const cut = [...tensors].sort((a, b) => a.offset - b.offset).find((t) => t.offset + t.byteLength > size);
    throw new FormatError(
      `file is truncated: it ends at byte ${size} of ${p.fileLength}` +
        (cut === undefined ? "" : `, cutting tensor "${cut.name}" [${cut.offset}, ${cut.offset + cut.byteLength})`) +
        `; re-download or re-quantize it`,
      { file, tensor: cut?.name, offset: size },
    );
  }
  if (size > p.fileLength) {
    throw new FormatError(
      `file has ${size - p.fileLength} unexpected bytes after its end at byte ${p.fileLength}; ` +
        `it was appended to or is not a crumb checkpoint`,
      { file, offset: p.fileLength },
    );
  }
  return { version: p.version, flags: p.flags, header, tensors, dataOffset: p.dataOffset, fileLength: p.fileLength };
}

/** Parses and validates an in-memory checkpoint's metadata (tensor data is not checksummed here). */
export function parseCheckpointHeader(bytes: Uint8Array, options: ReadOptions = {}): CheckpointInfo {
  const preamble = bytes.subarray(0, PREAMBLE_SIZE);
  const p = decodePreamble(preamble, bytes.length, options.file);
  const meta = bytes.subarray(PREAMBLE_SIZE, PREAMBLE_SIZE + p.headerLength + p.tableLength);
  return finishHeader(p, preamble, meta, bytes.length, options.file);
}

/**
 * Reads and validates a checkpoint's metadata from bytes or a ByteSource, reading only the
 * preamble, header and table (never the tensor data).
 */
export async function readCheckpointHeader(
  source: Uint8Array | ByteSource,
  options: ReadOptions = {},
): Promise<CheckpointInfo> {
  if (source instanceof Uint8Array) return parseCheckpointHeader(source, options);
  const { file } = options;
  const size = source.size;
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new InvalidArgumentError("source", `byte source size ${size} is not a non-negative integer`);
  }
  const preamble = new Uint8Array(Math.min(PREAMBLE_SIZE, size));
  await readExactly(source, preamble, 0, "the preamble", file);
  const p = decodePreamble(preamble, size, file);
  // decodePreamble checked that both sections fit inside the real file size: no giant allocation.
  const meta = new Uint8Array(p.headerLength + p.tableLength);
  await readExactly(source, meta, PREAMBLE_SIZE, "the JSON header and tensor table", file);
  return finishHeader(p, preamble, meta, size, file);
}

/** The FormatError for a tensor whose data does not hash to its stored checksum. */
export function checksumMismatch(record: TensorRecord, computed: number, file?: string): FormatError {
  return new FormatError(
    `tensor "${record.name}" checksum mismatch: stored ${formatChecksum(record.checksum)}, computed ` +
      `${formatChecksum(computed)} over bytes [${record.offset}, ${record.offset + record.byteLength}); ` +
      `the file is corrupt: re-download or re-quantize it`,
    { file, tensor: record.name, offset: record.offset },
  );
}

/** Throws FormatError unless `bytes` are exactly the tensor's data (length and XXH32). */
export function verifyTensor(record: TensorRecord, bytes: Uint8Array, options: ReadOptions = {}): void {
  if (bytes.length !== record.byteLength) {
    throw new FormatError(`tensor "${record.name}" data is ${bytes.length} bytes, expected ${record.byteLength}`, {
      file: options.file,
      tensor: record.name,
      offset: record.offset,
    });
  }
  const computed = new XxHash32().update(bytes).digest();
  if (computed !== record.checksum) throw checksumMismatch(record, computed, options.file);
}

/**
 * Streams a tensor's data into `target` (e.g. a view of WASM memory) chunk by chunk,
 * hashing as it goes; verifies the checksum at the end unless `verify: false`.
 */
export async function readTensorInto(
  source: Uint8Array | ByteSource,
  record: TensorRecord,
  target: Uint8Array,
  options: TensorReadOptions = {},
): Promise<void> {
  const { file, verify = true, chunkSize = DEFAULT_CHUNK, onProgress } = options;
  if (target.length < record.byteLength) {
    throw new InvalidArgumentError(
      "target",
      `target of ${target.length} bytes cannot hold tensor "${record.name}" (${record.byteLength} bytes)`,
    );
  }
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new InvalidArgumentError("chunkSize", `chunkSize must be a positive integer, got ${chunkSize}`);
  }
  const src = asSource(source);
  const hash = verify ? new XxHash32() : undefined;
  let done = 0;
  while (done < record.byteLength) {
    const chunk = target.subarray(done, Math.min(record.byteLength, done + chunkSize));
    await readExactly(src, chunk, record.offset + done, `tensor "${record.name}"`, file, record.name);
    hash?.update(chunk);
    done += chunk.length;
    onProgress?.(done, record.byteLength);
  }
  if (record.byteLength === 0) onProgress?.(0, 0);
  if (hash !== undefined) {
    const computed = hash.digest();
    if (computed !== record.checksum) throw checksumMismatch(record, computed, file);
  }
}

/** A tensor's data as a new array, verified unless `verify: false`. */
export async function readTensorBytes(
  source: Uint8Array | ByteSource,
  record: TensorRecord,
  options: TensorReadOptions = {},
): Promise<Uint8Array> {
  const out = new Uint8Array(record.byteLength);
  await readTensorInto(source, record, out, options);
  return out;
}

/**
 * Verifies every tensor's checksum, streaming through one scratch buffer.
 * `onProgress` reports bytes verified over the whole data section.
 */
export async function verifyCheckpoint(
  source: Uint8Array | ByteSource,
  info: CheckpointInfo,
  options: Omit<TensorReadOptions, "verify"> = {},
): Promise<void> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK;
  const total = info.tensors.reduce((sum, t) => sum + t.byteLength, 0);
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new InvalidArgumentError("chunkSize", `chunkSize must be a positive integer, got ${chunkSize}`);
  }
  const largest = info.tensors.reduce((max, t) => Math.max(max, t.byteLength), 1);
  const scratch = new Uint8Array(Math.min(chunkSize, largest));
  const src = asSource(source);
  let before = 0;
  for (const record of info.tensors) {
    const hash = new XxHash32();
    for (let done = 0; done < record.byteLength;) {
      const chunk = scratch.subarray(0, Math.min(scratch.length, record.byteLength - done));
      await readExactly(src, chunk, record.offset + done, `tensor "${record.name}"`, options.file, record.name);
      hash.update(chunk);
      done += chunk.length;
      options.onProgress?.(before + done, total);
    }
    const computed = hash.digest();
    if (computed !== record.checksum) throw checksumMismatch(record, computed, options.file);
    before += record.byteLength;
  }
}
