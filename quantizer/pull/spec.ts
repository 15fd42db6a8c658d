/**
 * What a user may type after `pull`: `org/repo`, `org/repo:<quant>` (the tag convention of
 * llama.cpp's `-hf` flag and of Ollama's `hf.co/{org}/{repo}:{quant}`), the same with an
 * `hf.co/` or `huggingface.co/` prefix, or a Hub page URL (`https://huggingface.co/org/repo`,
 * optionally `/tree/<rev>`, or `/blob|resolve/<rev>/<file>` for one file). Returns the
 * validated repository id and what the spelling selects; names.ts validates the parts.
 */
import { InvalidArgumentError } from "../../runtime/errors.ts";
import { parseRepoId, type RepoId, validateRevision } from "./names.ts";

export interface PullSpec {
  readonly repo: RepoId;
  /** `:Q4_K_M` and the like, as typed (matched case-insensitively). */
  readonly quant?: string;
  /** A revision carried by a page URL (`/tree/<rev>`, `/blob/<rev>/...`). */
  readonly revision?: string;
  /** One file named by a `/blob/<rev>/<file>` or `/resolve/<rev>/<file>` URL. */
  readonly file?: string;
}

const HOSTS = /^(?:https?:\/\/)?(?:www\.)?(?:hf\.co|huggingface\.co)\//i;
/** A quant tag: letters, digits, "_", "-" and "." (Q4_K_M, IQ4_XS, f16, UD-Q4_K_XL, ...). */
const QUANT = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function refuse(value: string, why: string): never {
  throw new InvalidArgumentError(
    "repo",
    `"${value}" ${why}; expected org/repo, org/repo:<quant> (e.g. bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M), ` +
      `hf.co/org/repo:<quant> or https://huggingface.co/org/repo`,
  );
}

export function parsePullSpec(value: string): PullSpec {
  const text = value.trim();
  const hadHost = HOSTS.test(text);
  if (!hadHost && /^[a-z]+:\/\//i.test(text)) refuse(value, "is a URL of another site than huggingface.co");
  let rest = text.replace(HOSTS, "").replace(/[?#].*$/, "").replace(/\/+$/, "");
  let quant: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon >= 0) {
    quant = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!QUANT.test(quant)) refuse(value, `has the quant tag "${quant}", which is not a quant name such as Q4_K_M`);
  }
  const parts = rest.split("/");
  const repo = parseRepoId(parts.length < 2 ? value : parts.slice(0, 2).join("/"));
  const extra = parts.slice(2);
  if (extra.length === 0) return { repo, quant };
  if (!hadHost) refuse(value, "has more than org/repo before the quant tag");
  if (quant !== undefined) refuse(value, "combines a page URL with a quant tag");
  const [kind, revision, ...file] = extra;
  if (kind === "tree" && revision !== undefined && file.length === 0) return { repo, revision: validateRevision(revision) };
  if ((kind === "blob" || kind === "resolve") && revision !== undefined && file.length > 0) {
    return { repo, revision: validateRevision(revision), file: file.map(decodeURIComponent).join("/") };
  }
  refuse(value, "is a Hub URL crumb does not understand");
}
