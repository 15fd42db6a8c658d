/**
 * `pull org/repo --include '<glob>'`: the files whose repository path matches any pattern,
 * with huggingface-cli's `--include` semantics (Python fnmatch: `*` matches any run of
 * characters, "/" included, `?` one character, `[seq]` / `[!seq]` one of a set), plus, for
 * a llama2.c checkpoint (`.bin` in karpathy/llama2.c's format, e.g. karpathy/tinyllamas'
 * stories15M.bin), the llama2.c tokenizer it needs: `tokenizer.bin` or a lone `tok*.bin` in
 * the same folder, else a top-level `tokenizer.bin`.
 */
import { InvalidArgumentError } from "../../runtime/errors.ts";
import { HubError } from "./errors.ts";
import type { RemoteFile } from "./hub-api.ts";

/** fnmatch pattern → anchored RegExp (case-sensitive, as fnmatch is on POSIX). */
export function globToRegExp(pattern: string): RegExp {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") out += ".*";
    else if (c === "?") out += ".";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) {
        out += "\\[";
        continue;
      }
      let body = pattern.slice(i + 1, end);
      const negate = body.startsWith("!");
      if (negate) body = body.slice(1);
      out += `[${negate ? "^" : ""}${body.replace(/[\\\]^]/g, "\\$&")}]`;
      i = end;
    } else out += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(`^${out}$`, "s");
}

function dirOf(path: string): string {
  return path.includes("/") ? path.slice(0, path.lastIndexOf("/") + 1) : "";
}

function baseOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

const TOKENIZER_BIN = /^(?:tokenizer|tok\d*)\.bin$/;
/** `.bin` files that are PyTorch or training state, not llama2.c checkpoints. */
const NOT_LLAMA2C = /^(?:pytorch_model.*|training_args|optimizer|scheduler|rng_state.*|adapter_model)\.bin$/;

/** The llama2.c tokenizer to fetch with `model` (a .bin checkpoint), if the repository has one. */
export function llama2cTokenizerFor(model: string, files: readonly RemoteFile[]): RemoteFile | undefined {
  const dir = dirOf(model);
  const byPath = new Map(files.map((f) => [f.path, f]));
  const near = byPath.get(`${dir}tokenizer.bin`);
  if (near !== undefined) return near;
  const toks = files.filter((f) => dirOf(f.path) === dir && TOKENIZER_BIN.test(baseOf(f.path)));
  if (toks.length === 1) return toks[0];
  return byPath.get("tokenizer.bin");
}

export interface IncludeSelection {
  readonly files: RemoteFile[];
  /** What the user should know: the tokenizer added, or that none was found. */
  readonly notes: string[];
}

export function selectIncluded(files: readonly RemoteFile[], patterns: readonly string[], repoId: string): IncludeSelection {
  if (patterns.length === 0 || patterns.some((p) => p.trim() === "")) {
    throw new InvalidArgumentError("--include", `--include needs a non-empty glob such as '*Q4_K_M*.gguf' or 'stories15M.bin'`);
  }
  const regexes = patterns.map(globToRegExp);
  const picked = files.filter((f) => regexes.some((r) => r.test(f.path)));
  if (picked.length === 0) {
    const sample = files.map((f) => f.path).slice(0, 12).join(", ");
    throw new HubError(
      "hub_not_found",
      `no file of ${repoId} matches --include ${patterns.map((p) => `'${p}'`).join(" ")}; it has ${files.length} files: ${sample}${
        files.length > 12 ? ", ..." : ""
      }`,
    );
  }
  const notes: string[] = [];
  const chosen = new Set(picked.map((f) => f.path));
  for (const model of picked) {
    const name = baseOf(model.path);
    if (!name.endsWith(".bin") || TOKENIZER_BIN.test(name) || NOT_LLAMA2C.test(name)) continue;
    const tokenizer = llama2cTokenizerFor(model.path, files);
    if (tokenizer === undefined) {
      notes.push(
        `${repoId} has no llama2.c tokenizer (tokenizer.bin or tok*.bin) for ${model.path}; ` +
          `pass one with --tokenizer when you generate or quantize (llama2.c's stories models use its 32000-token tokenizer.bin)`,
      );
    } else if (!chosen.has(tokenizer.path)) {
      chosen.add(tokenizer.path);
      picked.push(tokenizer);
      notes.push(`also pulling ${tokenizer.path}, the llama2.c tokenizer for ${model.path} (pass it with --tokenizer)`);
    }
  }
  return { files: picked, notes };
}
