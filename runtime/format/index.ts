/**
 * The crumb checkpoint format (FORMAT.md): the one spec shared by the quantizer (writer)
 * and the runtime loader (reader). Re-exports only, and only I/O-free modules (they run in
 * a browser too); the node:fs helpers (writeCheckpointFile, openCheckpoint) are imported
 * from ./file.ts directly.
 */

export { type Encoding, packedByteLength, validateEncoding } from "./encoding.ts";
export { formatChecksum, xxhash32, XxHash32 } from "./checksum.ts";
export {
  type CheckpointHeader,
  type CheckpointTokenizer,
  FORMAT_VERSION,
  HEADER_KEYS,
  MAGIC,
  PREAMBLE_SIZE,
  TENSOR_ALIGNMENT,
} from "./header.ts";
export { MAX_RANK, type TensorRecord } from "./tensor-table.ts";
export {
  type CheckpointInput,
  type CheckpointPlan,
  type CheckpointSink,
  planCheckpoint,
  serializeCheckpoint,
  type TensorInput,
  writeCheckpoint,
} from "./writer.ts";
export {
  type ByteSource,
  bytesSource,
  type CheckpointInfo,
  parseCheckpointHeader,
  readCheckpointHeader,
  type ReadOptions,
  readTensorBytes,
  readTensorInto,
  type TensorReadOptions,
  verifyCheckpoint,
  verifyTensor,
} from "./reader.ts";
export { type DataReadOptions, dataSectionBytes, readDataSection, type StreamingHash } from "./read-data.ts";
