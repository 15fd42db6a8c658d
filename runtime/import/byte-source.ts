/**
 * Bounded little-endian reading for the checkpoint importers. A `ByteSource` is a file
 * (read by slices, never whole) or an in-memory buffer; a `ByteCursor` walks it through a
 * sliding window and checks every length against the bytes that remain *before* it reads
 * or allocates, so a corrupt length field raises a FormatError naming the file and the
 * byte offset instead of a RangeError, a hang or a multi-gigabyte allocation.
 */

import * as fs from "node:fs";
import { FormatError } from "../errors.ts";
import { pathProblem } from "../format/path-problem.ts";

/** Random access to the bytes of one file. */
export interface ByteSource {
  /** Path reported in errors. */
  readonly file: string;
  readonly size: number;
  /** Copies `length` bytes from `offset`; the caller has checked the range. */
  read(offset: number, length: number): Uint8Array;
}

/** A source over a file on disk; each read opens, reads and closes it (no descriptor leaks). */
export function fileSource(path: string): ByteSource {
  const stat = statOrThrow(path);
  if (!stat.isFile()) throw new FormatError("expected a file, found a directory", { file: path });
  const size = stat.size;
  return {
    file: path,
    size,
    read(offset: number, length: number): Uint8Array {
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new FormatError(`read of ${length} bytes runs past the end of the ${size}-byte file`, {
          file: path,
          offset,
        });
      }
      const out = new Uint8Array(length);
      const fd = fs.openSync(path, "r");
      try {
        let done = 0;
        while (done < length) {
          const n = fs.readSync(fd, out, done, length - done, offset + done);
          if (n <= 0) {
            throw new FormatError(`file shrank while reading: got ${done} of ${length} bytes`, {
              file: path,
              offset: offset + done,
            });
          }
          done += n;
        }
      } finally {
        fs.closeSync(fd);
      }
      return out;
    },
  };
}

/** A source over bytes already in memory (tests, small files). */
export function memorySource(bytes: Uint8Array, file: string): ByteSource {
  return {
    file,
    size: bytes.length,
    read(offset: number, length: number): Uint8Array {
      if (offset < 0 || length < 0 || offset + length > bytes.length) {
        throw new FormatError(`read of ${length} bytes runs past the end of the ${bytes.length}-byte buffer`, {
          file,
          offset,
        });
      }
      return bytes.slice(offset, offset + length);
    },
  };
}

/** fs.statSync that turns a missing path into a FormatError naming it. */
export function statOrThrow(path: string): fs.Stats {
  try {
    return fs.statSync(path);
  } catch (cause) {
    throw new FormatError(`${path} ${pathProblem(path) ?? "cannot be opened"}; check the model path`, { file: path, cause });
  }
}

const WINDOW = 1 << 20;

/** Sequential little-endian reader with bounds checks; `tensor` names the tensor being parsed, if any. */
export class ByteCursor {
  pos: number;
  tensor: string | undefined;
  private win: Uint8Array = new Uint8Array(0);
  private winStart = 0;
  private dv = new DataView(this.win.buffer);

  constructor(readonly src: ByteSource, pos = 0, tensor?: string) {
    this.pos = pos;
    this.tensor = tensor;
  }

  get remaining(): number {
    return this.src.size - this.pos;
  }

  /** A FormatError at the current (or given) offset, naming the file and tensor. */
  error(message: string, offset = this.pos): FormatError {
    return new FormatError(message, { file: this.src.file, tensor: this.tensor, offset });
  }

  /** Throws unless `n` more bytes exist; `what` describes them for the message. */
  need(n: number, what: string): void {
    if (!Number.isSafeInteger(n) || n < 0 || n > this.remaining) {
      throw this.error(`${what} needs ${n} bytes but only ${this.remaining} remain; the file is truncated or corrupt`);
    }
  }

  /** Offset into the window of `n` bytes at pos, loading them if needed. */
  private at(n: number, what: string): number {
    this.need(n, what);
    if (this.pos < this.winStart || this.pos + n > this.winStart + this.win.length) {
      const len = Math.min(Math.max(n, WINDOW), this.src.size - this.pos);
      this.win = this.src.read(this.pos, len);
      this.winStart = this.pos;
      this.dv = new DataView(this.win.buffer, this.win.byteOffset, this.win.byteLength);
    }
    const off = this.pos - this.winStart;
    this.pos += n;
    return off;
  }

  u8(what = "uint8"): number {
    const off = this.at(1, what);
    return this.dv.getUint8(off);
  }
  i8(what = "int8"): number {
    const off = this.at(1, what);
    return this.dv.getInt8(off);
  }
  u16(what = "uint16"): number {
    const off = this.at(2, what);
    return this.dv.getUint16(off, true);
  }
  i16(what = "int16"): number {
    const off = this.at(2, what);
    return this.dv.getInt16(off, true);
  }
  u32(what = "uint32"): number {
    const off = this.at(4, what);
    return this.dv.getUint32(off, true);
  }
  i32(what = "int32"): number {
    const off = this.at(4, what);
    return this.dv.getInt32(off, true);
  }
  f32(what = "float32"): number {
    const off = this.at(4, what);
    return this.dv.getFloat32(off, true);
  }
  f64(what = "float64"): number {
    const off = this.at(8, what);
    return this.dv.getFloat64(off, true);
  }
  /** uint64 as a bigint (metadata values keep their full range). */
  u64Big(what = "uint64"): bigint {
    const off = this.at(8, what);
    return this.dv.getBigUint64(off, true);
  }
  i64Big(what = "int64"): bigint {
    const off = this.at(8, what);
    return this.dv.getBigInt64(off, true);
  }
  /** uint64 used as a length or offset: must fit a JS safe integer. */
  u64(what = "uint64"): number {
    const start = this.pos;
    const v = this.u64Big(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.error(`${what} of ${v} is not a plausible size`, start);
    return Number(v);
  }
  bytes(n: number, what = "bytes"): Uint8Array {
    const off = this.at(n, what);
    return this.win.slice(off, off + n);
  }
  skip(n: number, what = "bytes"): void {
    this.need(n, what);
    this.pos += n;
  }
}

/** Reads and bounds-checks a byte range of a source, attributing failures to a tensor. */
export function readRange(src: ByteSource, offset: number, length: number, tensor: string): Uint8Array {
  if (offset < 0 || length < 0 || offset + length > src.size) {
    throw new FormatError(
      `tensor data [${offset}, ${offset + length}) runs past the end of the ${src.size}-byte file`,
      { file: src.file, tensor, offset },
    );
  }
  return src.read(offset, length);
}
