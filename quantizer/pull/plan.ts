/**
 * Which files a pull fetches, from a repository listing and what the user typed
 * (spec.ts): one file named by a Hub URL; the GGUF a quant tag names (select-gguf.ts);
 * the files `--include` globs match (select-include.ts); or, for a Transformers repository,
 * what crumb needs (select.ts). A repository of GGUFs pulled without a tag gets
 * llama.cpp's default tag, Q4_K_M, when it has one. `primary` is the file to run.
 */
import { InvalidArgumentError } from "../../runtime/errors.ts";
import { HubError } from "./errors.ts";
import type { RemoteFile } from "./hub-api.ts";
import { safeSegments } from "./names.ts";
import { selectFiles } from "./select.ts";
import { availableQuants, DEFAULT_QUANT, ggufCandidates, selectGguf } from "./select-gguf.ts";
import { selectIncluded } from "./select-include.ts";
import type { PullSpec } from "./spec.ts";

export interface PullPlan {
  /** Files to fetch before the index is read (all of them when there is no index). */
  readonly files: RemoteFile[];
  /** model.safetensors.index.json, whose shards are added once it is downloaded. */
  readonly index?: RemoteFile;
  /** The model file to hand to generate/quantize/llama.cpp (a GGUF or a llama2.c .bin). */
  readonly primary?: string;
  readonly notes: string[];
}

function describeGguf(files: readonly RemoteFile[], primary: string, why: string): string {
  const parts = files.length > 1 ? ` (split GGUF: ${files.length} parts, all pulled)` : "";
  return `${why}: ${primary}${parts}`;
}

export function planPull(files: readonly RemoteFile[], spec: PullSpec, include: readonly string[]): PullPlan {
  const repoId = spec.repo.id;
  for (const file of files) safeSegments(file.path, repoId);
  if (include.length > 0 && (spec.quant !== undefined || spec.file !== undefined)) {
    throw new InvalidArgumentError("--include", `--include cannot be combined with a quant tag or a file URL; use one way to choose files`);
  }
  if (spec.file !== undefined) {
    const file = files.find((f) => f.path === spec.file);
    if (file === undefined) throw new HubError("hub_not_found", `${spec.file} is not a file of ${repoId}`);
    return { files: [file], primary: file.path, notes: [] };
  }
  if (spec.quant !== undefined) {
    const chosen = selectGguf(files, spec.quant, repoId);
    return { files: [...chosen.files], primary: chosen.primary, notes: [describeGguf(chosen.files, chosen.primary, `:${spec.quant} chose`)] };
  }
  if (include.length > 0) {
    const { files: picked, notes } = selectIncluded(files, include, repoId);
    const models = picked.filter((f) => /\.(gguf|bin)$/i.test(f.path) && !/(^|\/)(tokenizer|tok\d*)\.bin$/.test(f.path));
    return { files: picked, primary: models.length === 1 ? models[0]!.path : undefined, notes };
  }
  if (!files.some((f) => f.path === "config.json") && ggufCandidates(files).length > 0) {
    const quants = availableQuants(files);
    if (!quants.some((q) => q.toLowerCase() === DEFAULT_QUANT.toLowerCase())) {
      throw new InvalidArgumentError(
        "repo",
        `${repoId} is a GGUF repository without a ${DEFAULT_QUANT} file; choose a quant: pull ${repoId}:<quant> with one of ${quants.join(", ")}`,
      );
    }
    const chosen = selectGguf(files, DEFAULT_QUANT, repoId);
    return {
      files: [...chosen.files],
      primary: chosen.primary,
      notes: [describeGguf(chosen.files, chosen.primary, `no quant tag given, so ${DEFAULT_QUANT} as llama.cpp does (available: ${quants.join(", ")})`)],
    };
  }
  const selection = selectFiles(files, repoId);
  return { files: selection.files, index: selection.index, notes: [] };
}
