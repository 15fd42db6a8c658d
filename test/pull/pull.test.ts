/**
 * `pullModel` against a local imitation of the Hub (fake-hub.ts): file selection, cache
 * layout and refs, redirects to a CDN on another origin, HF_TOKEN handling, resume after a
 * dropped connection or from an existing `.incomplete` file, integrity checks, refusal of
 * hostile file names and the mapping of hub answers to typed errors. No test leaves
 * 127.0.0.1.
 */
import { describe, expect, test } from "bun:test";
import { promises as fs } from "node:fs";
import path from "node:path";
import { CrumbError, InvalidArgumentError, UnsupportedModelError } from "../../runtime/errors.ts";
import { HubError, IntegrityError } from "../../quantizer/pull/errors.ts";
import { pullModel } from "../../quantizer/pull/pull.ts";
import { bytesOf, type FakeFile } from "./fake-hub.ts";
import { hubSessions } from "./hub-session.ts";

const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const text = (value: string) => new TextEncoder().encode(value);

const SHARD1 = bytesOf(40_000, 1);
const SHARD2 = bytesOf(30_000, 2);
const FILES: FakeFile[] = [
  { path: "config.json", content: text('{"model_type":"llama"}') },
  { path: "generation_config.json", content: text('{"eos_token_id":2}') },
  { path: "tokenizer.json", content: text('{"model":{"type":"BPE"}}') },
  { path: "tokenizer_config.json", content: text('{"chat_template":"{{x}}"}') },
  { path: "tokenizer.model", content: bytesOf(100, 9) },
  { path: "README.md", content: text("# readme") },
  { path: "pytorch_model.bin", content: bytesOf(500, 3), lfs: true },
  { path: "consolidated.safetensors", content: bytesOf(700, 4), lfs: true },
  {
    path: "model.safetensors.index.json",
    content: text(JSON.stringify({ weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" } })),
  },
  { path: "model-00001-of-00002.safetensors", content: SHARD1, lfs: true },
  { path: "model-00002-of-00002.safetensors", content: SHARD2, lfs: true },
];
const WANTED = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "model.safetensors.index.json",
  "model-00001-of-00002.safetensors",
  "model-00002-of-00002.safetensors",
];

const setUp = hubSessions({ org: "acme", name: "tiny-llama", commit: COMMIT, files: FILES }, "crumb-pull-");

async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listTree(full)).map((name) => `${entry.name}/${name}`));
    else out.push(entry.name);
  }
  return out.sort();
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected the promise to reject");
}

const contentOf = (name: string) => FILES.find((file) => file.path === name)!.content;

describe("pullModel", () => {
  test("downloads exactly the files crumb needs into {org}--{name}/{commit} and records the ref", async () => {
    const { hub, options, cache } = await setUp();
    const result = await pullModel("acme/tiny-llama", options);
    expect(result.dir).toBe(path.join(cache, "acme--tiny-llama", COMMIT));
    expect(result.commit).toBe(COMMIT);
    expect(await listTree(result.dir)).toEqual([...WANTED].sort());
    for (const name of WANTED) expect(new Uint8Array(await fs.readFile(path.join(result.dir, name)))).toEqual(contentOf(name));
    expect(await fs.readFile(path.join(cache, "acme--tiny-llama", "refs", "main"), "utf8")).toBe(COMMIT);
    expect(result.files.every((file) => file.status === "downloaded")).toBe(true);
    // Files are fetched at the commit, LFS ones through the CDN (absolute redirect), small ones via a relative one.
    const resolves = hub.requests.filter((r) => r.path.includes("/resolve/"));
    expect(resolves.every((r) => r.path.includes(`/resolve/${COMMIT}/`))).toBe(true);
    expect(hub.requests.filter((r) => r.server === "cdn").map((r) => r.path).sort()).toEqual([
      "/cdn/model-00001-of-00002.safetensors",
      "/cdn/model-00002-of-00002.safetensors",
    ]);
    expect(hub.requests.some((r) => r.path === "/api/resolve-cache/config.json")).toBe(true);
  });

  test("a second pull skips complete files and makes no file requests", async () => {
    const { hub, options } = await setUp();
    await pullModel("acme/tiny-llama", options);
    const before = hub.requests.length;
    const again = await pullModel("acme/tiny-llama", options);
    expect(again.files.map((file) => file.status)).toEqual(WANTED.map(() => "cached"));
    expect(hub.requests.slice(before).map((r) => r.path)).toEqual([`/api/models/acme/tiny-llama/revision/main`]);
  });

  test("sends HF_TOKEN as a Bearer token to the hub but never to the CDN", async () => {
    const { hub, options } = await setUp({ token: "hf_secret123" });
    await pullModel("acme/tiny-llama", options);
    const hubRequests = hub.requests.filter((r) => r.server === "hub");
    const cdnRequests = hub.requests.filter((r) => r.server === "cdn");
    expect(hubRequests.length).toBeGreaterThan(0);
    expect(hubRequests.every((r) => r.authorization === "Bearer hf_secret123")).toBe(true);
    expect(cdnRequests.length).toBe(2);
    expect(cdnRequests.every((r) => r.authorization === undefined)).toBe(true);
  });

  test("tokenizer.model is fetched only when there is no tokenizer.json; without an index every top-level safetensors", async () => {
    const files = FILES.filter((file) => !["tokenizer.json", "model.safetensors.index.json"].includes(file.path));
    const { options } = await setUp({ files });
    const result = await pullModel("acme/tiny-llama", options);
    expect(result.files.map((file) => file.path).sort()).toEqual([
      "config.json",
      "consolidated.safetensors",
      "generation_config.json",
      "model-00001-of-00002.safetensors",
      "model-00002-of-00002.safetensors",
      "tokenizer.model",
      "tokenizer_config.json",
    ]);
  });

  test("a connection dropped mid-file is retried with Range from where it stopped", async () => {
    const retries: string[] = [];
    const { hub, options } = await setUp({ dropAfter: { "model-00001-of-00002.safetensors": { bytes: 12_345, times: 1 } } });
    const result = await pullModel("acme/tiny-llama", {
      ...options,
      progress: { ...silent, retry: (file, attempt) => void retries.push(`${file}#${attempt}`) },
    });
    expect(new Uint8Array(await fs.readFile(path.join(result.dir, "model-00001-of-00002.safetensors")))).toEqual(SHARD1);
    const cdn = hub.requests.filter((r) => r.path === "/cdn/model-00001-of-00002.safetensors");
    expect(cdn.length).toBe(2);
    expect(cdn[0].range).toBeUndefined();
    // The server sent 12,345 bytes before dropping; under load the client may have received
    // fewer of them before the reset, so it resumes from where its file actually ends.
    const resumedFrom = Number(/^bytes=(\d+)-$/.exec(cdn[1].range ?? "")?.[1]);
    expect(resumedFrom).toBeGreaterThan(0);
    expect(resumedFrom).toBeLessThanOrEqual(12_345);
    expect(retries).toEqual(["model-00001-of-00002.safetensors#1"]);
  });

  test("a connection that stalls mid-file is abandoned after the idle timeout and resumed", async () => {
    const { hub, options } = await setUp({ stallAt: { "model-00002-of-00002.safetensors": { bytes: 7_000, times: 1 } } });
    const result = await pullModel("acme/tiny-llama", { ...options, idleTimeoutMs: 400 });
    expect(new Uint8Array(await fs.readFile(path.join(result.dir, "model-00002-of-00002.safetensors")))).toEqual(SHARD2);
    const cdn = hub.requests.filter((r) => r.path === "/cdn/model-00002-of-00002.safetensors");
    expect(cdn.map((r) => r.range)).toEqual([undefined, "bytes=7000-"]);
  });

  test("aborting (Ctrl-C) stops with an `aborted` error and keeps the partial file for the next run", async () => {
    const { options, cache } = await setUp({ stallAt: { "model-00001-of-00002.safetensors": { bytes: 5_000, times: 1 } } });
    const controller = new AbortController();
    const progress = {
      ...silent,
      fileProgress: (file: string, done: number) => {
        if (file === "model-00001-of-00002.safetensors" && done >= 5_000) controller.abort();
      },
    };
    const error = await rejection(pullModel("acme/tiny-llama", { ...options, signal: controller.signal, progress }));
    expect((error as HubError).code).toBe("aborted");
    expect(error.message).toContain("run pull again to resume");
    const part = path.join(cache, "acme--tiny-llama", COMMIT, "model-00001-of-00002.safetensors.incomplete");
    expect((await fs.stat(part)).size).toBe(5_000);
    const resumed = await pullModel("acme/tiny-llama", options);
    expect(new Uint8Array(await fs.readFile(path.join(resumed.dir, "model-00001-of-00002.safetensors")))).toEqual(SHARD1);
  });

  test("an existing .incomplete file is resumed with a Range request", async () => {
    const { hub, options, cache } = await setUp();
    const dir = path.join(cache, "acme--tiny-llama", COMMIT);
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, "model-00002-of-00002.safetensors.incomplete"), SHARD2.subarray(0, 10_000));
    const result = await pullModel("acme/tiny-llama", options);
    expect(new Uint8Array(await fs.readFile(path.join(dir, "model-00002-of-00002.safetensors")))).toEqual(SHARD2);
    expect(hub.requests.find((r) => r.path === "/cdn/model-00002-of-00002.safetensors")?.range).toBe("bytes=10000-");
    expect(await listTree(dir)).toEqual([...WANTED].sort());
    expect(result.files.find((file) => file.path === "model-00002-of-00002.safetensors")?.status).toBe("downloaded");
  });

  test("a server that ignores Range (200) makes the download restart from zero", async () => {
    const { options, cache } = await setUp({ ignoreRange: ["model-00002-of-00002.safetensors"] });
    const dir = path.join(cache, "acme--tiny-llama", COMMIT);
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, "model-00002-of-00002.safetensors.incomplete"), SHARD2.subarray(0, 10_000));
    await pullModel("acme/tiny-llama", options);
    expect(new Uint8Array(await fs.readFile(path.join(dir, "model-00002-of-00002.safetensors")))).toEqual(SHARD2);
  });

  test("gives up after the allowed retries and keeps the partial file for a later resume", async () => {
    const { options, cache } = await setUp({ dropAfter: { "model-00001-of-00002.safetensors": { bytes: 100, times: 99 } } });
    // Every attempt after the first resumes at byte 100 and is cut again without progress.
    const error = await rejection(pullModel("acme/tiny-llama", { ...options, retries: 2 }));
    expect(error).toBeInstanceOf(HubError);
    expect((error as HubError).code).toBe("network_error");
    expect(error.message).toContain("model-00001-of-00002.safetensors");
    const part = path.join(cache, "acme--tiny-llama", COMMIT, "model-00001-of-00002.safetensors.incomplete");
    expect((await fs.stat(part)).size).toBeGreaterThan(0);
  });

  test("a sha256 mismatch deletes the file and names both hashes", async () => {
    const wrong = "f".repeat(64);
    const { options, cache } = await setUp({ wrongSha256: { "model-00002-of-00002.safetensors": wrong } });
    const error = await rejection(pullModel("acme/tiny-llama", options));
    expect(error).toBeInstanceOf(IntegrityError);
    const integrity = error as IntegrityError;
    expect(integrity.file).toBe("model-00002-of-00002.safetensors");
    expect(integrity.expected).toBe(wrong);
    expect(integrity.message).toContain(wrong);
    expect(integrity.message).toContain(integrity.actual);
    const dir = path.join(cache, "acme--tiny-llama", COMMIT);
    expect(await listTree(dir)).not.toContain("model-00002-of-00002.safetensors");
    expect(await listTree(dir)).not.toContain("model-00002-of-00002.safetensors.incomplete");
  });

  test("a mirror without sizes, hashes or sha in its listing: commit from X-Repo-Commit, sizes from headers", async () => {
    const { options } = await setUp({ bareListing: true });
    const result = await pullModel("acme/tiny-llama", options);
    expect(result.commit).toBe(COMMIT);
    expect(await listTree(result.dir)).toEqual([...WANTED].sort());
    for (const name of WANTED) expect(new Uint8Array(await fs.readFile(path.join(result.dir, name)))).toEqual(contentOf(name));
  });

  test("a mirror without hashes in its listing still checks sha256 from X-Linked-Etag", async () => {
    const { options } = await setUp({ bareListing: true, wrongSha256: { "model-00001-of-00002.safetensors": "0".repeat(64) } });
    const error = await rejection(pullModel("acme/tiny-llama", options));
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as IntegrityError).check).toBe("sha256");
  });

  test("a small (non-LFS) file whose git blob id differs from the listing is rejected", async () => {
    const { options, cache } = await setUp({ wrongBlobId: { "tokenizer.json": "a".repeat(40) } });
    const error = await rejection(pullModel("acme/tiny-llama", options));
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as IntegrityError).check).toBe("git-sha1");
    expect(error.message).toContain("a".repeat(40));
    expect(await listTree(path.join(cache, "acme--tiny-llama", COMMIT))).not.toContain("tokenizer.json");
  });

  for (const hostile of ["../evil.txt", "/etc/passwd", "a\\..\\b.json", "dir//x.json"]) {
    test(`refuses the hostile file name ${JSON.stringify(hostile)} and writes nothing`, async () => {
      const { options, cache } = await setUp({ extraNames: [hostile] });
      const error = await rejection(pullModel("acme/tiny-llama", options));
      expect(error).toBeInstanceOf(HubError);
      expect((error as HubError).code).toBe("unsafe_path");
      expect(error.message).toContain(JSON.stringify(hostile));
      expect(await listTree(cache)).toEqual([]);
    });
  }

  test("refuses an index that names a shard outside the repository", async () => {
    const files = FILES.map((file) =>
      file.path === "model.safetensors.index.json"
        ? { ...file, content: text(JSON.stringify({ weight_map: { a: "../../evil.safetensors" } })) }
        : file
    );
    const { options } = await setUp({ files });
    const error = await rejection(pullModel("acme/tiny-llama", options));
    expect((error as HubError).code).toBe("unsafe_path");
  });

  test("401 without a token says to set HF_TOKEN; a rejected token is never printed", async () => {
    const { options } = await setUp({ token: "hf_right" });
    const missing = await rejection(pullModel("acme/tiny-llama", { ...options, env: { ...options.env, HF_TOKEN: undefined } }));
    expect((missing as HubError).code).toBe("hub_auth_required");
    expect((missing as HubError).status).toBe(401);
    expect(missing.message).toContain("HF_TOKEN");
    const wrong = await rejection(pullModel("acme/tiny-llama", { ...options, env: { ...options.env, HF_TOKEN: "hf_wrong_value" } }));
    expect((wrong as HubError).code).toBe("hub_auth_required");
    expect(wrong.message).not.toContain("hf_wrong_value");
  });

  test("a gated repository (403) names the repository page and HF_TOKEN", async () => {
    const { hub, options } = await setUp({ gated: true });
    const error = await rejection(pullModel("acme/tiny-llama", options));
    expect((error as HubError).code).toBe("hub_auth_required");
    expect(error.message).toContain(`${hub.endpoint}/acme/tiny-llama`);
    expect(error.message).toContain("HF_TOKEN");
  });

  test("404s name the missing repository or revision", async () => {
    const { options } = await setUp();
    const repo = await rejection(pullModel("acme/missing-model", options));
    expect((repo as HubError).code).toBe("hub_not_found");
    expect(repo.message).toContain("acme/missing-model");
    const revision = await rejection(pullModel("acme/tiny-llama", { ...options, revision: "v9" }));
    expect((revision as HubError).code).toBe("hub_not_found");
    expect(revision.message).toContain('revision "v9"');
  });

  test("the listing is retried after a 503, and a hub that keeps failing names the status", async () => {
    const { hub, options } = await setUp({ apiFailures: 2 });
    const result = await pullModel("acme/tiny-llama", options);
    expect(result.commit).toBe(COMMIT);
    expect(hub.requests.filter((r) => r.path.startsWith("/api/models/")).length).toBe(3);
    const { options: failing } = await setUp({ apiFailures: 3 });
    const error = await rejection(pullModel("acme/tiny-llama", failing));
    expect((error as HubError).code).toBe("download_error");
    expect((error as HubError).status).toBe(503);
    expect(error.message).toContain("HTTP 503");
  });

  test("an unreachable endpoint names it and mentions HF_ENDPOINT", async () => {
    const { hub, options } = await setUp();
    const endpoint = hub.endpoint;
    await hub.close();
    const error = await rejection(pullModel("acme/tiny-llama", { ...options, env: { ...options.env, HF_ENDPOINT: endpoint } }));
    expect((error as HubError).code).toBe("network_error");
    expect(error.message).toContain(endpoint);
    expect(error.message).toContain("HF_ENDPOINT");
  });

  test("a repository without config.json or safetensors is refused before downloading", async () => {
    const { hub, options } = await setUp({ files: FILES.filter((file) => ["config.json", "pytorch_model.bin"].includes(file.path)) });
    const noWeights = await rejection(pullModel("acme/tiny-llama", options));
    expect(noWeights).toBeInstanceOf(UnsupportedModelError);
    expect(noWeights.message).toContain("pytorch_model.bin");
    await hub.close();
    const { hub: second, options: other } = await setUp({ files: FILES.filter((file) => file.path !== "config.json") });
    expect(await rejection(pullModel("acme/tiny-llama", other))).toBeInstanceOf(UnsupportedModelError);
    expect(second.requests.filter((r) => r.path.includes("/resolve/"))).toEqual([]);
  });

  test("HF_HUB_OFFLINE=1 answers from the cache through the refs file, without the network", async () => {
    const { hub, options } = await setUp();
    const online = await pullModel("acme/tiny-llama", options);
    await hub.close();
    const offline = await pullModel("acme/tiny-llama", { ...options, env: { ...options.env, HF_HUB_OFFLINE: "1" } });
    expect(offline.dir).toBe(online.dir);
    expect(offline.files.map((file) => file.path)).toEqual([...WANTED].sort((a, b) => a.localeCompare(b)));
    const missing = await rejection(pullModel("acme/tiny-llama", { ...options, revision: "v2", offline: true }));
    expect((missing as CrumbError).code).toBe("not_cached");
  });

  test("invalid repository ids and revisions are refused before any request", async () => {
    const { hub, options } = await setUp();
    for (const id of ["tiny-llama", "acme/../x", "acme/a b", "/acme/x", "acme/x/y", "acme--x/y"]) {
      expect(await rejection(pullModel(id, options))).toBeInstanceOf(InvalidArgumentError);
    }
    for (const revision of ["../main", "a//b", "main\n", "/main", "x..y"]) {
      expect(await rejection(pullModel("acme/tiny-llama", { ...options, revision }))).toBeInstanceOf(InvalidArgumentError);
    }
    expect(hub.requests).toEqual([]);
  });
});

const silent = {
  begin() {},
  fileStart() {},
  fileProgress() {},
  fileEnd() {},
  retry() {},
  note() {},
  end() {},
};
