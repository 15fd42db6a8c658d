/**
 * Streaming GGUF v3 writer for already-encoded tensor data (ggml/docs/gguf.md): the header
 * (typed metadata, tensor infos with dims innermost first and data offsets) is computed from
 * shapes and types alone and written first; each tensor's bytes are then produced and
 * appended one at a time, so a 1B-parameter export never holds more than one tensor.
 * ./gguf-write.ts covers the fp32-input types; this one takes any ggml type
 * whose bytes the caller encodes (Q2_K, TQ2_0, ...).
 */
import { closeSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import process from "node:process";
import { InvalidArgumentError } from "../../runtime/errors.ts";
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, ggmlTypeByName, GgufValueType } from "../../runtime/import/gguf-types.ts";

export interface GgufMeta {
  readonly type: GgufValueType;
  readonly value: unknown;
  /** Arrays only: the type of every item. */
  readonly elementType?: GgufValueType;
}

export interface GgufStreamTensor {
  /** GGUF tensor name (token_embd.weight, blk.0.attn_q.weight, ...). */
  readonly name: string;
  /** PyTorch order, outermost first. */
  readonly shape: readonly number[];
  /** ggml type name from gguf-types.ts ("F32", "F16", "Q4_0", "Q2_K", "TQ2_0", ...). */
  readonly type: string;
  /** Produces exactly the tensor's encoded bytes. */
  encode(): Uint8Array;
}

/** A growable little-endian byte buffer for the header (metadata can hold millions of values). */
class Bytes {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private reserve(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  /** Reserves n bytes first: growing replaces the buffer and view, so neither may be read before. */
  private put(n: number, write: (dv: DataView, at: number) => void): void {
    const at = this.reserve(n);
    write(this.view, at);
  }
  u32(v: number): void {
    this.put(4, (dv, at) => dv.setUint32(at, v, true));
  }
  u64(v: number | bigint): void {
    this.put(8, (dv, at) => dv.setBigUint64(at, BigInt(v), true));
  }
  private bytes(b: Uint8Array): void {
    const at = this.reserve(b.length);
    this.buf.set(b, at);
  }
  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  value(type: GgufValueType, v: unknown, elementType?: GgufValueType): void {
    switch (type) {
      case GgufValueType.UINT8: return this.put(1, (dv, at) => dv.setUint8(at, v as number));
      case GgufValueType.INT8: return this.put(1, (dv, at) => dv.setInt8(at, v as number));
      case GgufValueType.UINT16: return this.put(2, (dv, at) => dv.setUint16(at, v as number, true));
      case GgufValueType.INT16: return this.put(2, (dv, at) => dv.setInt16(at, v as number, true));
      case GgufValueType.UINT32: return this.u32(v as number);
      case GgufValueType.INT32: return this.put(4, (dv, at) => dv.setInt32(at, v as number, true));
      case GgufValueType.FLOAT32: return this.put(4, (dv, at) => dv.setFloat32(at, v as number, true));
      case GgufValueType.FLOAT64: return this.put(8, (dv, at) => dv.setFloat64(at, v as number, true));
      case GgufValueType.UINT64: return this.u64(v as number | bigint);
      case GgufValueType.INT64: return this.put(8, (dv, at) => dv.setBigInt64(at, BigInt(v as number), true));
      case GgufValueType.BOOL: return this.put(1, (dv, at) => dv.setUint8(at, v ? 1 : 0));
      case GgufValueType.STRING: return this.string(String(v));
      case GgufValueType.ARRAY: {
        if (elementType === undefined || !Array.isArray(v)) {
          throw new InvalidArgumentError("metadata", "a GGUF array value needs an array and its elementType");
        }
        this.u32(elementType);
        this.u64(v.length);
        for (const item of v) this.value(elementType, item);
        return;
      }
    }
  }
  padTo(alignment: number): void {
    this.reserve((alignment - (this.length % alignment)) % alignment);
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

/** Encoded byte size of a tensor of `shape` in ggml type `type`; throws when rows do not tile. */
export function ggufTensorBytes(name: string, shape: readonly number[], type: string): number {
  const info = ggmlTypeByName(type);
  if (info === undefined) throw new InvalidArgumentError("type", `unknown ggml type "${type}" for tensor ${name}`);
  const cols = shape[shape.length - 1];
  if (cols % info.blockSize !== 0) {
    throw new InvalidArgumentError("type", `tensor ${name}: row length ${cols} is not a multiple of the ${type} block of ${info.blockSize}; pick F16 or Q4_0`);
  }
  return (shape.reduce((a, b) => a * b, 1) / info.blockSize) * info.typeSize;
}

/** Where writeGgufStream writes before renaming to `path` (a CLI removes it on Ctrl-C). */
export function temporaryPath(path: string): string {
  return `${path}.tmp-${process.pid}`;
}

/**
 * Writes `path` (via a temp file and rename). Metadata keys are written in insertion order;
 * general.alignment is added when `alignment` is not the default 32.
 */
export function writeGgufStream(
  path: string,
  metadata: ReadonlyMap<string, GgufMeta>,
  tensors: readonly GgufStreamTensor[],
  alignment = GGUF_DEFAULT_ALIGNMENT,
): void {
  const meta = new Map(metadata);
  if (alignment !== GGUF_DEFAULT_ALIGNMENT) meta.set("general.alignment", { type: GgufValueType.UINT32, value: alignment });
  const head = new Bytes();
  head.u32(GGUF_MAGIC);
  head.u32(3);
  head.u64(tensors.length);
  head.u64(meta.size);
  for (const [key, m] of meta) {
    head.string(key);
    head.u32(m.type);
    head.value(m.type, m.value, m.elementType);
  }
  const sizes = tensors.map((t) => ggufTensorBytes(t.name, t.shape, t.type));
  let offset = 0;
  tensors.forEach((t, i) => {
    head.string(t.name);
    head.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) head.u64(d);
    head.u32(ggmlTypeByName(t.type)!.id);
    head.u64(offset);
    offset += Math.ceil(sizes[i] / alignment) * alignment;
  });
  head.padTo(alignment);

  const temp = temporaryPath(path);
  const fd = openSync(temp, "w");
  let failed = true;
  try {
    writeSync(fd, head.result());
    tensors.forEach((t, i) => {
      const bytes = t.encode();
      if (bytes.length !== sizes[i]) {
        throw new InvalidArgumentError("tensors", `tensor ${t.name}: encoder produced ${bytes.length} bytes, ${t.type} [${t.shape}] needs ${sizes[i]}`);
      }
      writeSync(fd, bytes);
      const pad = Math.ceil(sizes[i] / alignment) * alignment - sizes[i];
      if (pad > 0) writeSync(fd, new Uint8Array(pad));
    });
    failed = false;
  } finally {
    closeSync(fd);
    if (failed) rmSync(temp, { force: true });
  }
  renameSync(temp, path);
}
