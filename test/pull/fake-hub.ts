/**
 * A local imitation of the Hugging Face Hub for pull tests, on 127.0.0.1 with port 0: the
 * revision API (`/api/models/{repo}/revision/{rev}?blobs=true`), `resolve` URLs that answer
 * small files directly or through a relative redirect and send LFS files to a second
 * server (the "CDN", another origin) with an absolute 302, `X-Repo-Commit` /
 * `X-Linked-Etag` / `X-Linked-Size` headers, Range requests (206), and faults on demand:
 * a connection dropped mid-file, a server that ignores Range, a wrong sha256, 401/403/404.
 * Every request is recorded so tests can assert on headers.
 */
import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeFile {
  path: string;
  content: Uint8Array;
  /** Stored in LFS: listed with lfs.sha256 and served through the CDN. */
  lfs?: boolean;
}

export interface FakeHubOptions {
  org: string;
  name: string;
  commit: string;
  files: FakeFile[];
  /** Names only listed by the API (hostile or unneeded names). */
  extraNames?: string[];
  /** Revisions that resolve to `commit` besides the commit itself; default ["main"]. */
  revisions?: string[];
  /** When set, requests must carry `Authorization: Bearer <token>`, else 401. */
  token?: string;
  /** Answer 403 GatedRepo to everything. */
  gated?: boolean;
  /** Path → file offset at which the next `times` GETs of that file are cut (a resumed GET from there gets nothing). */
  dropAfter?: Record<string, { bytes: number; times: number }>;
  /** Path → file offset at which the next `times` GETs send nothing more but keep the connection open. */
  stallAt?: Record<string, { bytes: number; times: number }>;
  /** Paths whose CDN answers ignore Range and send the whole file with 200. */
  ignoreRange?: string[];
  /** Path → sha256 the hub reports instead of the real one. */
  wrongSha256?: Record<string, string>;
  /** Path → git blob id the listing reports instead of the real one (non-LFS files). */
  wrongBlobId?: Record<string, string>;
  /** The first N revision-API calls answer 503. */
  apiFailures?: number;
  /** Imitate a mirror whose API omits `sha`, sizes and lfs fields. */
  bareListing?: boolean;
}

export interface RecordedRequest {
  server: "hub" | "cdn";
  method: string;
  path: string;
  authorization?: string;
  range?: string;
}

export interface FakeHub {
  endpoint: string;
  cdn: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export function gitBlobSha1(bytes: Uint8Array): string {
  return createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
}

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`))
  );
}

export async function startFakeHub(options: FakeHubOptions): Promise<FakeHub> {
  const requests: RecordedRequest[] = [];
  const byPath = new Map(options.files.map((file) => [file.path, file]));
  const revisions = new Set([options.commit, ...(options.revisions ?? ["main"])]);
  const drops = new Map(Object.entries(options.dropAfter ?? {}).map(([path, drop]) => [path, { ...drop }]));
  const stalls = new Map(Object.entries(options.stallAt ?? {}).map(([path, stall]) => [path, { ...stall }]));
  const reportedSha = (file: FakeFile) => options.wrongSha256?.[file.path] ?? sha256Hex(file.content);
  let cdnUrl = "";
  let apiFailures = options.apiFailures ?? 0;

  const record = (server: "hub" | "cdn", req: http.IncomingMessage) =>
    requests.push({
      server,
      method: req.method ?? "GET",
      path: decodeURIComponent((req.url ?? "").split("?")[0]!),
      authorization: req.headers.authorization,
      range: req.headers.range,
    });

  const serveContent = (req: http.IncomingMessage, res: http.ServerResponse, file: FakeFile, headers: Record<string, string>) => {
    const total = file.content.length;
    const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const honour = match !== null && !(options.ignoreRange ?? []).includes(file.path);
    const start = honour ? Number(match![1]) : 0;
    if (honour && start >= total) {
      res.writeHead(416, { "content-range": `bytes */${total}` }).end();
      return;
    }
    const body = file.content.subarray(start);
    res.writeHead(honour ? 206 : 200, {
      ...headers,
      "content-length": String(body.length),
      ...(honour ? { "content-range": `bytes ${start}-${total - 1}/${total}` } : {}),
    });
    if (req.method === "HEAD") return void res.end();
    const drop = drops.get(file.path);
    const cut = drop === undefined ? -1 : drop.bytes - start;
    if (drop !== undefined && drop.times > 0 && cut >= 0 && cut < body.length) {
      drop.times--;
      res.write(body.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 5));
      return;
    }
    const stall = stalls.get(file.path);
    const pause = stall === undefined ? -1 : stall.bytes - start;
    if (stall !== undefined && stall.times > 0 && pause >= 0 && pause < body.length) {
      stall.times--;
      res.write(body.subarray(0, pause));
      return;
    }
    res.end(body);
  };

  const hub = http.createServer((req, res) => {
    record("hub", req);
    const url = new URL(req.url ?? "/", "http://hub");
    const repoPrefix = `/${options.org}/${options.name}/`;
    const authorized = options.token === undefined || req.headers.authorization === `Bearer ${options.token}`;
    if (options.gated) return void res.writeHead(403, { "x-error-code": "GatedRepo", "x-error-message": "Access restricted" }).end();
    const api = /^\/api\/models\/([^/]+)\/([^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
    if (api !== null && apiFailures > 0) {
      apiFailures--;
      return void res.writeHead(503).end("try again");
    }
    if (api !== null) {
      const [, org, name, revision] = api;
      if (!authorized || org !== options.org || name !== options.name) {
        return void res.writeHead(authorized ? 404 : 401, { "x-error-code": "RepoNotFound" }).end("Repository not found");
      }
      if (!revisions.has(decodeURIComponent(revision!))) {
        return void res.writeHead(404, { "x-error-code": "RevisionNotFound" }).end("Invalid rev id");
      }
      const siblings = [
        ...options.files.map((file) =>
          options.bareListing ? { rfilename: file.path } : {
            rfilename: file.path,
            size: file.content.length,
            blobId: file.lfs ? "0".repeat(40) : options.wrongBlobId?.[file.path] ?? gitBlobSha1(file.content),
            ...(file.lfs ? { lfs: { sha256: reportedSha(file), size: file.content.length, pointerSize: 130 } } : {}),
          }
        ),
        ...(options.extraNames ?? []).map((rfilename) => ({ rfilename })),
      ];
      res.writeHead(200, { "content-type": "application/json" });
      return void res.end(
        JSON.stringify(options.bareListing ? { siblings } : { id: `${options.org}/${options.name}`, sha: options.commit, siblings }),
      );
    }
    if (url.pathname.startsWith(repoPrefix + "resolve/")) {
      if (!authorized) return void res.writeHead(401, { "x-error-code": "RepoNotFound" }).end();
      const rest = url.pathname.slice((repoPrefix + "resolve/").length);
      const slash = rest.indexOf("/");
      const revision = decodeURIComponent(rest.slice(0, slash));
      const path = rest.slice(slash + 1).split("/").map(decodeURIComponent).join("/");
      if (!revisions.has(revision)) return void res.writeHead(404, { "x-error-code": "RevisionNotFound" }).end();
      const file = byPath.get(path);
      if (file === undefined) return void res.writeHead(404, { "x-error-code": "EntryNotFound" }).end();
      const common = { "x-repo-commit": options.commit };
      if (file.lfs) {
        return void res.writeHead(302, {
          ...common,
          location: `${cdnUrl}/cdn/${encodeURIComponent(path)}?X-Amz-Signature=secret`,
          "x-linked-etag": `"${reportedSha(file)}"`,
          "x-linked-size": String(file.content.length),
          etag: `"${gitBlobSha1(file.content)}"`,
        }).end();
      }
      // Small files: the hub redirects to its own resolve cache with a relative Location.
      return void res.writeHead(307, { ...common, location: `/api/resolve-cache/${encodeURIComponent(path)}` }).end();
    }
    const cached = /^\/api\/resolve-cache\/(.+)$/.exec(url.pathname);
    if (cached !== null) {
      const file = byPath.get(decodeURIComponent(cached[1]!));
      if (file === undefined) return void res.writeHead(404).end();
      return serveContent(req, res, file, { etag: `"${gitBlobSha1(file.content)}"` });
    }
    res.writeHead(404).end();
  });

  const cdn = http.createServer((req, res) => {
    record("cdn", req);
    const match = /^\/cdn\/(.+)$/.exec(new URL(req.url ?? "/", "http://cdn").pathname);
    const file = match === null ? undefined : byPath.get(decodeURIComponent(match[1]!));
    if (file === undefined) return void res.writeHead(404).end();
    serveContent(req, res, file, {});
  });

  const endpoint = await listen(hub);
  cdnUrl = await listen(cdn);
  return {
    endpoint,
    cdn: cdnUrl,
    requests,
    close: async () => {
      hub.closeAllConnections();
      cdn.closeAllConnections();
      await Promise.all([new Promise((r) => hub.close(r)), new Promise((r) => cdn.close(r))]);
    },
  };
}

/** Deterministic bytes for fake weights. */
export function bytesOf(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = state & 0xff;
  }
  return out;
}
