/**
 * `pullModel`: fetches a model from a Hugging Face repository into the local cache and
 * returns the snapshot directory (and, for a GGUF or llama2.c pull, the model file). Parses
 * what was typed (spec.ts: `org/repo`, `org/repo:Q4_K_M`, `hf.co/...`, Hub URLs), lists the
 * repository at a revision, resolves it to a commit, picks the files (plan.ts), reads the
 * shard index, checks the disk has room, downloads each file at that commit (download.ts)
 * and records the revision → commit ref. With HF_HUB_OFFLINE=1 it only looks in the cache.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import process from "node:process";
import { cacheRoot, fileSize, readRef, snapshotDir, writeRef } from "./cache.ts";
import { downloadFile, type DownloadOutcome, sleep } from "./download.ts";
import { HubError } from "./errors.ts";
import { createHubClient, isRetryable, listRepoFiles, type RemoteFile } from "./hub-api.ts";
import { InvalidArgumentError } from "../../runtime/errors.ts";
import { COMMIT_SHA, type RepoId, safeLocalPath, validateRevision } from "./names.ts";
import { planPull, type PullPlan } from "./plan.ts";
import { formatBytes, type PullProgress, silentProgress } from "./progress.ts";
import { INDEX_FILE, shardsFromIndex } from "./select.ts";
import { parsePullSpec, type PullSpec } from "./spec.ts";

export interface PullOptions {
  /** Branch, tag, `refs/pr/N` or commit sha; default "main" (or the one a Hub URL names). */
  revision?: string;
  /** fnmatch globs (huggingface-cli --include): fetch exactly the matching files. */
  include?: readonly string[];
  /** Overrides HF_ENDPOINT. */
  endpoint?: string;
  /** Overrides HF_TOKEN. */
  token?: string;
  /** Overrides CRUMB_CACHE (the directory holding `{org}--{name}` folders). */
  cacheDir?: string;
  /** Environment to read HF_ENDPOINT, HF_TOKEN, CRUMB_CACHE and HF_HUB_OFFLINE from; default process.env. */
  env?: Record<string, string | undefined>;
  /** Only use the cache; defaults to HF_HUB_OFFLINE being set to 1/true/yes. */
  offline?: boolean;
  fetch?: typeof fetch;
  progress?: PullProgress;
  signal?: AbortSignal;
  retries?: number;
  retryDelayMs?: number;
  idleTimeoutMs?: number;
}

export interface PulledFile {
  path: string;
  size: number;
  status: DownloadOutcome["status"];
}

export interface PullResult {
  /** The snapshot directory: config.json, tokenizer files and weights under their hub names. */
  dir: string;
  commit: string;
  files: PulledFile[];
  /** The model file when the pull chose one (a GGUF, part 1 of a split GGUF, a llama2.c .bin). */
  primary?: string;
  /** What the selection told the user (file chosen for a quant tag, tokenizer added). */
  notes: string[];
}

export async function pullModel(repoId: string, options: PullOptions = {}): Promise<PullResult> {
  try {
    return await pullOnce(repoId, options);
  } catch (error) {
    if (!options.signal?.aborted || (error instanceof HubError && error.code === "aborted")) throw error;
    throw new HubError("aborted", `pull of ${repoId} interrupted; run it again to resume`, { cause: error });
  }
}

function revisionOf(spec: PullSpec, option: string | undefined): string {
  if (option !== undefined && spec.revision !== undefined && option !== spec.revision) {
    throw new InvalidArgumentError("revision", `--revision ${option} contradicts the revision ${spec.revision} in the URL; give one`);
  }
  return validateRevision(option ?? spec.revision ?? "main");
}

async function pullOnce(repoId: string, options: PullOptions): Promise<PullResult> {
  const env = options.env ?? process.env;
  const spec = parsePullSpec(repoId);
  const repo = spec.repo;
  const revision = revisionOf(spec, options.revision);
  const include = options.include ?? [];
  const root = options.cacheDir === undefined ? cacheRoot(env) : path.resolve(options.cacheDir);
  const offline = options.offline ?? /^(1|true|yes|on)$/i.test(env.HF_HUB_OFFLINE ?? "");
  const progress = options.progress ?? silentProgress;
  if (offline) return await cachedSnapshot(root, spec, revision, include, progress);

  const client = createHubClient({ endpoint: options.endpoint, token: options.token, fetch: options.fetch }, env);
  const listing = await withRetries(() => listRepoFiles(client, repo, revision, options.signal), options);
  const selection = planPull(listing.files, spec, include);
  const dir = snapshotDir(root, repo, listing.commit);
  const download = (file: RemoteFile, onProgress?: (done: number, size: number | undefined) => void) =>
    downloadFile(file, safeLocalPath(dir, file.path, repo.id), {
      client,
      repo,
      commit: listing.commit,
      retries: options.retries,
      retryDelayMs: options.retryDelayMs,
      idleTimeoutMs: options.idleTimeoutMs,
      signal: options.signal,
      onProgress,
      onRetry: (attempt, retries, reason) => progress.retry(file.path, attempt, retries, reason),
    });

  const early = new Map<string, DownloadOutcome>();
  let plan = selection.files;
  if (selection.index !== undefined) {
    early.set(INDEX_FILE, await download(selection.index));
    const text = await fs.readFile(safeLocalPath(dir, INDEX_FILE, repo.id), "utf8");
    plan = [...plan, selection.index, ...shardsFromIndex(text, listing.files, repo.id)];
  }
  await checkFreeSpace(dir, plan, repo.id);

  progress.begin({ repo: repo.id, revision, commit: listing.commit, files: plan });
  for (const note of selection.notes) progress.note(note);
  const files: PulledFile[] = [];
  for (const file of plan) {
    progress.fileStart(file.path, file.size);
    const outcome = early.get(file.path) ??
      await download(file, (done, size) => progress.fileProgress(file.path, done, size));
    progress.fileEnd(file.path, outcome);
    files.push({ path: file.path, size: outcome.size, status: outcome.status });
  }
  if (revision !== listing.commit) await writeRef(root, repo, revision, listing.commit);
  progress.end();
  return { dir, commit: listing.commit, files, primary: primaryPath(dir, selection, repo), notes: selection.notes };
}

function primaryPath(dir: string, plan: PullPlan, repo: RepoId): string | undefined {
  return plan.primary === undefined ? undefined : safeLocalPath(dir, plan.primary, repo.id);
}

/**
 * Retries the listing after a dropped connection, a 429 or a 5xx, at most twice: a wrong
 * HF_ENDPOINT should fail in seconds, not after the long backoff used for file bodies.
 */
async function withRetries<T>(run: () => Promise<T>, options: PullOptions): Promise<T> {
  const retries = Math.min(2, options.retries ?? 2);
  for (let failures = 0;; failures++) {
    try {
      return await run();
    } catch (error) {
      if (options.signal?.aborted || !isRetryable(error) || failures >= retries) throw error;
      await sleep((options.retryDelayMs ?? 1000) * 2 ** failures, options.signal);
    }
  }
}

/**
 * The cached snapshot of a revision, without the network. A Transformers pull needs its
 * config.json there; a quant tag, a file URL or --include is answered by running the same
 * selection over the cached files.
 */
async function cachedSnapshot(
  root: string,
  spec: PullSpec,
  revision: string,
  include: readonly string[],
  progress: PullProgress,
): Promise<PullResult> {
  const repo = spec.repo;
  const commit = COMMIT_SHA.test(revision) ? revision : await readRef(root, repo, revision);
  const dir = commit === undefined ? undefined : snapshotDir(root, repo, commit);
  const notCached = (what: string, cause?: unknown) =>
    new HubError(
      "not_cached",
      `${what} at revision ${revision} is not in the cache ${root} and HF_HUB_OFFLINE is set; ` +
        `pull it once with network access, or unset HF_HUB_OFFLINE`,
      { cause },
    );
  const files: PulledFile[] = [];
  const walk = async (sub: string): Promise<void> => {
    for (const entry of await fs.readdir(path.join(dir!, sub), { withFileTypes: true })) {
      const relative = sub === "" ? entry.name : `${sub}/${entry.name}`;
      if (entry.isDirectory()) await walk(relative);
      else if (entry.isFile() && !entry.name.endsWith(".incomplete")) {
        files.push({ path: relative, size: (await fs.stat(path.join(dir!, relative))).size, status: "cached" });
      }
    }
  };
  const hfPull = spec.quant === undefined && spec.file === undefined && include.length === 0;
  if (commit === undefined || dir === undefined || (hfPull && (await fileSize(path.join(dir, "config.json"))) === undefined)) {
    throw notCached(repo.id);
  }
  if ((await fileSize(dir)) === undefined) throw notCached(repo.id);
  await walk("");
  files.sort((a, b) => a.path.localeCompare(b.path));
  if (hfPull) return { dir, commit, files, notes: [] };
  let plan: PullPlan;
  try {
    plan = planPull(files.map((f) => ({ path: f.path, size: f.size })), spec, include);
  } catch (error) {
    if (error instanceof HubError) throw notCached(`what ${spec.quant !== undefined ? `:${spec.quant}` : "--include"} selects in ${repo.id}`, error);
    throw error;
  }
  for (const note of plan.notes) progress.note(note);
  const chosen = new Set(plan.files.map((f) => f.path));
  return { dir, commit, files: files.filter((f) => chosen.has(f.path)), primary: primaryPath(dir, plan, repo), notes: plan.notes };
}

/** Refuses to start when the disk cannot hold what is left to download (when the platform reports free space). */
async function checkFreeSpace(dir: string, plan: readonly RemoteFile[], repoId: string): Promise<void> {
  let needed = 0;
  for (const file of plan) {
    if (file.size === undefined) continue;
    const target = safeLocalPath(dir, file.path, repoId);
    if ((await fileSize(target)) === file.size) continue;
    needed += file.size - ((await fileSize(`${target}.incomplete`)) ?? 0);
  }
  if (needed <= 0 || typeof fs.statfs !== "function") return;
  await fs.mkdir(dir, { recursive: true });
  let free: number;
  try {
    const stats = await fs.statfs(dir);
    free = Number(stats.bavail) * Number(stats.bsize);
  } catch {
    return;
  }
  if (free < needed) {
    throw new HubError(
      "disk_full",
      `${repoId} needs ${formatBytes(needed)} more but only ${formatBytes(free)} is free under ${dir}; ` +
        `free some space or set CRUMB_CACHE to a larger disk`,
    );
  }
}
