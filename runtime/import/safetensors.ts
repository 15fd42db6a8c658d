/**
 * safetensors reader and writer (https://github.com/huggingface/safetensors, format spec in
 * its README): an 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * (`{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}}`, padded with
 * spaces), then the byte buffer; offsets are relative to the start of that buffer.
 * F32, F16, BF16 and F64 tensors are read lazily and returned as fp32.
 */

import * as fs from "node:fs";
import { FormatError } from "../errors.ts";
import type { TensorEntry } from "../models/types.ts";
import { type ByteSource, fileSource, readRange } from "./byte-source.ts";
import { decodeBf16, decodeF16, decodeF32, decodeF64, encodeFloat } from "./dtypes.ts";

/** Bytes per element of the dtypes this reader converts to fp32. */
const ELEMENT_BYTES: Readonly<Record<string, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
const SUPPORTED = Object.keys(ELEMENT_BYTES);
/** The spec caps the header at 100 MB so a reader never allocates more for it. */
const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsTensorInfo {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Absolute byte offset of the first element in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  readonly file: string;
  /** Absolute offset of the byte buffer (8 + N). */
  readonly dataStart: number;
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: readonly SafetensorsTensorInfo[];
}

function shapeOf(value: unknown, name: string, file: string): number[] {
  if (!Array.isArray(value) || !value.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new FormatError(`shape ${JSON.stringify(value)} is not a list of non-negative integers`, {
      file,
      tensor: name,
      offset: 8,
    });
  }
  return value as number[];
}

/**
 * Parses a safetensors header from the first bytes of a file (`bytes` must hold at least
 * 8 + N bytes, or the whole file if shorter) and validates every tensor's range against
 * `fileSize`. Throws FormatError naming the file, tensor and byte offset.
 */
export function readSafetensorsHeader(bytes: Uint8Array, file: string, fileSize = bytes.length): SafetensorsHeader {
  if (bytes.length < 8 || fileSize < 8) {
    throw new FormatError(`file of ${fileSize} bytes is too short for a safetensors header (8 bytes)`, {
      file,
      offset: 0,
    });
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES) || Number(n) + 8 > fileSize) {
    throw new FormatError(
      `header length ${n} runs past the end of the ${fileSize}-byte file (or exceeds ${MAX_HEADER_BYTES}); not a safetensors file or truncated`,
      { file, offset: 0 },
    );
  }
  const headerLen = Number(n);
  if (bytes.length < 8 + headerLen) {
    throw new FormatError(`only ${bytes.length} of ${8 + headerLen} header bytes were supplied`, { file, offset: 8 });
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch (cause) {
    throw new FormatError(`header is not valid UTF-8 JSON: ${(cause as Error).message}`, { file, offset: 8, cause });
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new FormatError("header JSON is not an object", { file, offset: 8 });
  }
  const dataStart = 8 + headerLen;
  const dataSize = fileSize - dataStart;
  let metadata: Record<string, string> = {};
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (info === null || typeof info !== "object") {
      throw new FormatError("tensor entry is not an object", { file, tensor: name, offset: 8 });
    }
    const dtype = String(info.dtype);
    const elementBytes = ELEMENT_BYTES[dtype];
    if (elementBytes === undefined) {
      throw new FormatError(`unsupported dtype ${dtype}; supported: ${SUPPORTED.join(", ")}`, {
        file,
        tensor: name,
        offset: 8,
      });
    }
    const shape = shapeOf(info.shape, name, file);
    const offs = info.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new FormatError(`data_offsets ${JSON.stringify(offs)} is not [begin, end]`, { file, tensor: name, offset: 8 });
    }
    const [begin, end] = offs as [number, number];
    const numel = shape.reduce((a, b) => a * b, 1);
    if (end < begin || end - begin !== numel * elementBytes) {
      throw new FormatError(
        `data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape [${shape}] of ${dtype} needs ${numel * elementBytes}`,
        { file, tensor: name, offset: dataStart + begin },
      );
    }
    if (end > dataSize) {
      throw new FormatError(
        `tensor bytes [${dataStart + begin}, ${dataStart + end}) run past the end of the ${fileSize}-byte file`,
        { file, tensor: name, offset: dataStart + begin },
      );
    }
    tensors.push({ name, dtype, shape, offset: dataStart + begin, byteLength: end - begin });
  }
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    if (sorted[i]!.offset < prev.offset + prev.byteLength) {
      throw new FormatError(`tensor bytes overlap those of ${prev.name}`, {
        file,
        tensor: sorted[i]!.name,
        offset: sorted[i]!.offset,
      });
    }
  }
  return { file, dataStart, metadata, tensors };
}

/** A lazy fp32 view of one tensor of a source. */
export function safetensorsEntry(src: ByteSource, info: SafetensorsTensorInfo): TensorEntry {
  return {
    name: info.name,
    shape: info.shape,
    dtype: info.dtype,
    read(): Float32Array {
      const bytes = readRange(src, info.offset, info.byteLength, info.name);
      const numel = info.shape.reduce((a, b) => a * b, 1);
      switch (info.dtype) {
        case "F32":
          return decodeF32(bytes, numel);
        case "F16":
          return decodeF16(bytes, numel);
        case "BF16":
          return decodeBf16(bytes, numel);
        default:
          return decodeF64(bytes, numel);
      }
    },
  };
}

export interface SafetensorsFile {
  readonly header: SafetensorsHeader;
  readonly tensors: ReadonlyMap<string, TensorEntry>;
}

/** Opens a .safetensors file: parses and validates the header now, reads tensors on demand. */
export function readSafetensors(path: string): SafetensorsFile {
  const src = fileSource(path);
  const head = src.read(0, Math.min(8, src.size));
  let headerBytes = head;
  if (src.size >= 8) {
    const n = new DataView(head.buffer).getBigUint64(0, true);
    if (n <= BigInt(MAX_HEADER_BYTES) && Number(n) + 8 <= src.size) headerBytes = src.read(0, 8 + Number(n));
  }
  const header = readSafetensorsHeader(headerBytes, path, src.size);
  const tensors = new Map<string, TensorEntry>();
  for (const info of header.tensors) tensors.set(info.name, safetensorsEntry(src, info));
  return { header, tensors };
}

export interface WritableTensor {
  name: string;
  shape: readonly number[];
  /** The values, or a function producing them when written (keeps one tensor in memory at a time). */
  data: Float32Array | (() => Float32Array);
  dtype?: "F32" | "F16" | "BF16";
}

const WRITE_BYTES = { F32: 4, F16: 2, BF16: 2 } as const;

/**
 * Writes a safetensors file deterministically: `__metadata__` first, tensors sorted by
 * name and laid out in that order, header padded with spaces so the data starts on an
 * 8-byte boundary. F32 unless a tensor asks for F16 or BF16.
 */
export function writeSafetensors(path: string, tensors: readonly WritableTensor[], metadata?: Record<string, string>): void {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) header["__metadata__"] = metadata;
  let offset = 0;
  for (const t of sorted) {
    if (header[t.name] !== undefined) throw new FormatError("duplicate tensor name", { file: path, tensor: t.name });
    const dtype = t.dtype ?? "F32";
    const size = t.shape.reduce((a, b) => a * b, 1) * WRITE_BYTES[dtype];
    header[t.name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(json.length), true);
  const fd = fs.openSync(path, "w");
  try {
    fs.writeSync(fd, prefix);
    fs.writeSync(fd, json);
    for (const t of sorted) {
      const data = typeof t.data === "function" ? t.data() : t.data;
      const numel = t.shape.reduce((a, b) => a * b, 1);
      if (numel !== data.length) {
        throw new FormatError(`shape [${t.shape}] holds ${numel} values but data has ${data.length}`, {
          file: path,
          tensor: t.name,
        });
      }
      fs.writeSync(fd, encodeFloat(data, t.dtype ?? "F32"));
    }
  } finally {
    fs.closeSync(fd);
  }
}
