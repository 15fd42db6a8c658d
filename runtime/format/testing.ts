/**
 * Helpers for the format tests: a seeded sample checkpoint covering every encoding, and
 * `assemble`, which builds a correctly checksummed file from arbitrary (possibly
 * inconsistent) table records, so tests can reach the validations behind the checksum.
 */

import { type Encoding, packedByteLength } from "./encoding.ts";
import { XxHash32, xxhash32 } from "./checksum.ts";
import {
  alignUp,
  type CheckpointHeader,
  encodeHeader,
  encodePreamble,
  FORMAT_VERSION,
  PREAMBLE,
  PREAMBLE_SIZE,
} from "./header.ts";
import { encodeTable, type TensorRecord } from "./tensor-table.ts";
import type { CheckpointInput, TensorInput } from "./writer.ts";

/** mulberry32: a tiny deterministic PRNG for test data. */
export function seededBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let s = seed >>> 0;
  for (let i = 0; i < length; i++) {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out[i] = (t ^ (t >>> 14)) >>> 24;
  }
  return out;
}

export const SAMPLE_HEADER: CheckpointHeader = {
  config: { model_type: "llama", hidden_size: 64, num_hidden_layers: 2, rope_theta: 10000.5, tie_word_embeddings: false },
  tokenizer: {
    tokenizerJson: { version: "1.0", model: { type: "BPE", vocab: { "<s>": 0, "é": 1, "▁the": 2 }, merges: [] } },
    tokenizerConfig: { bos_token: "<s>", eos_token: "</s>", add_bos_token: true },
  },
  chatTemplates: { default: "{% for m in messages %}{{ m.content }}{% endfor %}", tool_use: "{{ tools }}" },
  generationConfig: { eos_token_id: [2, 7], temperature: 0.6 },
  quantization: { method: "rtn", bits: 2, group: 64, calibration: null },
  report: { kld_mean: 0.0123, top1: 0.91, ppl_ratio: 1.07 },
  extra: { xquant: { rank: 16, layers: [0, 1] }, note: "ünïcödé ✓" },
};

const SAMPLE_SPECS: Array<[string, number[], Encoding]> = [
  ["model.embed_tokens.weight", [17, 64], { kind: "f16" }],
  ["model.norm.weight", [64], { kind: "f32" }],
  ["model.layers.0.self_attn.q_proj.weight", [20, 100], { kind: "bitplane", bits: 2, group: 64, scales: "zero-point" }],
  ["model.layers.0.self_attn.k_proj.weight", [16, 64], { kind: "bitplane", bits: 3, group: 32, scales: "per-plane" }],
  ["model.layers.0.mlp.up_proj.weight", [33, 130], { kind: "bitplane", bits: 4, group: 128, scales: "zero-point" }],
  ["model.layers.0.mlp.gate_proj.weight", [16, 32], { kind: "bitplane", bits: 1, group: 32, scales: "per-plane" }],
  ["model.layers.1.mlp.down_proj.weight", [18, 70], { kind: "ternary", group: 64, planes: 1 }],
  ["model.layers.1.mlp.up_proj.weight", [16, 64], { kind: "ternary", group: 32, planes: 2 }],
  ["lm_head.weight", [5, 40], { kind: "q8", group: 32 }],
];

/** A checkpoint input with one tensor per encoding family, filled with seeded bytes. */
export function sampleInput(seed = 1): CheckpointInput {
  const tensors: TensorInput[] = SAMPLE_SPECS.map(([name, shape, encoding], i) => ({
    name,
    shape,
    encoding,
    bytes: seededBytes(packedByteLength(encoding, shape), seed * 1000 + i),
  }));
  return { header: SAMPLE_HEADER, tensors };
}

export interface AssembleOptions {
  header?: CheckpointHeader;
  /** Replaces the encoded JSON header bytes. */
  headerBytes?: Uint8Array;
  /** Records as they should appear in the table; `checksum` is computed when `payloads` has the tensor. */
  records: Array<Omit<TensorRecord, "checksum" | "encoding"> & { encoding: unknown; checksum?: number }>;
  /** Data per tensor name, placed at the record's offset. */
  payloads?: Record<string, Uint8Array>;
  version?: number;
  /** Overrides the file length field (default: end of the last payload). */
  fileLength?: number;
}

/** Builds a checkpoint whose preamble and meta checksum are valid, whatever the records say. */
export function assemble(options: AssembleOptions): Uint8Array {
  const header = options.headerBytes ?? encodeHeader(options.header ?? SAMPLE_HEADER);
  const payloads = options.payloads ?? {};
  const records = options.records.map((r) => ({
    ...r,
    encoding: r.encoding as Encoding,
    checksum: r.checksum ?? (payloads[r.name] ? xxhash32(payloads[r.name]) : 0),
  }));
  const table = encodeTable(records);
  const dataOffset = alignUp(PREAMBLE_SIZE + header.length + table.length);
  const dataEnd = records.reduce((end, r) => Math.max(end, r.offset + r.byteLength), dataOffset);
  const fileLength = options.fileLength ?? dataEnd;
  const file = new Uint8Array(Math.max(fileLength, dataEnd));
  file.set(
    encodePreamble({
      version: options.version ?? FORMAT_VERSION,
      flags: 0,
      headerLength: header.length,
      tableLength: table.length,
      dataOffset,
      fileLength,
      tensorCount: records.length,
      metaChecksum: 0,
    }),
  );
  file.set(header, PREAMBLE_SIZE);
  file.set(table, PREAMBLE_SIZE + header.length);
  for (const r of records) {
    const data = payloads[r.name];
    if (data !== undefined) file.set(data.subarray(0, Math.max(0, file.length - r.offset)), r.offset);
  }
  resign(file, header.length + table.length);
  return file.subarray(0, fileLength);
}

/** Recomputes the meta checksum of `file` in place (metaLength = header + table bytes). */
export function resign(file: Uint8Array, metaLength: number): void {
  const sum = new XxHash32()
    .update(file.subarray(0, PREAMBLE.metaChecksum))
    .update(file.subarray(PREAMBLE_SIZE, PREAMBLE_SIZE + metaLength))
    .digest();
  new DataView(file.buffer, file.byteOffset).setUint32(PREAMBLE.metaChecksum, sum, true);
}
