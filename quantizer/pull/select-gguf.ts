/**
 * Picks the GGUF file of a repository that a quant tag names, the way llama.cpp's `-hf
 * org/repo:Q4_K_M` and Ollama's `hf.co/org/repo:Q4_K_M` read the tag: the quant label at the
 * end of a file name (`...-Q4_K_M.gguf`, `....Q4_K_M.gguf`, or a `Q4_K_M/` folder), compared
 * case-insensitively. A split set (`-00001-of-00003.gguf`, llama.cpp's gguf-split naming) is
 * one candidate and is pulled whole; vision projectors (`mmproj*`) are never candidates.
 */
import { UnsupportedModelError } from "../../runtime/errors.ts";
import { HubError } from "./errors.ts";
import type { RemoteFile } from "./hub-api.ts";

/** llama.cpp's -hf default when no tag is given. */
export const DEFAULT_QUANT = "Q4_K_M";

const SPLIT = /-(\d{5})-of-(\d{5})\.gguf$/i;
const LABEL = /(?:^|[-_.])((?:UD-)?(?:I?Q[1-8](?:_[0-9A-Z]+)*|TQ[12]_0|MXFP4(?:_MOE)?|BF16|F16|F32|FP16|FP32))$/i;

/** One model file, or one whole split set, of a repository. */
export interface GgufCandidate {
  /** Quant label as spelled in the file name (Q4_K_M, q8_0, f16, ...), or the stem when it has none. */
  readonly label: string;
  /** The file to hand to llama.cpp or crumb: the only file, or part 1 of a split set. */
  readonly primary: string;
  /** Every file of the candidate, in part order. */
  readonly files: readonly RemoteFile[];
  /** Parts a split set announces but the listing lacks. */
  readonly missing: number;
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

function isModelGguf(path: string): boolean {
  return /\.gguf$/i.test(path) && !/^mmproj/i.test(basename(path));
}

function labelOf(path: string): string {
  const stem = basename(path).replace(SPLIT, "").replace(/\.gguf$/i, "");
  const own = LABEL.exec(stem);
  if (own !== null) return own[1]!;
  const folder = path.includes("/") ? basename(path.slice(0, path.lastIndexOf("/"))) : "";
  const fromFolder = LABEL.exec(folder);
  return fromFolder !== null ? fromFolder[1]! : stem;
}

/** The model GGUFs of a listing, split sets grouped, in listing order. */
export function ggufCandidates(files: readonly RemoteFile[]): GgufCandidate[] {
  const sets = new Map<string, { parts: Map<number, RemoteFile>; total: number }>();
  const out: GgufCandidate[] = [];
  for (const file of files) {
    if (!isModelGguf(file.path)) continue;
    const split = SPLIT.exec(file.path);
    if (split === null) {
      out.push({ label: labelOf(file.path), primary: file.path, files: [file], missing: 0 });
      continue;
    }
    const key = file.path.replace(SPLIT, "");
    const set = sets.get(key) ?? { parts: new Map(), total: Number(split[2]) };
    set.parts.set(Number(split[1]), file);
    set.total = Math.max(set.total, Number(split[2]));
    sets.set(key, set);
  }
  for (const set of sets.values()) {
    const parts = [...set.parts.entries()].sort((a, b) => a[0] - b[0]).map(([, f]) => f);
    out.push({ label: labelOf(parts[0]!.path), primary: parts[0]!.path, files: parts, missing: set.total - parts.length });
  }
  return out;
}

/** The distinct quant labels of a repository's GGUFs, for messages. */
export function availableQuants(files: readonly RemoteFile[]): string[] {
  return [...new Set(ggufCandidates(files).map((c) => c.label))].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
}

/** The candidate whose label equals `quant` (case-insensitive); throws naming the choices otherwise. */
export function selectGguf(files: readonly RemoteFile[], quant: string, repoId: string): GgufCandidate {
  const candidates = ggufCandidates(files);
  if (candidates.length === 0) {
    throw new UnsupportedModelError(`${repoId} holds no .gguf files, so ":${quant}" selects nothing`, [
      "GGUF repositories (…-GGUF) with a quant tag",
      "Transformers repositories without one (pull org/repo)",
    ]);
  }
  const wanted = quant.toLowerCase();
  const matches = candidates.filter((c) => c.label.toLowerCase() === wanted);
  if (matches.length === 0) {
    throw new HubError(
      "quant_not_found",
      `${repoId} has no GGUF for quant "${quant}"; available: ${availableQuants(files).join(", ")} ` +
        `(pull ${repoId}:<one of them>, or --include '<file name>')`,
    );
  }
  if (matches.length > 1) {
    throw new HubError(
      "quant_ambiguous",
      `quant "${quant}" matches ${matches.length} GGUFs in ${repoId}: ${matches.map((c) => c.primary).join(", ")}; ` +
        `pick one with --include '<file name>'`,
    );
  }
  const chosen = matches[0]!;
  if (chosen.missing > 0) {
    throw new HubError(
      "download_error",
      `${chosen.primary} is part 1 of a split GGUF whose listing lacks ${chosen.missing} of its parts; the repository is incomplete`,
    );
  }
  return chosen;
}
