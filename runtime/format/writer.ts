/**
 * Serialises a crumb checkpoint (FORMAT.md): validates the input, lays the tensors out
 * 64-byte aligned in the order given, checksums them (XXH32) and streams preamble, JSON
 * header, tensor table, padding and data to a sink. Deterministic: the same input gives a
 * byte-identical file (no timestamps, fixed header key order, canonical encoding JSON).
 * `planCheckpointLayout` plans the same file from sizes and checksums alone, for bytes
 * spooled elsewhere. No I/O here; file.ts adds the temp-file-and-rename helper.
 */

import { InvalidArgumentError } from "../errors.ts";
import { type Encoding, packedByteLength, validateEncoding } from "./encoding.ts";
import { xxhash32, XxHash32 } from "./checksum.ts";
import {
  alignUp,
  type CheckpointHeader,
  encodeHeader,
  encodePreamble,
  FORMAT_VERSION,
  PREAMBLE,
  PREAMBLE_SIZE,
} from "./header.ts";
import { encodeTable, MAX_RANK, type TensorRecord } from "./tensor-table.ts";

/** One tensor to store: `bytes` are already in the encoding's native (kernel) layout. */
export interface TensorInput {
  readonly name: string;
  readonly shape: readonly number[];
  readonly encoding: Encoding;
  readonly bytes: Uint8Array;
}

/**
 * A tensor whose packed bytes live elsewhere (e.g. a spool file): its size and XXH32 stand in
 * for the bytes, so a file can be planned without holding every tensor in memory.
 */
export interface TensorDescriptor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly encoding: Encoding;
  readonly byteLength: number;
  readonly checksum: number;
}

export interface CheckpointInput {
  readonly header: CheckpointHeader;
  readonly tensors: readonly TensorInput[];
}

/** Where the writer sends bytes, in file order. `write` may be async; the writer awaits it. */
export interface CheckpointSink {
  write(chunk: Uint8Array): void | Promise<void>;
}

/** The validated layout of a checkpoint: everything before the data, and where each tensor goes. */
export interface CheckpointPlan {
  /** Preamble + JSON header + tensor table, checksum filled in. */
  readonly meta: Uint8Array;
  readonly dataOffset: number;
  readonly fileLength: number;
  /** Table records in input order (same order as `input.tensors`). */
  readonly records: readonly TensorRecord[];
}

const ZEROS = new Uint8Array(64);

/** Validates one tensor (bytes or a descriptor, per `form`); returns its canonical encoding. */
function checkTensor(t: TensorInput | TensorDescriptor, index: number, names: Set<string>, form: "bytes" | "descriptor"): Encoding {
  const label = typeof t?.name === "string" ? `tensor "${t.name}"` : `tensor #${index}`;
  const bad = (message: string): never => {
    throw new InvalidArgumentError("tensors", `${label}: ${message}`);
  };
  if (typeof t !== "object" || t === null) {
    bad(form === "bytes" ? "must be an object {name, shape, encoding, bytes}" : "must be an object {name, shape, encoding, byteLength, checksum}");
  }
  if (typeof t.name !== "string" || t.name.length === 0) bad("name must be a non-empty string");
  if (new TextEncoder().encode(t.name).length > 0xffff) bad("name is longer than 65535 UTF-8 bytes");
  if (names.has(t.name)) bad("duplicate tensor name; every tensor needs a unique name");
  names.add(t.name);
  if (!Array.isArray(t.shape) || t.shape.length > MAX_RANK) bad(`shape must be an array of at most ${MAX_RANK} dimensions`);
  for (const dim of t.shape) {
    if (!Number.isInteger(dim) || dim < 0 || dim > 0xffffffff) bad(`dimension ${dim} of shape [${t.shape}] is not a u32`);
  }
  let encoding: Encoding;
  try {
    encoding = validateEncoding(t.encoding);
  } catch (cause) {
    throw new InvalidArgumentError("tensors", `${label}: ${(cause as Error).message}`, { cause });
  }
  let expected: number;
  try {
    expected = packedByteLength(encoding, t.shape);
  } catch (cause) {
    throw new InvalidArgumentError("tensors", `${label}: ${(cause as Error).message}`, { cause });
  }
  let held: number;
  if (form === "bytes") {
    const bytes = (t as TensorInput).bytes;
    if (!(bytes instanceof Uint8Array)) bad("bytes must be a Uint8Array");
    held = bytes.length;
  } else {
    const { byteLength, checksum } = t as TensorDescriptor;
    if (!Number.isSafeInteger(byteLength) || byteLength < 0) bad(`byteLength ${byteLength} is not a byte count`);
    if (!Number.isInteger(checksum) || checksum < 0 || checksum > 0xffffffff) bad(`checksum ${checksum} is not a u32 XXH32`);
    held = byteLength;
  }
  if (held !== expected) {
    bad(
      `holds ${held} bytes, but shape [${t.shape.join(", ")}] in encoding ${JSON.stringify(encoding)} ` +
        `packs to ${expected}; pack it with the matching runtime/format/pack-* function`,
    );
  }
  return encoding;
}

function checkList(tensors: unknown): void {
  if (!Array.isArray(tensors)) throw new InvalidArgumentError("tensors", "checkpoint tensors must be an array");
  if (tensors.length > 0xffffffff) throw new InvalidArgumentError("tensors", "more than 2^32-1 tensors");
}

/** Validates the input and computes the layout and every checksum; throws InvalidArgumentError on bad input. */
export function planCheckpoint(input: CheckpointInput): CheckpointPlan {
  checkList(input?.tensors);
  const names = new Set<string>();
  const encodings = input.tensors.map((t, i) => checkTensor(t, i, names, "bytes"));
  return layOut(input.header, input.tensors.map((t, i) => ({
    name: t.name,
    shape: t.shape,
    encoding: encodings[i],
    byteLength: t.bytes.length,
    checksum: xxhash32(t.bytes),
  })));
}

/**
 * The same layout from descriptors (sizes and checksums of bytes kept elsewhere); the data
 * must then be written in table order at `records[i].offset` (quantizer/output-file.ts).
 */
export function planCheckpointLayout(header: CheckpointHeader, tensors: readonly TensorDescriptor[]): CheckpointPlan {
  checkList(tensors);
  const names = new Set<string>();
  const encodings = tensors.map((t, i) => checkTensor(t, i, names, "descriptor"));
  // Fields picked one by one: a descriptor may carry more (e.g. a lazy `bytes` getter).
  return layOut(header, tensors.map((t, i) => ({
    name: t.name,
    shape: t.shape,
    encoding: encodings[i],
    byteLength: t.byteLength,
    checksum: t.checksum,
  })));
}

function layOut(headerValue: CheckpointHeader, tensors: readonly TensorDescriptor[]): CheckpointPlan {
  const header = encodeHeader(headerValue);
  // The table's size does not depend on offsets (fixed-width fields), so encode it once with
  // placeholder offsets to learn where the data section starts, then again for real.
  const draft = tensors.map((t) => ({
    name: t.name,
    shape: [...t.shape],
    encoding: t.encoding,
    offset: 0,
    byteLength: t.byteLength,
    checksum: 0,
  }));
  const tableLength = encodeTable(draft).length;
  const dataOffset = alignUp(PREAMBLE_SIZE + header.length + tableLength);
  let cursor = dataOffset;
  const records: TensorRecord[] = draft.map((r, i) => {
    const offset = alignUp(cursor);
    cursor = offset + r.byteLength;
    return { ...r, offset, checksum: tensors[i].checksum };
  });
  const fileLength = cursor;
  if (!Number.isSafeInteger(fileLength)) throw new InvalidArgumentError("tensors", `checkpoint would be ${fileLength} bytes`);
  const table = encodeTable(records);
  const preamble = encodePreamble({
    version: FORMAT_VERSION,
    flags: 0,
    headerLength: header.length,
    tableLength: table.length,
    dataOffset,
    fileLength,
    tensorCount: records.length,
    metaChecksum: 0,
  });
  const meta = new Uint8Array(PREAMBLE_SIZE + header.length + table.length);
  meta.set(preamble, 0);
  meta.set(header, PREAMBLE_SIZE);
  meta.set(table, PREAMBLE_SIZE + header.length);
  const checksum = new XxHash32()
    .update(meta.subarray(0, PREAMBLE.metaChecksum))
    .update(meta.subarray(PREAMBLE_SIZE))
    .digest();
  new DataView(meta.buffer).setUint32(PREAMBLE.metaChecksum, checksum, true);
  return { meta, dataOffset, fileLength, records };
}

/** The file's bytes in order, as chunks (tensor data is yielded as the caller's own arrays). */
export function* checkpointChunks(plan: CheckpointPlan, input: CheckpointInput): Generator<Uint8Array> {
  yield plan.meta;
  let at = plan.meta.length;
  for (let i = 0; i < plan.records.length; i++) {
    const record = plan.records[i];
    while (at < record.offset) {
      const pad = Math.min(record.offset - at, ZEROS.length);
      yield ZEROS.subarray(0, pad);
      at += pad;
    }
    yield input.tensors[i].bytes;
    at += record.byteLength;
  }
  while (at < plan.fileLength) {
    const pad = Math.min(plan.fileLength - at, ZEROS.length);
    yield ZEROS.subarray(0, pad);
    at += pad;
  }
}

/** Streams a checkpoint to `sink`; returns the layout written. */
export async function writeCheckpoint(sink: CheckpointSink, input: CheckpointInput): Promise<CheckpointPlan> {
  const plan = planCheckpoint(input);
  for (const chunk of checkpointChunks(plan, input)) await sink.write(chunk);
  return plan;
}

/** The whole checkpoint in memory (tests, small models, the browser). */
export function serializeCheckpoint(input: CheckpointInput): Uint8Array {
  const plan = planCheckpoint(input);
  const out = new Uint8Array(plan.fileLength);
  let at = 0;
  for (const chunk of checkpointChunks(plan, input)) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}
