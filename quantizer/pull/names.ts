/**
 * Validation of everything that becomes part of a URL or a cache path: repository ids
 * (`org/name`, the Hub's character rules), revisions (branch, tag, `refs/pr/N` or commit)
 * and file names listed by the hub, which must stay inside the snapshot directory.
 */
import path from "node:path";
import { InvalidArgumentError } from "../../runtime/errors.ts";
import { HubError } from "./errors.ts";

export interface RepoId {
  org: string;
  name: string;
  /** `org/name` */
  id: string;
}

const REPO_PART = /^[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?$/;
const REVISION = /^[A-Za-z0-9._\-/]{1,255}$/;
export const COMMIT_SHA = /^[0-9a-f]{40}$/;

/** Parses `org/name`; throws InvalidArgumentError naming the value and the expected form. */
export function parseRepoId(value: string): RepoId {
  const parts = value.split("/");
  const valid = parts.length === 2 &&
    parts.every((part) => REPO_PART.test(part) && !part.includes("--") && !part.includes(".."));
  if (!valid) {
    throw new InvalidArgumentError(
      "repo",
      `"${value}" is not a Hugging Face repository id; expected org/name with letters, digits, "-", "_" or "." ` +
        `(for example HuggingFaceTB/SmolLM2-135M-Instruct)`,
    );
  }
  return { org: parts[0]!, name: parts[1]!, id: value };
}

/** Checks a branch, tag, `refs/pr/N` or commit sha; it is used in URLs and in the refs file path. */
export function validateRevision(value: string): string {
  const segments = value.split("/");
  const valid = REVISION.test(value) &&
    segments.every((segment) => segment !== "" && segment !== "." && segment !== "..") &&
    !value.includes("..") && !value.endsWith(".lock");
  if (!valid) {
    throw new InvalidArgumentError(
      "revision",
      `revision "${value}" is not a valid branch, tag or commit; use letters, digits, ".", "_", "-" and "/" ` +
        `(for example main, v1.0, refs/pr/3 or a 40-character commit sha)`,
    );
  }
  return value;
}

/**
 * Splits a file name from the hub into path segments after refusing anything that could
 * leave the snapshot directory: absolute paths, drive letters, backslashes, control
 * characters, empty, "." or ".." segments.
 */
export function safeSegments(name: string, repoId: string): string[] {
  const segments = name.split("/");
  const bad = name === "" || name.startsWith("/") || /^[A-Za-z]:/.test(name) || name.includes("\\") ||
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f]/.test(name) ||
    segments.some((segment) => segment === "" || segment === "." || segment === "..");
  if (bad) {
    throw new HubError(
      "unsafe_path",
      `the hub listed a file named ${JSON.stringify(name)} in ${repoId}, which would be written outside the cache ` +
        `directory; refusing to download it (check HF_ENDPOINT points at a trusted hub)`,
    );
  }
  return segments;
}

/** Resolves a hub file name inside `dir`, with a final containment check as defence in depth. */
export function safeLocalPath(dir: string, name: string, repoId: string): string {
  const base = path.resolve(dir);
  const full = path.resolve(base, ...safeSegments(name, repoId));
  if (!full.startsWith(base + path.sep)) {
    throw new HubError("unsafe_path", `file ${JSON.stringify(name)} in ${repoId} resolves outside ${base}; refusing it`);
  }
  return full;
}
