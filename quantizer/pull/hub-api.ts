/**
 * The Hugging Face Hub's HTTP API as crumb uses it: the endpoint (HF_ENDPOINT) and token
 * (HF_TOKEN, sent as `Authorization: Bearer`), the revision API that lists a repository's
 * files (`/api/models/{repo}/revision/{rev}?blobs=true`: `sha`, `siblings[].rfilename`,
 * `size`, `lfs.sha256`), `resolve` file URLs, redirects followed by hand (relative ones stay
 * on the hub, absolute ones may go to a CDN, which never receives the token) while
 * collecting `X-Repo-Commit`, `X-Linked-Etag` and `X-Linked-Size`, and the mapping of hub
 * answers (`X-Error-Code`: RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) to
 * typed errors. The token never appears in a message.
 */
import process from "node:process";
import { InvalidArgumentError } from "../../runtime/errors.ts";
import { HubError } from "./errors.ts";
import { COMMIT_SHA, type RepoId } from "./names.ts";

export const DEFAULT_ENDPOINT = "https://huggingface.co";
const MAX_REDIRECTS = 10;

export interface HubClient {
  /** Without a trailing slash. */
  endpoint: string;
  token?: string;
  fetch: typeof fetch;
  userAgent: string;
}

export interface HubClientOptions {
  endpoint?: string;
  token?: string;
  fetch?: typeof fetch;
}

/** Builds a client from explicit options, falling back to HF_ENDPOINT and HF_TOKEN. */
export function createHubClient(options: HubClientOptions = {}, env: Record<string, string | undefined> = process.env): HubClient {
  const raw = options.endpoint ?? env.HF_ENDPOINT ?? DEFAULT_ENDPOINT;
  let url: URL;
  try {
    url = new URL(raw);
  } catch (cause) {
    throw new InvalidArgumentError("HF_ENDPOINT", `HF_ENDPOINT "${raw}" is not a URL; use e.g. ${DEFAULT_ENDPOINT}`, { cause });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new InvalidArgumentError("HF_ENDPOINT", `HF_ENDPOINT "${raw}" must be an http or https URL, e.g. ${DEFAULT_ENDPOINT}`);
  }
  const token = options.token ?? env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  return {
    endpoint: raw.replace(/\/+$/, ""),
    token: token === undefined || token.trim() === "" ? undefined : token.trim(),
    fetch: options.fetch ?? fetch,
    userAgent: "crumb-pull/0.1",
  };
}

/** What a request is about, for error messages. */
export interface Subject {
  repo: RepoId;
  revision: string;
  file?: string;
}

/** Metadata the hub attaches to `resolve` answers (first value seen along the redirect chain). */
export interface HubMeta {
  commit?: string;
  /** sha256 of an LFS file (quotes removed). */
  linkedEtag?: string;
  linkedSize?: number;
  etag?: string;
}

export interface HubAnswer {
  response: Response;
  meta: HubMeta;
}

export function resolveUrl(client: HubClient, repo: RepoId, revision: string, file: string): string {
  const filePath = file.split("/").map(encodeURIComponent).join("/");
  return `${client.endpoint}/${repo.org}/${repo.name}/resolve/${encodeURIComponent(revision)}/${filePath}`;
}

export function withoutQuery(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}

function unquote(value: string | null): string | undefined {
  if (value === null) return undefined;
  return value.replace(/^W\//, "").replace(/^"|"$/g, "");
}

function collectMeta(meta: HubMeta, headers: Headers): void {
  meta.commit ??= headers.get("x-repo-commit") ?? undefined;
  meta.linkedEtag ??= unquote(headers.get("x-linked-etag"));
  const size = headers.get("x-linked-size");
  if (meta.linkedSize === undefined && size !== null && /^\d+$/.test(size)) meta.linkedSize = Number(size);
  meta.etag ??= unquote(headers.get("etag"));
}

/**
 * Sends a GET or HEAD, following up to 10 redirects by hand, and returns the first
 * non-redirect answer that is 2xx or 416 (callers handle Range themselves). Anything else
 * becomes a HubError; a failed connection becomes `network_error`.
 */
export async function hubRequest(
  client: HubClient,
  url: string,
  subject: Subject,
  init: { method?: "GET" | "HEAD"; headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<HubAnswer> {
  const endpointOrigin = new URL(client.endpoint).origin;
  const meta: HubMeta = {};
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const onHub = new URL(current).origin === endpointOrigin;
    const headers: Record<string, string> = { "user-agent": client.userAgent, "accept-encoding": "identity", ...init.headers };
    if (client.token !== undefined && onHub) headers.authorization = `Bearer ${client.token}`;
    let response: Response;
    try {
      response = await client.fetch(current, { method: init.method ?? "GET", headers, redirect: "manual", signal: init.signal });
    } catch (cause) {
      throw networkError(client, current, subject, init.signal?.aborted ? init.signal.reason : cause);
    }
    if (onHub) collectMeta(meta, response.headers);
    const location = response.headers.get("location");
    if (response.status >= 300 && response.status < 400 && location !== null) {
      await response.body?.cancel().catch(() => undefined);
      current = new URL(location, current).toString();
      continue;
    }
    if (response.ok || response.status === 416) return { response, meta };
    await response.body?.cancel().catch(() => undefined);
    throw statusError(client, current, subject, response);
  }
  throw new HubError("download_error", `more than ${MAX_REDIRECTS} redirects for ${describe(subject)} from ${withoutQuery(url)}`, {
    url: withoutQuery(url),
  });
}

function describe(subject: Subject): string {
  const where = `${subject.repo.id} at revision ${subject.revision}`;
  return subject.file === undefined ? where : `${subject.file} in ${where}`;
}

export function networkError(client: HubClient, url: string, subject: Subject, cause: unknown): HubError {
  if (cause instanceof HubError) return cause;
  const origin = new URL(url).origin;
  const reason = cause instanceof Error ? cause.message : String(cause);
  const via = origin === new URL(client.endpoint).origin ? "" : ` (redirected from ${client.endpoint})`;
  return new HubError(
    "network_error",
    `cannot download ${describe(subject)} from ${origin}${via}: ${reason}; check the network, ` +
      `or set HF_ENDPOINT to a reachable mirror (now ${client.endpoint})`,
    { url: withoutQuery(url), cause },
  );
}

function statusError(client: HubClient, url: string, subject: Subject, response: Response): HubError {
  const status = response.status;
  const code = response.headers.get("x-error-code") ?? "";
  const hubSays = response.headers.get("x-error-message");
  const suffix = hubSays === null ? "" : ` (hub: ${hubSays.slice(0, 200)})`;
  const details = { status, url: withoutQuery(url) };
  const repo = subject.repo.id;
  const page = `${client.endpoint}/${repo}`;
  if (code === "GatedRepo" || (status === 403 && code !== "RepoNotFound")) {
    const how = client.token === undefined
      ? "set HF_TOKEN to a token of an account that has accepted the terms"
      : "the token in HF_TOKEN has no access: accept the terms with that account";
    return new HubError("hub_auth_required", `${repo} is gated or private (HTTP ${status}): ${how} at ${page}${suffix}`, details);
  }
  if (status === 401 || (status === 404 && code === "RepoNotFound")) {
    const how = client.token === undefined
      ? "check the name, or set HF_TOKEN to a token with read access if it is private or gated"
      : "check the name; the token in HF_TOKEN may be invalid or lack access to it";
    return new HubError(
      status === 401 ? "hub_auth_required" : "hub_not_found",
      `repository ${repo} was not found on ${client.endpoint} or needs authentication (HTTP ${status}): ${how}${suffix}`,
      details,
    );
  }
  if (status === 404) {
    if (code === "RevisionNotFound") {
      return new HubError(
        "hub_not_found",
        `revision "${subject.revision}" not found in ${repo}; check the branch, tag or commit${suffix}`,
        details,
      );
    }
    if (code === "EntryNotFound" || subject.file !== undefined) {
      return new HubError("hub_not_found", `${describe(subject)} not found on ${client.endpoint} (HTTP 404)${suffix}`, details);
    }
    return new HubError(
      "hub_not_found",
      `repository ${repo} or its revision "${subject.revision}" was not found on ${client.endpoint} (HTTP 404); check both${suffix}`,
      details,
    );
  }
  return new HubError("download_error", `${new URL(url).origin} answered HTTP ${status} for ${describe(subject)}${suffix}`, details);
}

/** True for failures worth retrying: connection problems, 429 and 5xx answers. */
export function isRetryable(error: unknown): boolean {
  if (!(error instanceof HubError)) return false;
  if (error.code === "network_error" || error.code === "resume_refused") return true;
  return error.code === "download_error" && error.status !== undefined && (error.status === 429 || error.status >= 500);
}

/** One file of a repository as the hub lists it; size and hashes are absent when the API does not give them. */
export interface RemoteFile {
  path: string;
  size?: number;
  /** sha256 of the content (LFS files). */
  sha256?: string;
  /** git blob sha1 (non-LFS files). */
  gitOid?: string;
}

export interface RepoListing {
  commit: string;
  files: RemoteFile[];
}

interface RevisionInfo {
  sha?: unknown;
  siblings?: { rfilename?: unknown; size?: unknown; blobId?: unknown; lfs?: { sha256?: unknown; size?: unknown } | null }[];
}

/**
 * Lists a repository's files at a revision and the commit it resolves to. Size and hashes
 * come from `?blobs=true`; a hub or mirror that omits them (or the commit) is tolerated:
 * sizes then come from download headers and the commit from `X-Repo-Commit`.
 */
export async function listRepoFiles(client: HubClient, repo: RepoId, revision: string, signal?: AbortSignal): Promise<RepoListing> {
  const subject = { repo, revision };
  const url = `${client.endpoint}/api/models/${repo.org}/${repo.name}/revision/${encodeURIComponent(revision)}?blobs=true`;
  const { response } = await hubRequest(client, url, subject, { headers: { accept: "application/json" }, signal });
  let info: RevisionInfo;
  try {
    info = await response.json() as RevisionInfo;
  } catch (cause) {
    throw new HubError(
      "download_error",
      `${client.endpoint} did not answer JSON for ${repo.id} at ${revision}; is HF_ENDPOINT a Hub API?`,
      {
        url: withoutQuery(url),
        cause,
      },
    );
  }
  if (typeof info !== "object" || info === null || !Array.isArray(info.siblings)) {
    throw new HubError("download_error", `${client.endpoint} listed no files (no "siblings") for ${repo.id} at ${revision}`, {
      url: withoutQuery(url),
    });
  }
  const files: RemoteFile[] = info.siblings.map((sibling) => {
    if (typeof sibling?.rfilename !== "string") {
      throw new HubError("download_error", `${client.endpoint} listed a file without a name in ${repo.id}`, { url: withoutQuery(url) });
    }
    const lfs = sibling.lfs ?? undefined;
    const size = typeof lfs?.size === "number" ? lfs.size : typeof sibling.size === "number" ? sibling.size : undefined;
    const sha256 = typeof lfs?.sha256 === "string" && /^[0-9a-f]{64}$/.test(lfs.sha256) ? lfs.sha256 : undefined;
    const gitOid = lfs === undefined && typeof sibling.blobId === "string" && COMMIT_SHA.test(sibling.blobId) ? sibling.blobId : undefined;
    return { path: sibling.rfilename, size, sha256, gitOid };
  });
  let commit = typeof info.sha === "string" && COMMIT_SHA.test(info.sha) ? info.sha : undefined;
  if (commit === undefined) commit = await probeCommit(client, repo, revision, files, signal);
  return { commit, files };
}

async function probeCommit(client: HubClient, repo: RepoId, revision: string, files: RemoteFile[], signal?: AbortSignal): Promise<string> {
  const probe = files.find((file) => file.path === "config.json") ?? files[0];
  if (probe !== undefined) {
    const subject = { repo, revision, file: probe.path };
    const { meta, response } = await hubRequest(client, resolveUrl(client, repo, revision, probe.path), subject, {
      method: "HEAD",
      signal,
    });
    await response.body?.cancel().catch(() => undefined);
    if (meta.commit !== undefined && COMMIT_SHA.test(meta.commit)) return meta.commit;
  }
  if (COMMIT_SHA.test(revision)) return revision;
  throw new HubError(
    "download_error",
    `${client.endpoint} did not report which commit "${revision}" of ${repo.id} is; pass --revision <40-character commit sha>`,
  );
}
