/**
 * `bun quantizer/pull/cli.ts` as a user runs it (what `bun run pull` calls): the snapshot
 * directory alone on stdout, one progress line per file on stderr when it is not a
 * terminal, and a one-line message with a non-zero exit for bad input. The hub is the
 * local imitation in fake-hub.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { bytesOf, type FakeHub, startFakeHub } from "./fake-hub.ts";

const CLI = fileURLToPath(new URL("../../quantizer/pull/cli.ts", import.meta.url));
const COMMIT = "89abcdef0123456789abcdef0123456789abcdef";
const WEIGHTS = bytesOf(20_000, 7);

let hub: FakeHub;
let cache: string;

beforeAll(async () => {
  hub = await startFakeHub({
    org: "acme",
    name: "cli-model",
    commit: COMMIT,
    files: [
      { path: "config.json", content: new TextEncoder().encode("{}") },
      { path: "tokenizer.json", content: new TextEncoder().encode('{"model":{}}') },
      { path: "model.safetensors", content: WEIGHTS, lfs: true },
    ],
  });
  cache = await fs.mkdtemp(path.join(os.tmpdir(), "crumb-pull-cli-"));
});

afterAll(async () => {
  await hub.close();
  await fs.rm(cache, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { PATH: process.env.PATH ?? "", HOME: cache, HF_ENDPOINT: hub.endpoint, CRUMB_CACHE: cache, ...env }, timeout: 20_000 },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : Number((error as { code?: number }).code ?? 1), stdout, stderr }),
    );
  });
}

/** `deno task pull` as deno.json defines it (its permissions), from the repository. */
function runDenoTask(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const repo = fileURLToPath(new URL("../../", import.meta.url));
  return new Promise((resolve) => {
    execFile(
      path.join(repo, "node_modules/.bin/deno"),
      ["task", "--quiet", "pull", ...args],
      { cwd: repo, env: { PATH: process.env.PATH ?? "", HOME: cache, HF_ENDPOINT: hub.endpoint, NO_COLOR: "1" }, timeout: 30_000 },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : Number((error as { code?: number }).code ?? 1), stdout, stderr }),
    );
  });
}

describe("pull CLI", () => {
  test("deno task pull works with the task's permissions (no os.homedir(), which needs --allow-sys)", async () => {
    const result = await runDenoTask(["acme/cli-model", "--quiet"]);
    expect(result.stderr).toBe("");
    expect(result).toEqual({
      code: 0,
      stdout: `${path.join(cache, ".cache", "crumb", "models", "acme--cli-model", COMMIT)}\n`,
      stderr: "",
    });
  }, 30_000);

  test("prints only the snapshot directory on stdout and one line per file on stderr", async () => {
    const result = await run(["acme/cli-model"]);
    expect(result.code).toBe(0);
    const dir = path.join(cache, "acme--cli-model", COMMIT);
    expect(result.stdout).toBe(`${dir}\n`);
    expect(result.stderr).toContain("pulling acme/cli-model at main (commit 89abcdef0123): 3 files");
    expect(result.stderr).toContain("[3/3] model.safetensors 19.5 KiB downloaded");
    expect(new Uint8Array(await fs.readFile(path.join(dir, "model.safetensors")))).toEqual(WEIGHTS);
    const quiet = await run(["acme/cli-model", "--revision", COMMIT, "--quiet"]);
    expect(quiet).toEqual({ code: 0, stdout: `${dir}\n`, stderr: "" });
  });

  test("usage errors exit 2 and a failed pull exits 1, each with one clear line and nothing on stdout", async () => {
    const badId = await run(["not-a-repo-id"]);
    expect(badId.code).toBe(2);
    expect(badId.stdout).toBe("");
    expect(badId.stderr).toMatch(/^crumb pull: "not-a-repo-id" is not a Hugging Face repository id/);
    const missing = await run(["acme/other"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("acme/other");
    const usage = await run([]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toBe("crumb pull: expected one repository, got 0 (see crumb pull --help)\n");
  });
});
