/**
 * GGUF reader (ggml/docs/gguf.md, versions 2 and 3): header, metadata key/values of every
 * type (nested arrays included), tensor infos and the aligned data section. Every count and
 * length is checked against the bytes that remain before anything is allocated. Tensor
 * dims are stored innermost first (ne[0] = columns); `shape` gives them in PyTorch order.
 * Tensors of every type in ggml-dequantize.ts dequantise to fp32.
 */

import { FormatError } from "../errors.ts";
import { ByteCursor, type ByteSource, fileSource, readRange } from "./byte-source.ts";
import { dequantizeGgml } from "./ggml-dequantize.ts";
import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  type GgmlTypeInfo,
  ggmlTypeById,
  GgufValueType,
  MIN_VALUE_BYTES,
} from "./gguf-types.ts";

/** A metadata value: numbers (bigint for 64-bit integers beyond 2^53), booleans, strings, plain arrays. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  readonly name: string;
  /** ggml order, innermost first. */
  readonly dims: readonly number[];
  /** PyTorch order, outermost first (dims reversed). */
  readonly shape: readonly number[];
  readonly type: GgmlTypeInfo;
  readonly numel: number;
  /** Absolute byte offset in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

export interface GgufFile {
  readonly file: string;
  readonly version: number;
  readonly metadata: Map<string, GgufValue>;
  /** Value type of each metadata key (arrays: ARRAY). */
  readonly metadataTypes: Map<string, GgufValueType>;
  readonly tensorInfos: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** Absolute offset of the tensor data section. */
  readonly dataStart: number;
  readonly source: ByteSource;
}

const MAX_DIMS = 4;
const MAX_NESTING = 8;

function readString(c: ByteCursor, what: string): string {
  const start = c.pos;
  const len = c.u64(`${what} length`);
  if (len > c.remaining) {
    throw c.error(`${what} length ${len} is larger than the ${c.remaining} bytes left in the file`, start);
  }
  return new TextDecoder().decode(c.bytes(len, what));
}

function readValue(c: ByteCursor, type: number, depth: number, what: string): GgufValue {
  switch (type) {
    case GgufValueType.UINT8:
      return c.u8(what);
    case GgufValueType.INT8:
      return c.i8(what);
    case GgufValueType.UINT16:
      return c.u16(what);
    case GgufValueType.INT16:
      return c.i16(what);
    case GgufValueType.UINT32:
      return c.u32(what);
    case GgufValueType.INT32:
      return c.i32(what);
    case GgufValueType.FLOAT32:
      return c.f32(what);
    case GgufValueType.FLOAT64:
      return c.f64(what);
    case GgufValueType.BOOL: {
      const start = c.pos;
      const b = c.u8(what);
      if (b > 1) throw c.error(`${what} bool byte is ${b}, expected 0 or 1`, start);
      return b === 1;
    }
    case GgufValueType.STRING:
      return readString(c, what);
    case GgufValueType.UINT64: {
      const v = c.u64Big(what);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    case GgufValueType.INT64: {
      const v = c.i64Big(what);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
    }
    case GgufValueType.ARRAY: {
      if (depth >= MAX_NESTING) throw c.error(`${what} nests arrays more than ${MAX_NESTING} deep`);
      const typeAt = c.pos;
      const elemType = c.u32(`${what} element type`);
      const minBytes = MIN_VALUE_BYTES[elemType];
      if (minBytes === undefined) throw c.error(`${what} has unknown element type ${elemType}`, typeAt);
      const countAt = c.pos;
      const count = c.u64(`${what} array length`);
      if (count * minBytes > c.remaining) {
        throw c.error(
          `${what} array length ${count} needs at least ${count * minBytes} bytes but only ${c.remaining} remain; the file is truncated or corrupt`,
          countAt,
        );
      }
      const out: GgufValue[] = new Array(count);
      for (let i = 0; i < count; i++) out[i] = readValue(c, elemType, depth + 1, what);
      return out;
    }
    default:
      throw c.error(`${what} has unknown value type ${type}`, c.pos - 4);
  }
}

function readHeader(c: ByteCursor): { version: number; tensorCount: number; kvCount: number } {
  c.tensor = undefined;
  c.need(4, "GGUF magic");
  const magic = c.u32();
  if (magic !== GGUF_MAGIC) {
    throw c.error(`wrong magic 0x${magic.toString(16).padStart(8, "0")}; expected "GGUF" (not a GGUF file)`, 0);
  }
  const version = c.u32("version");
  if (version !== 2 && version !== 3) {
    const hint = version > 0xffff ? " (a big-endian GGUF?)" : version === 1 ? " (GGUF v1: re-convert with a current llama.cpp)" : "";
    throw c.error(`GGUF version ${version} is not supported${hint}; supported: 2, 3`, 4);
  }
  const tensorAt = c.pos;
  const tensorCount = c.u64("tensor count");
  const kvAt = c.pos;
  const kvCount = c.u64("metadata count");
  // A tensor info takes at least 8 + 4 + 8 + 4 + 8 bytes and a key/value at least 8 + 4 + 1.
  if (tensorCount * 32 > c.remaining) throw c.error(`tensor count ${tensorCount} cannot fit in the file`, tensorAt);
  if (kvCount * 13 > c.remaining) throw c.error(`metadata count ${kvCount} cannot fit in the file`, kvAt);
  return { version, tensorCount, kvCount };
}

function readTensorInfo(c: ByteCursor): Omit<GgufTensorInfo, "offset"> & { relOffset: number; infoAt: number } {
  const infoAt = c.pos;
  const name = readString(c, "tensor name");
  c.tensor = name;
  const nDimsAt = c.pos;
  const nDims = c.u32("dimension count");
  if (nDims < 1 || nDims > MAX_DIMS) throw c.error(`tensor has ${nDims} dimensions; GGUF allows 1 to ${MAX_DIMS}`, nDimsAt);
  const dims: number[] = [];
  let numel = 1;
  for (let i = 0; i < nDims; i++) {
    const at = c.pos;
    const d = c.u64("dimension");
    numel *= d;
    if (!Number.isSafeInteger(numel)) throw c.error(`dimensions ${[...dims, d]} hold too many elements`, at);
    dims.push(d);
  }
  const typeAt = c.pos;
  const typeId = c.u32("tensor type");
  const type = ggmlTypeById(typeId);
  if (type === undefined) throw c.error(`unknown ggml tensor type ${typeId}`, typeAt);
  if (dims[0]! % type.blockSize !== 0) {
    throw c.error(`row length ${dims[0]} is not a multiple of the ${type.name} block size ${type.blockSize}`, typeAt);
  }
  const relOffset = c.u64("tensor data offset");
  const byteLength = (numel / type.blockSize) * type.typeSize;
  return { name, dims, shape: [...dims].reverse(), type, numel, byteLength, relOffset, infoAt };
}

/** Parses a GGUF from any byte source; validates every tensor's range against its size. */
export function parseGguf(src: ByteSource): GgufFile {
  const c = new ByteCursor(src, 0);
  const { version, tensorCount, kvCount } = readHeader(c);
  const metadata = new Map<string, GgufValue>();
  const metadataTypes = new Map<string, GgufValueType>();
  c.tensor = undefined;
  for (let i = 0; i < kvCount; i++) {
    const keyAt = c.pos;
    const key = readString(c, "metadata key");
    if (metadata.has(key)) throw c.error(`duplicate metadata key ${key}`, keyAt);
    const type = c.u32(`type of ${key}`);
    metadata.set(key, readValue(c, type, 0, `metadata ${key}`));
    metadataTypes.set(key, type);
  }
  const alignment = metadata.get("general.alignment") ?? GGUF_DEFAULT_ALIGNMENT;
  if (typeof alignment !== "number" || alignment < 1 || (alignment & (alignment - 1)) !== 0) {
    throw c.error(`general.alignment ${String(alignment)} is not a power of two`);
  }
  const raw: ReturnType<typeof readTensorInfo>[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    c.tensor = undefined;
    const info = readTensorInfo(c);
    if (names.has(info.name)) throw c.error("duplicate tensor name", info.infoAt);
    names.add(info.name);
    raw.push(info);
  }
  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  const tensorInfos: GgufTensorInfo[] = raw.map(({ relOffset, infoAt, ...info }) => {
    const offset = dataStart + relOffset;
    const where = { file: src.file, tensor: info.name, offset };
    if (relOffset % alignment !== 0) {
      throw new FormatError(`data offset ${relOffset} is not a multiple of the alignment ${alignment}`, where);
    }
    if (offset + info.byteLength > src.size) {
      throw new FormatError(
        `tensor data [${offset}, ${offset + info.byteLength}) runs past the end of the ${src.size}-byte file (info at ${infoAt})`,
        where,
      );
    }
    return { ...info, offset };
  });
  return { file: src.file, version, metadata, metadataTypes, tensorInfos, alignment, dataStart, source: src };
}

/** Reads a .gguf file's header, metadata and tensor infos (tensor data stays on disk). */
export function readGguf(path: string): GgufFile {
  return parseGguf(fileSource(path));
}

/** The stored bytes of one tensor (its blocks, in ggml order). */
export function readGgufTensorBytes(gguf: GgufFile, info: GgufTensorInfo): Uint8Array {
  return readRange(gguf.source, info.offset, info.byteLength, info.name);
}

/** Dequantises one tensor to fp32 in its stored row order (dims reversed = PyTorch order). */
export function readGgufTensor(gguf: GgufFile, info: GgufTensorInfo): Float32Array {
  const what = `tensor ${info.name} in ${gguf.file}`;
  return dequantizeGgml(info.type.name, readGgufTensorBytes(gguf, info), info.numel, what);
}
