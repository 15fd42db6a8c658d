/**
 * Streaming GGUF v3 writer for already-encoded tensor data (ggml/docs/gguf.md): the header
 * (typed metadata, tensor infos with dims innermost first and data offsets) is computed from
 * shapes and types alone and written first; each tensor's bytes are then produced and
 * appended one at a time, so a 1B-parameter export never holds more than one tensor.
 * ./gguf-write.ts covers the fp32-input types; this one takes any ggml type
 * whose bytes the caller encodes (Q2_K, TQ2_0, ...).
 */
import { closeSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
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

class Bytes {
  private parts: Uint8Array[] = [];
  length = 0;
  private push(b: Uint8Array): void {
    this.parts.push(b);
    this.length += b.length;
  }
  private fixed(n: number, set: (dv: DataView) => void): void {
    const b = new Uint8Array(n);
    set(new DataView(b.buffer));
    this.push(b);
  }
  u32(v: number): void {
    this.fixed(4, (dv) => dv.setUint32(0, v, true));
  }
  u64(v: number | bigint): void {
    this.fixed(8, (dv) => dv.setBigUint64(0, BigInt(v), true));
  }
  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.push(b);
  }
  value(type: GgufValueType, v: unknown, elementType?: GgufValueType): void {
    switch (type) {
      case GgufValueType.UINT8: return this.fixed(1, (dv) => dv.setUint8(0, v as number));
      case GgufValueType.INT8: return this.fixed(1, (dv) => dv.setInt8(0, v as number));
      case GgufValueType.UINT16: return this.fixed(2, (dv) => dv.setUint16(0, v as number, true));
      case GgufValueType.INT16: return this.fixed(2, (dv) => dv.setInt16(0, v as number, true));
      case GgufValueType.UINT32: return this.u32(v as number);
      case GgufValueType.INT32: return this.fixed(4, (dv) => dv.setInt32(0, v as number, true));
      case GgufValueType.FLOAT32: return this.fixed(4, (dv) => dv.setFloat32(0, v as number, true));
      case GgufValueType.FLOAT64: return this.fixed(8, (dv) => dv.setFloat64(0, v as number, true));
      case GgufValueType.UINT64: return this.u64(v as number | bigint);
      case GgufValueType.INT64: return this.fixed(8, (dv) => dv.setBigInt64(0, BigInt(v as number), true));
      case GgufValueType.BOOL: return this.fixed(1, (dv) => dv.setUint8(0, v ? 1 : 0));
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
    const pad = (alignment - (this.length % alignment)) % alignment;
    if (pad > 0) this.push(new Uint8Array(pad));
  }
  result(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
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

  const temp = `${path}.tmp-${process.pid}`;
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
