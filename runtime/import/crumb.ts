/**
 * Imports a crumb checkpoint (model.q2, ...) as a ModelSource whose tensors dequantise from
 * the packed bytes on read (format "crumb"): the fp32 reference engine then runs the
 * quantised model exactly as the packed file stores it. Metadata is validated up front;
 * each tensor's bytes are read with positional reads and checked against their XXH32.
 */
import * as fs from "node:fs";
import { FormatError } from "../errors.ts";
import type { Encoding } from "../format/encoding.ts";
import { encodingName } from "../format/encoding.ts";
import type { CheckpointHeader } from "../format/header.ts";
import { dequantize } from "../format/pack-dequantize.ts";
import { type ByteSource, readCheckpointHeader, verifyTensor } from "../format/reader.ts";
import type { ModelSource, TensorEntry } from "../models/types.ts";

/** A packed tensor whose bytes are fetched on demand. */
export interface PackedTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly encoding: Encoding;
  bytes(): Uint8Array;
}

/** (rows, cols) of a stored tensor: 1-D tensors are one row. */
export function matrixDims(shape: readonly number[]): [number, number] {
  return shape.length === 1 ? [1, shape[0]] : [shape[0], shape.slice(1).reduce((a, b) => a * b, 1)];
}

/** A ModelSource over packed tensors and a checkpoint header (files or in-memory results). */
export function packedSource(path: string, header: CheckpointHeader, tensors: readonly PackedTensor[]): ModelSource {
  const map = new Map<string, TensorEntry>();
  for (const t of tensors) {
    const [rows, cols] = matrixDims(t.shape);
    map.set(t.name, {
      name: t.name,
      shape: t.shape,
      dtype: encodingName(t.encoding),
      read: () => dequantize(t.encoding, t.bytes(), rows, cols),
    });
  }
  return {
    path,
    format: "crumb",
    config: header.config,
    tensors: map,
    tokenizer: header.tokenizer ?? undefined,
    chatTemplates: header.chatTemplates,
    generationConfig: header.generationConfig,
    pooling: header.extra.pooling === "last" || header.extra.pooling === "mean" ? header.extra.pooling : undefined,
  };
}

function readAt(path: string, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const fd = fs.openSync(path, "r");
  try {
    let done = 0;
    while (done < length) {
      const n = fs.readSync(fd, out, done, length - done, offset + done);
      if (n <= 0) throw new FormatError(`file ends at byte ${offset + done}: it is truncated`, { file: path, offset: offset + done });
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/** Opens a crumb checkpoint; throws FormatError (naming offset and tensor) when it is damaged. */
export async function importCrumb(path: string): Promise<ModelSource> {
  const size = fs.statSync(path).size;
  const source: ByteSource = {
    size,
    read(target, position) {
      const n = Math.max(0, Math.min(target.length, size - position));
      target.set(readAt(path, position, n));
      return n;
    },
  };
  const info = await readCheckpointHeader(source, { file: path });
  const tensors = info.tensors.map((record): PackedTensor => ({
    name: record.name,
    shape: record.shape,
    encoding: record.encoding,
    bytes() {
      const bytes = readAt(path, record.offset, record.byteLength);
      verifyTensor(record, bytes, { file: path });
      return bytes;
    },
  }));
  return packedSource(path, info.header, tensors);
}
