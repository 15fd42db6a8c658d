/**
 * Downloads one hub file into the cache: bytes go to `<name>.incomplete`, which is resumed
 * with `Range: bytes=N-` (a 206 appends, a 200 that ignored the Range restarts from zero),
 * a dropped or stalled connection is retried with resume and exponential backoff, and the
 * result is checked against the size and hash the hub reported (sha256 for LFS files,
 * streamed while writing; git blob sha1 for small ones) before an atomic rename. A file
 * that fails a check is deleted and reported with both values.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream, promises as fs } from "node:fs";
import path from "node:path";
import { HubError, IntegrityError } from "./errors.ts";
import { type HubClient, hubRequest, isRetryable, networkError, type RemoteFile, resolveUrl, type Subject } from "./hub-api.ts";
import type { RepoId } from "./names.ts";
import { fileSize } from "./cache.ts";

export interface DownloadOptions {
  client: HubClient;
  repo: RepoId;
  /** Files are fetched at the commit, so a branch moving mid-pull cannot mix snapshots. */
  commit: string;
  /** Consecutive failed attempts allowed before giving up (an attempt that made progress resets the count). */
  retries?: number;
  /** First backoff delay; doubles per consecutive failure, capped at 30 s. */
  retryDelayMs?: number;
  /** An attempt that receives no bytes for this long is abandoned and retried. */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
  /** Bytes of this file now on disk, and its size when known. */
  onProgress?: (done: number, size: number | undefined) => void;
  onRetry?: (attempt: number, retries: number, reason: string) => void;
}

export interface DownloadOutcome {
  status: "downloaded" | "cached";
  size: number;
  /** Bytes already present in an `.incomplete` file when this call started. */
  resumedFrom: number;
}

interface PartialState {
  bytes: number;
  hash: Hash;
}

const MAX_BACKOFF_MS = 30_000;

export async function downloadFile(file: RemoteFile, dest: string, options: DownloadOptions): Promise<DownloadOutcome> {
  const existing = await fileSize(dest);
  if (existing !== undefined) {
    if (file.size === undefined || existing === file.size) return { status: "cached", size: existing, resumedFrom: existing };
    await fs.rm(dest, { force: true });
  }
  await fs.mkdir(path.dirname(dest), { recursive: true });
  const part = `${dest}.incomplete`;
  const state = await openPartial(part, file.size);
  const resumedFrom = state.bytes;
  const expected = { size: file.size, sha256: file.sha256 };
  const retries = options.retries ?? 5;
  const subject: Subject = { repo: options.repo, revision: options.commit, file: file.path };
  let failures = 0;
  options.onProgress?.(state.bytes, expected.size);
  const interrupted = (cause?: unknown) =>
    new HubError("aborted", `download of ${file.path} interrupted; ${part} is kept, run pull again to resume`, { cause });
  while (expected.size === undefined || state.bytes < expected.size) {
    if (options.signal?.aborted) throw interrupted(options.signal.reason);
    const before = state.bytes;
    try {
      await attempt(file, part, state, expected, subject, options);
      break;
    } catch (error) {
      if (options.signal?.aborted) throw interrupted(error);
      if (!isRetryable(error)) throw error;
      failures = state.bytes > before ? 1 : failures + 1;
      if (failures > retries) {
        const last = error as HubError;
        throw new HubError(last.code, `${last.message} (gave up after ${failures} attempts in a row; run pull again to resume)`, {
          status: last.status,
          url: last.url,
          cause: error,
        });
      }
      options.onRetry?.(failures, retries, shortReason(error as HubError));
      await sleep(Math.min(MAX_BACKOFF_MS, (options.retryDelayMs ?? 1000) * 2 ** (failures - 1)), options.signal);
    }
  }
  await verify(file.path, part, state, expected, file.gitOid);
  await fs.rename(part, dest);
  return { status: "downloaded", size: state.bytes, resumedFrom };
}

/** Hashes what an earlier run left in the `.incomplete` file so the digest can continue from it. */
async function openPartial(part: string, size: number | undefined): Promise<PartialState> {
  const hash = createHash("sha256");
  const bytes = await fileSize(part);
  if (bytes === undefined || bytes === 0 || (size !== undefined && bytes > size)) {
    await fs.writeFile(part, new Uint8Array(0));
    return { bytes: 0, hash };
  }
  for await (const chunk of createReadStream(part)) hash.update(chunk as Uint8Array);
  return { bytes, hash };
}

async function restart(part: string, state: PartialState): Promise<void> {
  await fs.writeFile(part, new Uint8Array(0));
  state.bytes = 0;
  state.hash = createHash("sha256");
}

/** One request: appends what arrives to `part`; throws a retryable HubError when the stream ends early. */
async function attempt(
  file: RemoteFile,
  part: string,
  state: PartialState,
  expected: { size?: number; sha256?: string },
  subject: Subject,
  options: DownloadOptions,
): Promise<void> {
  const { client } = options;
  const url = resolveUrl(client, options.repo, options.commit, file.path);
  const controller = new AbortController();
  const forward = () => controller.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", forward, { once: true });
  const idleMs = options.idleTimeoutMs ?? 60_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(new Error(`no data for ${idleMs} ms`)), idleMs);
  };
  try {
    arm();
    const headers: Record<string, string> = state.bytes > 0 ? { range: `bytes=${state.bytes}-` } : {};
    const { response, meta } = await hubRequest(client, url, subject, { headers, signal: controller.signal });
    expected.size ??= meta.linkedSize;
    if (expected.sha256 === undefined && meta.linkedEtag !== undefined && /^[0-9a-f]{64}$/.test(meta.linkedEtag)) {
      expected.sha256 = meta.linkedEtag;
    }
    if (response.status === 416) {
      await response.body?.cancel().catch(() => undefined);
      await restart(part, state);
      throw new HubError("resume_refused", `${file.path}: the server refused to resume (HTTP 416); restarting from zero`, { status: 416 });
    }
    const range = parseContentRange(response.headers.get("content-range"));
    if (response.status === 206 && range !== undefined && range.start === state.bytes) {
      expected.size ??= range.total;
    } else {
      if (state.bytes > 0) await restart(part, state);
      const length = response.headers.get("content-length");
      if (response.status !== 206 && length !== null && /^\d+$/.test(length)) expected.size ??= Number(length);
      if (response.status === 206) {
        await response.body?.cancel().catch(() => undefined);
        throw new HubError("resume_refused", `${file.path}: the server answered a different range than asked; restarting from zero`, {
          status: 206,
        });
      }
    }
    options.onProgress?.(state.bytes, expected.size);
    await streamBody(response, part, state, expected.size, file.path, arm, options);
    if (expected.size !== undefined && state.bytes < expected.size) {
      throw new HubError("network_error", `connection closed after ${state.bytes} of ${expected.size} bytes of ${file.path}`, {
        url,
      });
    }
  } catch (error) {
    if (error instanceof HubError || error instanceof IntegrityError) throw error;
    throw networkError(client, url, subject, controller.signal.aborted && !options.signal?.aborted ? controller.signal.reason : error);
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", forward);
  }
}

async function streamBody(
  response: Response,
  part: string,
  state: PartialState,
  size: number | undefined,
  name: string,
  arm: () => void,
  options: DownloadOptions,
): Promise<void> {
  if (response.body === null) return;
  const handle = await fs.open(part, "a");
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      arm();
      if (size !== undefined && state.bytes + chunk.length > size) {
        await fs.rm(part, { force: true });
        throw new IntegrityError(name, "size", `${size} bytes`, `more than ${size} bytes`);
      }
      await handle.write(chunk);
      state.hash.update(chunk);
      state.bytes += chunk.length;
      options.onProgress?.(state.bytes, size);
    }
  } finally {
    await handle.close();
  }
}

function parseContentRange(value: string | null): { start: number; total?: number } | undefined {
  const match = value === null ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value.trim());
  if (match === null) return undefined;
  return { start: Number(match[1]), total: match[3] === "*" ? undefined : Number(match[3]) };
}

async function verify(
  name: string,
  part: string,
  state: PartialState,
  expected: { size?: number; sha256?: string },
  gitOid: string | undefined,
): Promise<void> {
  const fail = async (error: IntegrityError) => {
    await fs.rm(part, { force: true });
    throw error;
  };
  if (expected.size !== undefined && state.bytes !== expected.size) {
    await fail(new IntegrityError(name, "size", `${expected.size} bytes`, `${state.bytes} bytes`));
  }
  if (expected.sha256 !== undefined) {
    const actual = state.hash.digest("hex");
    if (actual !== expected.sha256) await fail(new IntegrityError(name, "sha256", expected.sha256, actual));
  } else if (gitOid !== undefined) {
    const actual = await gitBlobSha1(part, state.bytes);
    if (actual !== gitOid) await fail(new IntegrityError(name, "git-sha1", gitOid, actual));
  }
}

/** git's object id of a file: sha1 over `blob <size>\0` and the content. */
async function gitBlobSha1(file: string, size: number): Promise<string> {
  const hash = createHash("sha1");
  hash.update(`blob ${size}\0`);
  for await (const chunk of createReadStream(file)) hash.update(chunk as Uint8Array);
  return hash.digest("hex");
}

/** The underlying cause of a retried failure, without the advice meant for a final error. */
function shortReason(error: HubError): string {
  const cause = error.cause instanceof Error ? error.cause.message : error.message;
  return cause.split(". For more information")[0]!;
}

/** Waits `ms`, or less when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
