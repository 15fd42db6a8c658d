/**
 * Quantises straight to a checkpoint file with bounded memory: packed tensors are spooled to
 * a temporary data file beside the output as they are produced (tensor-spool.ts), then the
 * checkpoint (FORMAT.md: preamble, header, table, 64-byte aligned data) is planned from their
 * sizes and checksums (writer.ts: planCheckpointLayout) and written to `<output>.tmp-<pid>`
 * with the data copied from the spool in fixed-size chunks, each tensor's XXH32 checked on
 * the way, then fsynced and renamed. The bytes equal writeCheckpointFile's for the same input.
 * Both temporary files are removed on success and on error; `quantizeTempPaths` names them
 * for a Ctrl-C handler.
 */
import process from "node:process";
import { FormatError, InvalidArgumentError } from "../runtime/errors.ts";
import { XxHash32 } from "../runtime/format/checksum.ts";
import { checkpointTempPath, writeAll, writeFileAtomically } from "../runtime/format/file.ts";
import type { CheckpointHeader } from "../runtime/format/header.ts";
import { type CheckpointPlan, planCheckpointLayout } from "../runtime/format/writer.ts";
import type { ModelSource } from "../runtime/models/types.ts";
import { quantizeModel, type QuantizeOptions, type QuantizeResult } from "./quantize.ts";
import { createFileSpool, type StoredTensor, type TensorSpool } from "./tensor-spool.ts";

/** Bytes copied per read/write from the spool into the checkpoint by default. */
const CHUNK = 4 << 20;
const ZEROS = new Uint8Array(64);

/** The temporary files a quantisation to `output` creates: the checkpoint in progress and the spool. */
export function quantizeTempPaths(output: string): { readonly checkpoint: string; readonly data: string } {
  return { checkpoint: checkpointTempPath(output), data: `${output}.data-${process.pid}` };
}

/**
 * Quantises `source` into the checkpoint file `output` holding at most one layer's packed
 * tensors in memory; returns the header and report (the tensors live only in the file).
 */
export async function quantizeToFile(
  source: ModelSource,
  output: string,
  options: Omit<QuantizeOptions, "spool"> = {},
): Promise<Omit<QuantizeResult, "tensors">> {
  const spool = createFileSpool(quantizeTempPaths(output).data);
  try {
    const { header, tensors, report } = await quantizeModel(source, { ...options, spool });
    await writeSpooledCheckpoint(output, header, tensors, spool);
    return { header, report };
  } finally {
    spool.dispose();
  }
}

/**
 * Writes the checkpoint of `header` and `tensors` (in file order, bytes in `spool`) to `path`
 * atomically, copying `chunkBytes` (default 4 MiB) at a time; the spool stays open (its
 * owner disposes it). Returns the layout written.
 */
export async function writeSpooledCheckpoint(
  path: string,
  header: CheckpointHeader,
  tensors: readonly StoredTensor[],
  spool: TensorSpool,
  options: { readonly chunkBytes?: number } = {},
): Promise<CheckpointPlan> {
  const chunkBytes = options.chunkBytes ?? CHUNK;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1) {
    throw new InvalidArgumentError("chunkBytes", `chunkBytes must be a positive integer, got ${chunkBytes}`);
  }
  const plan = planCheckpointLayout(header, tensors);
  await writeFileAtomically(path, async (handle) => {
    await writeAll(handle, plan.meta, 0);
    let at = plan.meta.length;
    const pad = async (to: number) => {
      for (; at < to; at += Math.min(ZEROS.length, to - at)) {
        await writeAll(handle, ZEROS.subarray(0, Math.min(ZEROS.length, to - at)), at);
      }
    };
    const chunk = new Uint8Array(Math.min(chunkBytes, tensors.reduce((m, t) => Math.max(m, t.byteLength), 0)));
    for (let i = 0; i < tensors.length; i++) {
      const { offset, byteLength, checksum, name } = plan.records[i];
      await pad(offset);
      const hash = new XxHash32();
      for (let done = 0; done < byteLength; done += chunk.length) {
        const part = chunk.subarray(0, Math.min(chunk.length, byteLength - done));
        spool.readInto(tensors[i].name, done, part);
        hash.update(part);
        await writeAll(handle, part, offset + done);
      }
      at = offset + byteLength;
      if (hash.digest() !== checksum) {
        throw new FormatError(`tensor "${name}" changed in the temporary data file ${spool.path} (XXH32 mismatch); quantise again`, {
          file: spool.path,
          tensor: name,
        });
      }
    }
    await pad(plan.fileLength);
  });
  return plan;
}

