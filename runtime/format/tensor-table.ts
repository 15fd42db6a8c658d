/**
 * The binary tensor table of a crumb checkpoint: one variable-length little-endian record
 * per tensor (name, shape, encoding descriptor, absolute data offset, byte length, XXH32
 * checksum). Decoding validates every record against the file layout before anything
 * uses it: alignment, bounds, overlaps, known encodings and the packed byte length.
 */

import { FormatError } from "../errors.ts";
import { type Encoding, packedByteLength, validateEncoding } from "./encoding.ts";
import { FORMAT_VERSION } from "./header.ts";
import { TENSOR_ALIGNMENT } from "./header.ts";

/** Highest tensor rank the table stores. */
export const MAX_RANK = 8;
/** Smallest possible record: u16 name length + 1-byte name, u8 rank, u16 encoding length + 2 bytes, u64 + u64 + u32. */
export const MIN_RECORD_SIZE = 2 + 1 + 1 + 2 + 2 + 8 + 8 + 4;

/** One tensor as the table describes it. */
export interface TensorRecord {
  readonly name: string;
  /** Row-major shape, outermost first (PyTorch order). */
  readonly shape: readonly number[];
  readonly encoding: Encoding;
  /** Absolute file offset of the first data byte; a multiple of 64. */
  readonly offset: number;
  readonly byteLength: number;
  /** XXH32 (seed 0) of the tensor's data bytes. */
  readonly checksum: number;
}

/** Encoding descriptor as canonical JSON: keys sorted, no whitespace. */
export function encodeEncoding(encoding: Encoding): string {
  const source = encoding as unknown as Record<string, unknown>;
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(source).sort()) sorted[key] = source[key];
  return JSON.stringify(sorted);
}

function encodedRecordSize(nameBytes: Uint8Array, rank: number, encodingBytes: Uint8Array): number {
  return 2 + nameBytes.length + 1 + 4 * rank + 2 + encodingBytes.length + 8 + 8 + 4;
}

/** Serialises records (already validated by the writer) in the given order. */
export function encodeTable(records: readonly TensorRecord[]): Uint8Array {
  const encoder = new TextEncoder();
  const parts = records.map((r) => ({
    record: r,
    name: encoder.encode(r.name),
    encoding: encoder.encode(encodeEncoding(r.encoding)),
  }));
  const size = parts.reduce((sum, p) => sum + encodedRecordSize(p.name, p.record.shape.length, p.encoding), 0);
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  let at = 0;
  for (const { record, name, encoding } of parts) {
    view.setUint16(at, name.length, true);
    bytes.set(name, at + 2);
    at += 2 + name.length;
    view.setUint8(at, record.shape.length);
    at += 1;
    for (const dim of record.shape) {
      view.setUint32(at, dim, true);
      at += 4;
    }
    view.setUint16(at, encoding.length, true);
    bytes.set(encoding, at + 2);
    at += 2 + encoding.length;
    view.setBigUint64(at, BigInt(record.offset), true);
    view.setBigUint64(at + 8, BigInt(record.byteLength), true);
    view.setUint32(at + 16, record.checksum, true);
    at += 20;
  }
  return bytes;
}

export interface TableContext {
  /** Absolute file offset of the table's first byte (for error messages). */
  tableOffset: number;
  tensorCount: number;
  dataOffset: number;
  fileLength: number;
  file?: string;
  /** The file's format version (version 1 files hold the old LUT layout). */
  version?: number;
}

/** Decodes and validates the table; every error names the absolute offset and, once known, the tensor. */
export function decodeTable(bytes: Uint8Array, ctx: TableContext): TensorRecord[] {
  const { tableOffset, tensorCount, file } = ctx;
  if (tensorCount * MIN_RECORD_SIZE > bytes.length) {
    throw new FormatError(
      `tensor table of ${bytes.length} bytes cannot hold ${tensorCount} tensors (at least ${MIN_RECORD_SIZE} bytes each); ` +
        `the file is corrupt`,
      { file, offset: tableOffset },
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const records: TensorRecord[] = [];
  const names = new Set<string>();
  let at = 0;
  for (let index = 0; index < tensorCount; index++) {
    let tensor: string | undefined;
    const fail = (message: string, relative = at): never => {
      throw new FormatError(`tensor table record ${index}: ${message}`, {
        file,
        tensor,
        offset: tableOffset + relative,
      });
    };
    const need = (n: number, what: string): void => {
      if (at + n > bytes.length) fail(`runs past the end of the table while reading ${what}; the file is corrupt`);
    };
    need(2, "the name length");
    const nameLength = view.getUint16(at, true);
    need(2 + nameLength, "the name");
    if (nameLength === 0) fail("empty tensor name");
    try {
      tensor = decoder.decode(bytes.subarray(at + 2, at + 2 + nameLength));
    } catch (cause) {
      fail(`tensor name is not valid UTF-8 (${cause})`);
    }
    const name = tensor as string;
    if (names.has(name)) fail(`duplicate tensor name "${name}"`);
    names.add(name);
    at += 2 + nameLength;

    need(1, "the rank");
    const rank = view.getUint8(at);
    if (rank > MAX_RANK) fail(`rank ${rank} exceeds the maximum of ${MAX_RANK}`);
    need(1 + 4 * rank, "the shape");
    const shape: number[] = [];
    for (let d = 0; d < rank; d++) shape.push(view.getUint32(at + 1 + 4 * d, true));
    at += 1 + 4 * rank;

    need(2, "the encoding length");
    const encodingLength = view.getUint16(at, true);
    need(2 + encodingLength, "the encoding");
    const encodingAt = at;
    let encodingText = "";
    let encoding: Encoding | undefined;
    try {
      encodingText = decoder.decode(bytes.subarray(at + 2, at + 2 + encodingLength));
      encoding = validateEncoding(JSON.parse(encodingText));
    } catch (cause) {
      throw new FormatError(
        `tensor "${name}" has an unknown or invalid encoding ${encodingText === "" ? "(unreadable)" : encodingText}: ` +
          `${cause instanceof Error ? cause.message : String(cause)}; upgrade crumb or re-quantize the model`,
        { file, tensor: name, offset: tableOffset + encodingAt, cause },
      );
    }
    if ((ctx.version ?? FORMAT_VERSION) < 2 && (encoding!.kind === "bitplane" || encoding!.kind === "ternary")) {
      throw new FormatError(
        `tensor "${name}" is packed in the version-1 LUT layout (written by crumb 0.1), which this crumb no longer runs; ` +
          `re-quantize the model from its source checkpoint (crumb quantize <source> -o <file>)`,
        { file, tensor: name, offset: tableOffset + encodingAt },
      );
    }
    at += 2 + encodingLength;

    need(20, "the offset, byte length and checksum");
    const fieldsAt = at;
    const offset64 = view.getBigUint64(at, true);
    const length64 = view.getBigUint64(at + 8, true);
    const checksum = view.getUint32(at + 16, true);
    at += 20;
    if (offset64 + length64 > BigInt(ctx.fileLength)) {
      fail(
        `data [${offset64}, ${offset64 + length64}) runs past the end of the file (${ctx.fileLength} bytes)`,
        fieldsAt,
      );
    }
    const offset = Number(offset64);
    const byteLength = Number(length64);
    if (offset % TENSOR_ALIGNMENT !== 0) {
      fail(`data offset ${offset} is not ${TENSOR_ALIGNMENT}-byte aligned; the file is corrupt`, fieldsAt);
    }
    if (offset < ctx.dataOffset) {
      fail(`data offset ${offset} lies before the data section (${ctx.dataOffset}); the file is corrupt`, fieldsAt);
    }
    let expected: number;
    try {
      expected = packedByteLength(encoding as Encoding, shape);
    } catch (cause) {
      throw new FormatError(
        `shape [${shape.join(", ")}] is invalid for encoding ${encodingText} (${(cause as Error).message})`,
        { file, tensor: name, offset: tableOffset + encodingAt, cause },
      );
    }
    if (byteLength !== expected) {
      fail(
        `byte length ${byteLength} does not match shape [${shape.join(", ")}] in encoding ${encodingText} ` +
          `(${expected} bytes); the file is corrupt`,
        fieldsAt + 8,
      );
    }
    records.push({ name, shape, encoding: encoding as Encoding, offset, byteLength, checksum });
  }
  if (at !== bytes.length) {
    throw new FormatError(
      `tensor table has ${bytes.length - at} bytes after its ${tensorCount} records; the file is corrupt`,
      { file, offset: tableOffset + at },
    );
  }
  checkOverlaps(records, file);
  return records;
}

/** Tensors may appear in any order in the table, but their data ranges must not overlap. */
function checkOverlaps(records: readonly TensorRecord[], file?: string): void {
  const byOffset = [...records].sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1];
    const cur = byOffset[i];
    if (cur.offset < prev.offset + prev.byteLength) {
      throw new FormatError(
        `data of tensor "${cur.name}" at [${cur.offset}, ${cur.offset + cur.byteLength}) overlaps tensor ` +
          `"${prev.name}" at [${prev.offset}, ${prev.offset + prev.byteLength}); the file is corrupt`,
        { file, tensor: cur.name, offset: cur.offset },
      );
    }
  }
}
