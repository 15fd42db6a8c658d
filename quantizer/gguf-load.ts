/**
 * A GGUF given straight to `generate` / `serve`: the same quantizer path as
 * `quantize model.gguf` without --bits (blocks kept where a crumb encoding holds them, the rest
 * re-quantised at the width their type calls for; recipe.ts, gguf-transcode.ts), run in memory
 * with no file written, no quality report and no XQuant factors (the cache computes those
 * when asked for). Returns the packed tensors and one line saying which encodings were chosen.
 */
import { encodingName } from "../runtime/format/encoding.ts";
import type { CheckpointHeader } from "../runtime/format/header.ts";
import type { Encoding } from "../runtime/format/encoding.ts";
import type { ModelSource } from "../runtime/models/types.ts";
import { formatGgufSummary } from "./gguf-summary.ts";
import { quantizeModel } from "./quantize.ts";

export interface PackedInMemory {
  readonly header: CheckpointHeader;
  readonly tensors: readonly { name: string; shape: readonly number[]; encoding: Encoding; bytes: Uint8Array }[];
  /** What was kept and what re-quantised, for the user (one or two lines). */
  readonly summary: string;
}

/** Quantises a GGUF-imported source in memory the way `quantize` does by default. */
export async function packGgufInMemory(source: ModelSource, options: { threads?: number } = {}): Promise<PackedInMemory> {
  const result = await quantizeModel(source, { report: false, xquant: false, threads: options.threads });
  const counts = new Map<string, number>();
  for (const t of result.tensors) {
    if (t.shape.length !== 2) continue;
    const name = encodingName(t.encoding);
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const encodings = [...counts].map(([name, n]) => `${n} ${name}`).join(", ");
  const gguf = result.report.gguf === undefined ? [] : formatGgufSummary(result.report.gguf).slice(0, 2).map((l) => l.replace(/^GGUF blocks\s+|^\s+/, ""));
  const summary = [`matrices packed in memory as ${encodings}`, ...gguf].join("; ");
  return {
    header: result.header,
    tensors: result.tensors.map((t) => ({ name: t.name, shape: t.shape, encoding: t.encoding, bytes: t.bytes })),
    summary,
  };
}
