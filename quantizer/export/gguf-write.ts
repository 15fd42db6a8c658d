/**
 * GGUF v3 writer (ggml/docs/gguf.md): header, typed metadata, tensor infos (dims innermost
 * first), zero-padded aligned data. Tensors are given in PyTorch order and under the names
 * they should carry in the file; F32, F16, BF16, Q8_0 and Q4_0 encodings (ggml-quants.c
 * reference quantisers), or blocks of any ggml type encoded by the caller (`raw`). Used by
 * tests and by the GGUF exporter.
 */

import * as fs from "node:fs";
import { InvalidArgumentError } from "../../runtime/errors.ts";
import { encodeFloat, encodeQ4_0, encodeQ8_0 } from "../../runtime/import/dtypes.ts";
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, ggmlTypeByName, GgufValueType } from "../../runtime/import/gguf-types.ts";

export type GgufWriteDtype = "F32" | "F16" | "BF16" | "Q8_0" | "Q4_0";

/** A metadata value with an explicit GGUF type (arrays: `elementType` for their items). */
export interface TypedGgufValue {
  readonly ggufType: GgufValueType;
  readonly value: unknown;
  readonly elementType?: GgufValueType;
}

export function ggufValue(ggufType: GgufValueType, value: unknown, elementType?: GgufValueType): TypedGgufValue {
  return { ggufType, value, elementType };
}

export interface GgufWriteTensor {
  readonly name: string;
  /** PyTorch order, outermost first. */
  readonly shape: readonly number[];
  /** Values to encode as `dtype`; ignored when `raw` is given. */
  readonly data?: Float32Array | (() => Float32Array);
  readonly dtype?: GgufWriteDtype;
  /** Already-encoded blocks of any ggml type (e.g. Q4_K), written as they are. */
  readonly raw?: { readonly type: string; readonly bytes: Uint8Array };
}

export interface GgufWriteOptions {
  /** Untyped values are inferred: string, bool, integer → UINT32 (INT32 if negative), other number → FLOAT32, bigint → INT64/UINT64. */
  readonly metadata: Iterable<[string, unknown]> | Record<string, unknown>;
  readonly tensors: readonly GgufWriteTensor[];
  readonly alignment?: number;
}

class Builder {
  private buf = new Uint8Array(1024);
  private dv = new DataView(this.buf.buffer);
  length = 0;
  private grow(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.dv = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  u8(v: number): void {
    const at = this.grow(1);
    this.dv.setUint8(at, v);
  }
  i8(v: number): void {
    const at = this.grow(1);
    this.dv.setInt8(at, v);
  }
  u16(v: number): void {
    const at = this.grow(2);
    this.dv.setUint16(at, v, true);
  }
  i16(v: number): void {
    const at = this.grow(2);
    this.dv.setInt16(at, v, true);
  }
  u32(v: number): void {
    const at = this.grow(4);
    this.dv.setUint32(at, v, true);
  }
  i32(v: number): void {
    const at = this.grow(4);
    this.dv.setInt32(at, v, true);
  }
  f32(v: number): void {
    const at = this.grow(4);
    this.dv.setFloat32(at, v, true);
  }
  f64(v: number): void {
    const at = this.grow(8);
    this.dv.setFloat64(at, v, true);
  }
  u64(v: number | bigint): void {
    const at = this.grow(8);
    this.dv.setBigUint64(at, BigInt(v), true);
  }
  i64(v: number | bigint): void {
    const at = this.grow(8);
    this.dv.setBigInt64(at, BigInt(v), true);
  }
  bytes(b: Uint8Array): void {
    const at = this.grow(b.length);
    this.buf.set(b, at);
  }
  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  pad(alignment: number): void {
    const target = Math.ceil(this.length / alignment) * alignment;
    this.grow(target - this.length);
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

function inferType(value: unknown, key: string): GgufValueType {
  if (typeof value === "string") return GgufValueType.STRING;
  if (typeof value === "boolean") return GgufValueType.BOOL;
  if (typeof value === "bigint") return value < 0n ? GgufValueType.INT64 : GgufValueType.UINT64;
  if (typeof value === "number") {
    if (!Number.isInteger(value)) return GgufValueType.FLOAT32;
    if (value >= 0 && value <= 0xffffffff) return GgufValueType.UINT32;
    if (value < 0 && value >= -0x80000000) return GgufValueType.INT32;
    return value < 0 ? GgufValueType.INT64 : GgufValueType.UINT64;
  }
  if (Array.isArray(value)) return GgufValueType.ARRAY;
  throw new InvalidArgumentError("metadata", `GGUF metadata ${key} has a value of type ${typeof value} that GGUF cannot store`);
}

function inferElementType(items: readonly unknown[], key: string): GgufValueType {
  if (items.length === 0) return GgufValueType.INT32;
  if (items.every((v) => typeof v === "number")) {
    return items.every((v) => Number.isInteger(v) && Math.abs(v as number) < 2 ** 31)
      ? GgufValueType.INT32
      : GgufValueType.FLOAT32;
  }
  return inferType(items[0], key);
}

function writeValue(b: Builder, type: GgufValueType, value: unknown, key: string, elementType?: GgufValueType): void {
  const n = value as number;
  switch (type) {
    case GgufValueType.UINT8: return b.u8(n);
    case GgufValueType.INT8: return b.i8(n);
    case GgufValueType.UINT16: return b.u16(n);
    case GgufValueType.INT16: return b.i16(n);
    case GgufValueType.UINT32: return b.u32(n);
    case GgufValueType.INT32: return b.i32(n);
    case GgufValueType.FLOAT32: return b.f32(n);
    case GgufValueType.FLOAT64: return b.f64(n);
    case GgufValueType.UINT64: return b.u64(value as number | bigint);
    case GgufValueType.INT64: return b.i64(value as number | bigint);
    case GgufValueType.BOOL: return b.u8(value ? 1 : 0);
    case GgufValueType.STRING: return b.string(String(value));
    case GgufValueType.ARRAY: {
      const items = value as unknown[];
      const et = elementType ?? inferElementType(items, key);
      b.u32(et);
      b.u64(items.length);
      for (const item of items) writeValue(b, et, item, key);
      return;
    }
  }
}

function encodeTensor(t: GgufWriteTensor): Uint8Array {
  if (t.raw !== undefined) return t.raw.bytes;
  const data = tensorData(t);
  const dtype = t.dtype ?? "F32";
  if (dtype === "Q8_0") return encodeQ8_0(data);
  if (dtype === "Q4_0") return encodeQ4_0(data);
  return encodeFloat(data, dtype);
}

/** The header, metadata and tensor infos, plus each tensor's relative data offset and size. */
function buildHeader(options: GgufWriteOptions): { header: Uint8Array; sizes: number[]; alignment: number } {
  const alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const entries = new Map<string, unknown>(
    Symbol.iterator in options.metadata
      ? (options.metadata as Iterable<[string, unknown]>)
      : Object.entries(options.metadata as Record<string, unknown>),
  );
  if (alignment !== GGUF_DEFAULT_ALIGNMENT && !entries.has("general.alignment")) {
    entries.set("general.alignment", ggufValue(GgufValueType.UINT32, alignment));
  }
  const b = new Builder();
  b.u32(GGUF_MAGIC);
  b.u32(3);
  b.u64(options.tensors.length);
  b.u64(entries.size);
  for (const [key, raw] of entries) {
    const typed = raw !== null && typeof raw === "object" && "ggufType" in raw ? (raw as TypedGgufValue) : undefined;
    const value = typed ? typed.value : raw;
    const type = typed ? typed.ggufType : inferType(value, key);
    b.string(key);
    b.u32(type);
    writeValue(b, type, value, key, typed?.elementType);
  }
  const sizes: number[] = [];
  let offset = 0;
  for (const t of options.tensors) {
    const typeName = t.raw?.type ?? t.dtype ?? "F32";
    const info = ggmlTypeByName(typeName);
    if (info === undefined) throw new InvalidArgumentError("tensors", `tensor ${t.name}: unknown ggml type ${typeName}`);
    const numel = t.shape.reduce((a, c) => a * c, 1);
    const cols = t.shape[t.shape.length - 1] ?? 1;
    if (cols % info.blockSize !== 0) {
      throw new InvalidArgumentError("tensors", `tensor ${t.name}: row length ${cols} is not a multiple of the ${info.name} block size ${info.blockSize}`);
    }
    const size = (numel / info.blockSize) * info.typeSize;
    if (t.raw !== undefined && t.raw.bytes.length !== size) {
      throw new InvalidArgumentError("tensors", `tensor ${t.name}: ${t.raw.bytes.length} bytes of ${typeName}, its shape needs ${size}`);
    }
    b.string(t.name);
    b.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) b.u64(d);
    b.u32(info.id);
    b.u64(offset);
    sizes.push(size);
    offset += Math.ceil(size / alignment) * alignment;
  }
  b.pad(alignment);
  return { header: b.result(), sizes, alignment };
}

/** Encodes a whole GGUF in memory (small models and tests). */
export function encodeGguf(options: GgufWriteOptions): Uint8Array {
  const { header, sizes, alignment } = buildHeader(options);
  const total = header.length + sizes.reduce((a, s) => a + Math.ceil(s / alignment) * alignment, 0);
  const out = new Uint8Array(total);
  out.set(header);
  let pos = header.length;
  options.tensors.forEach((t, i) => {
    out.set(encodeTensor(t), pos);
    pos += Math.ceil(sizes[i]! / alignment) * alignment;
  });
  return out;
}

/** Writes a GGUF file, encoding one tensor at a time. */
export function writeGguf(path: string, options: GgufWriteOptions): void {
  const { header, sizes, alignment } = buildHeader(options);
  const fd = fs.openSync(path, "w");
  try {
    fs.writeSync(fd, header);
    options.tensors.forEach((t, i) => {
      const bytes = encodeTensor(t);
      fs.writeSync(fd, bytes);
      const padding = Math.ceil(sizes[i]! / alignment) * alignment - sizes[i]!;
      if (padding > 0) fs.writeSync(fd, new Uint8Array(padding));
    });
  } finally {
    fs.closeSync(fd);
  }
}

function tensorData(t: GgufWriteTensor): Float32Array {
  if (t.data === undefined) throw new InvalidArgumentError("tensors", `tensor ${t.name} has neither data nor raw blocks`);
  const data = typeof t.data === "function" ? t.data() : t.data;
  const numel = t.shape.reduce((a, c) => a * c, 1);
  if (data.length !== numel) {
    throw new InvalidArgumentError("tensors", `tensor ${t.name}: shape [${t.shape}] holds ${numel} values but data has ${data.length}`);
  }
  return data;
}
