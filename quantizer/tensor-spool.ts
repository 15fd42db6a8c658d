/**
 * Where the quantizer puts packed tensors as it produces them. `createMemorySpool` keeps the
 * bytes (the library default: tests, small models); `createFileSpool` appends them to a
 * temporary data file and keeps only each tensor's place, length and XXH32 (FORMAT.md), so
 * the quantizer's memory does not grow with the model. Tensors are read back on demand: by
 * XQuant, the quality report and the final copy into the checkpoint (output-file.ts).
 */
import { closeSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { CrumbError, FormatError, InvalidArgumentError } from "../runtime/errors.ts";
import { xxhash32 } from "../runtime/format/checksum.ts";
import type { Encoding } from "../runtime/format/encoding.ts";
import type { TensorDescriptor, TensorInput } from "../runtime/format/writer.ts";

/**
 * A stored tensor: a writer descriptor (byteLength, checksum) and a TensorInput whose `bytes`
 * are fetched from the spool on every access (the stored array for a memory spool, a fresh
 * read for a file spool: keep the result in a local, never spread the object).
 */
export interface StoredTensor extends TensorDescriptor, TensorInput {}

export interface TensorSpool {
  /** Where the bytes go: a file path, or "memory". */
  readonly path: string;
  /** Stores packed `bytes` (the caller may drop them afterwards); names are unique. */
  add(name: string, shape: readonly number[], encoding: Encoding, bytes: Uint8Array): StoredTensor;
  /** Fills `target` with tensor `name`'s bytes from byte `at` of that tensor on. */
  readInto(name: string, at: number, target: Uint8Array): void;
  /** Closes and deletes the data file (a file spool); later reads fail. Safe to call twice. */
  dispose(): void;
}

function stored(name: string, shape: readonly number[], encoding: Encoding, bytes: Uint8Array, read: () => Uint8Array): StoredTensor {
  return {
    name,
    shape: [...shape],
    encoding,
    byteLength: bytes.length,
    checksum: xxhash32(bytes),
    get bytes() {
      return read();
    },
  };
}

function duplicate(name: string): never {
  throw new InvalidArgumentError("tensors", `tensor "${name}" was stored twice; every tensor needs a unique name`);
}

function outOfRange(path: string, name: string, at: number, length: number, size: number | undefined): never {
  if (size === undefined) throw new InvalidArgumentError("tensors", `tensor "${name}" is not in the spool ${path}`);
  throw new InvalidArgumentError("tensors", `bytes [${at}, ${at + length}) of tensor "${name}" are outside its ${size} bytes`);
}

/** A spool that keeps every tensor's bytes in memory. */
export function createMemorySpool(): TensorSpool {
  const bytesOf = new Map<string, Uint8Array>();
  const spool: TensorSpool = {
    path: "memory",
    add(name, shape, encoding, bytes) {
      if (bytesOf.has(name)) duplicate(name);
      bytesOf.set(name, bytes);
      return stored(name, shape, encoding, bytes, () => bytesOf.get(name) ?? outOfRange(spool.path, name, 0, 0, undefined));
    },
    readInto(name, at, target) {
      const bytes = bytesOf.get(name);
      if (bytes === undefined || at < 0 || at + target.length > bytes.length) {
        outOfRange(spool.path, name, at, target.length, bytes?.length);
      }
      target.set(bytes.subarray(at, at + target.length));
    },
    dispose() {
      bytesOf.clear();
    },
  };
  return spool;
}

/**
 * A spool appending to a new file at `path` (refuses an existing file); every tensor is
 * written before `add` returns. The caller disposes it, also on error.
 */
export function createFileSpool(path: string): TensorSpool {
  let fd: number | undefined;
  try {
    fd = openSync(path, "wx+", 0o600);
  } catch (cause) {
    throw new CrumbError(
      "io_error",
      `cannot create the temporary data file ${path}: ${(cause as Error).message}; check that the output directory is writable`,
      { cause },
    );
  }
  const places = new Map<string, { offset: number; length: number }>();
  let end = 0;
  const open = (): number => {
    if (fd === undefined) throw new InvalidArgumentError("spool", `the temporary data file ${path} was already deleted`);
    return fd;
  };
  const spool: TensorSpool = {
    path,
    add(name, shape, encoding, bytes) {
      if (places.has(name)) duplicate(name);
      const handle = open();
      for (let done = 0; done < bytes.length;) {
        try {
          done += writeSync(handle, bytes, done, bytes.length - done, end + done);
        } catch (cause) {
          throw new CrumbError("io_error", `cannot write tensor "${name}" to ${path}: ${(cause as Error).message}; free some disk space`, {
            cause,
          });
        }
      }
      places.set(name, { offset: end, length: bytes.length });
      end += bytes.length;
      const byteLength = bytes.length;
      return stored(name, shape, encoding, bytes, () => {
        const out = new Uint8Array(byteLength);
        spool.readInto(name, 0, out);
        return out;
      });
    },
    readInto(name, at, target) {
      const place = places.get(name);
      if (place === undefined || at < 0 || at + target.length > place.length) outOfRange(path, name, at, target.length, place?.length);
      const handle = open();
      for (let done = 0; done < target.length;) {
        const n = readSync(handle, target, done, target.length - done, place.offset + at + done);
        if (n <= 0) {
          throw new FormatError(`temporary data file ends at byte ${place.offset + at + done}: it was truncated`, {
            file: path,
            tensor: name,
            offset: place.offset + at + done,
          });
        }
        done += n;
      }
    },
    dispose() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
      places.clear();
      rmSync(path, { force: true });
    },
  };
  return spool;
}
