/**
 * Pulling GGUF and llama2.c files against the local imitation of the Hub (fake-hub.ts):
 * `org/repo:Q4_K_M` (the llama.cpp `-hf` / Ollama `hf.co/...` tag convention, matched
 * case-insensitively), the hf.co and https://huggingface.co spellings, split GGUF sets pulled
 * whole, resume and sha256 checks on the chosen file, the error that lists the available
 * quants, `--include` globs, a llama2.c .bin fetched with its tokenizer, offline answers from
 * the cache, and the CLI printing the model file. No test leaves 127.0.0.1.
 */
import { describe, expect, test } from "bun:test";
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { InvalidArgumentError } from "../../runtime/errors.ts";
import { HubError, IntegrityError } from "../../quantizer/pull/errors.ts";
import { pullModel } from "../../quantizer/pull/pull.ts";
import { parsePullSpec } from "../../quantizer/pull/spec.ts";
import { globToRegExp } from "../../quantizer/pull/select-include.ts";
import { bytesOf, type FakeFile, type FakeHub } from "./fake-hub.ts";
import { hubSessions } from "./hub-session.ts";

const COMMIT = "fedcba9876543210fedcba9876543210fedcba98";
const text = (value: string) => new TextEncoder().encode(value);
const gguf = (p: string, size: number, seed: number): FakeFile => ({ path: p, content: bytesOf(size, seed), lfs: true });

const GGUF_FILES: FakeFile[] = [
  { path: "README.md", content: text("# tiny gguf") },
  gguf("Tiny-Llama-Q4_K_M.gguf", 30_000, 11),
  gguf("Tiny-Llama-Q8_0.gguf", 20_000, 12),
  gguf("Tiny-Llama-f16.gguf", 9_000, 13),
  gguf("Tiny-Llama-IQ4_XS.gguf", 8_000, 14),
  gguf("mmproj-Tiny-Llama-f16.gguf", 5_000, 15),
  gguf("Q6_K/Tiny-Llama-Q6_K-00001-of-00002.gguf", 7_000, 16),
  gguf("Q6_K/Tiny-Llama-Q6_K-00002-of-00002.gguf", 6_000, 17),
];
const TINYLLAMAS: FakeFile[] = [
  { path: "README.md", content: text("# tinyllamas") },
  { path: "stories15M.bin", content: bytesOf(15_000, 21), lfs: true },
  { path: "stories15M.pt", content: bytesOf(16_000, 22), lfs: true },
  { path: "stories42M.bin", content: bytesOf(42_000, 23), lfs: true },
  { path: "tokenizer.bin", content: bytesOf(4_000, 24), lfs: true },
  { path: "stories260K/stories260K.bin", content: bytesOf(2_600, 25), lfs: true },
  { path: "stories260K/tok512.bin", content: bytesOf(512, 26), lfs: true },
  { path: "stories260K/tok512.model", content: bytesOf(512, 27), lfs: true },
];
const contentOf = (files: FakeFile[], name: string) => files.find((f) => f.path === name)!.content;

const setUp = hubSessions({ org: "acme", name: "tiny-gguf", commit: COMMIT, files: GGUF_FILES }, "crumb-pull-gguf-");

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected the promise to reject");
}

const fileRequests = (hub: FakeHub) =>
  hub.requests.filter((r) => r.path.includes("/resolve/")).map((r) => r.path.replace(`/acme/${hubName(hub)}/resolve/${COMMIT}/`, ""));
const hubName = (hub: FakeHub) => (hub.requests.find((r) => r.path.startsWith("/api/models/"))?.path.split("/")[4] ?? "");

describe("pull specs", () => {
  test("org/repo:quant, hf.co/, huggingface.co URLs and page URLs parse to the same repository", () => {
    expect(parsePullSpec("acme/tiny-gguf:Q4_K_M")).toEqual({
      repo: { org: "acme", name: "tiny-gguf", id: "acme/tiny-gguf" },
      quant: "Q4_K_M",
    });
    for (
      const spelling of [
        "hf.co/acme/tiny-gguf:q4_k_m",
        "https://hf.co/acme/tiny-gguf:q4_k_m",
        "https://huggingface.co/acme/tiny-gguf:q4_k_m",
      ]
    ) {
      expect(parsePullSpec(spelling)).toMatchObject({ repo: { id: "acme/tiny-gguf" }, quant: "q4_k_m" });
    }
    expect(parsePullSpec("https://huggingface.co/acme/tiny-gguf/")).toEqual({
      repo: { org: "acme", name: "tiny-gguf", id: "acme/tiny-gguf" },
      quant: undefined,
    });
    expect(parsePullSpec("https://huggingface.co/acme/tiny-gguf/tree/v2")).toMatchObject({ revision: "v2" });
    expect(parsePullSpec("https://huggingface.co/acme/tiny-gguf/blob/main/Q6_K/a%20b.gguf")).toMatchObject({
      revision: "main",
      file: "Q6_K/a b.gguf",
    });
  });

  test("malformed spellings are refused naming the value and the accepted forms", () => {
    for (
      const bad of ["acme", "acme/tiny:Q4 K", "https://example.com/acme/tiny", "acme/tiny/extra:Q4_K_M", "hf.co/acme/tiny/tree/main:Q4_K_M"]
    ) {
      const error = (() => {
        try {
          parsePullSpec(bad);
        } catch (e) {
          return e as Error;
        }
        throw new Error(`${bad} was accepted`);
      })();
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error.message).toContain(JSON.stringify(bad));
    }
  });

  test("--include globs follow fnmatch: * crosses folders, ? and [..] match one character", () => {
    expect(globToRegExp("*Q4_K_M*.gguf").test("sub/dir/x-Q4_K_M.gguf")).toBe(true);
    expect(globToRegExp("stories15M.bin").test("stories15M.bin")).toBe(true);
    expect(globToRegExp("stories15M.bin").test("stories15MXbin")).toBe(false);
    expect(globToRegExp("stories?5M.bin").test("stories15M.bin")).toBe(true);
    expect(globToRegExp("*-0000[12]-of-*").test("a-00002-of-00003.gguf")).toBe(true);
    expect(globToRegExp("*-0000[!12]-of-*").test("a-00002-of-00003.gguf")).toBe(false);
    expect(globToRegExp("*.GGUF").test("a.gguf")).toBe(false);
  });
});

describe("pull <org/repo>:<quant>", () => {
  test("picks the one file whose quant matches case-insensitively, says so, and returns it as the model file", async () => {
    const { hub, options, cache } = await setUp();
    const notes: string[] = [];
    const result = await pullModel("acme/tiny-gguf:q4_k_m", { ...options, progress: { ...silent, note: (t) => void notes.push(t) } });
    const dir = path.join(cache, "acme--tiny-gguf", COMMIT);
    expect(result.dir).toBe(dir);
    expect(result.primary).toBe(path.join(dir, "Tiny-Llama-Q4_K_M.gguf"));
    expect(result.files.map((f) => f.path)).toEqual(["Tiny-Llama-Q4_K_M.gguf"]);
    expect(new Uint8Array(await fs.readFile(result.primary!))).toEqual(contentOf(GGUF_FILES, "Tiny-Llama-Q4_K_M.gguf"));
    expect(notes).toEqual([":q4_k_m chose: Tiny-Llama-Q4_K_M.gguf"]);
    expect(fileRequests(hub)).toEqual(["Tiny-Llama-Q4_K_M.gguf"]);
    // The other spellings name the same file, now cached: no further file requests.
    for (const spelling of ["hf.co/acme/tiny-gguf:Q4_K_M", "https://huggingface.co/acme/tiny-gguf:Q4_K_M"]) {
      const again = await pullModel(spelling, options);
      expect(again.primary).toBe(result.primary);
      expect(again.files.map((f) => f.status)).toEqual(["cached"]);
    }
    expect(fileRequests(hub)).toEqual(["Tiny-Llama-Q4_K_M.gguf"]);
  });

  test("a split GGUF is pulled whole and part 1 is the model file", async () => {
    const { options } = await setUp();
    const result = await pullModel("acme/tiny-gguf:Q6_K", options);
    expect(result.files.map((f) => f.path)).toEqual([
      "Q6_K/Tiny-Llama-Q6_K-00001-of-00002.gguf",
      "Q6_K/Tiny-Llama-Q6_K-00002-of-00002.gguf",
    ]);
    expect(result.primary).toBe(path.join(result.dir, "Q6_K", "Tiny-Llama-Q6_K-00001-of-00002.gguf"));
    expect(result.notes[0]).toContain("split GGUF: 2 parts, all pulled");
    for (const f of result.files) {
      expect(new Uint8Array(await fs.readFile(path.join(result.dir, f.path)))).toEqual(contentOf(GGUF_FILES, f.path));
    }
  });

  test("a split set whose listing lacks a part is refused before downloading", async () => {
    const { hub, options } = await setUp({ files: GGUF_FILES.filter((f) => !f.path.includes("00002-of-00002")) });
    const error = await rejection(pullModel("acme/tiny-gguf:Q6_K", options));
    expect(error.message).toContain("lacks 1 of its parts");
    expect(fileRequests(hub)).toEqual([]);
  });

  test("an unknown quant lists the available ones (vision projectors excluded) and downloads nothing", async () => {
    const { hub, options } = await setUp();
    const error = await rejection(pullModel("acme/tiny-gguf:Q5_K_M", options));
    expect(error).toBeInstanceOf(HubError);
    expect((error as HubError).code).toBe("quant_not_found");
    expect(error.message).toContain('no GGUF for quant "Q5_K_M"; available: f16, IQ4_XS, Q4_K_M, Q6_K, Q8_0');
    expect(error.message).not.toContain("mmproj");
    expect(fileRequests(hub)).toEqual([]);
  });

  test("two files with the same quant are refused, naming both", async () => {
    const { options } = await setUp({ files: [...GGUF_FILES, gguf("Tiny-Llama-Chat-Q8_0.gguf", 100, 31)] });
    const error = await rejection(pullModel("acme/tiny-gguf:Q8_0", options));
    expect((error as HubError).code).toBe("quant_ambiguous");
    expect(error.message).toContain("Tiny-Llama-Q8_0.gguf, Tiny-Llama-Chat-Q8_0.gguf");
  });

  test("without a tag a GGUF repository gets Q4_K_M as llama.cpp does; without Q4_K_M the user must choose", async () => {
    const { options } = await setUp();
    const result = await pullModel("acme/tiny-gguf", options);
    expect(result.files.map((f) => f.path)).toEqual(["Tiny-Llama-Q4_K_M.gguf"]);
    expect(result.notes[0]).toContain("no quant tag given, so Q4_K_M as llama.cpp does");
    const { options: other } = await setUp({ files: GGUF_FILES.filter((f) => !f.path.includes("Q4_K_M")) });
    const error = await rejection(pullModel("acme/tiny-gguf", other));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.message).toContain("pull acme/tiny-gguf:<quant> with one of f16, IQ4_XS, Q6_K, Q8_0");
  });

  test("the chosen GGUF resumes after a dropped connection and is checked against its sha256", async () => {
    const { hub, options } = await setUp({ dropAfter: { "Tiny-Llama-Q8_0.gguf": { bytes: 9_000, times: 1 } } });
    const result = await pullModel("acme/tiny-gguf:Q8_0", options);
    expect(new Uint8Array(await fs.readFile(result.primary!))).toEqual(contentOf(GGUF_FILES, "Tiny-Llama-Q8_0.gguf"));
    const ranges = hub.requests.filter((r) => r.path === "/cdn/Tiny-Llama-Q8_0.gguf").map((r) => r.range);
    expect(ranges.length).toBe(2);
    expect(ranges[1]).toMatch(/^bytes=\d+-$/);

    const { options: bad } = await setUp({ wrongSha256: { "Tiny-Llama-f16.gguf": "0".repeat(64) } });
    const error = await rejection(pullModel("acme/tiny-gguf:F16", bad));
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as IntegrityError).file).toBe("Tiny-Llama-f16.gguf");
  });

  test("a Hub file URL pulls that one file at that revision", async () => {
    const { options } = await setUp();
    const result = await pullModel("https://huggingface.co/acme/tiny-gguf/blob/main/Tiny-Llama-IQ4_XS.gguf", options);
    expect(result.files.map((f) => f.path)).toEqual(["Tiny-Llama-IQ4_XS.gguf"]);
    expect(result.primary).toBe(path.join(result.dir, "Tiny-Llama-IQ4_XS.gguf"));
  });

  test("HF_HUB_OFFLINE=1 finds a pulled quant in the cache and refuses one that was never pulled", async () => {
    const { hub, options } = await setUp();
    const online = await pullModel("acme/tiny-gguf:Q4_K_M", options);
    await hub.close();
    const offline = { ...options, env: { ...options.env, HF_HUB_OFFLINE: "1" } };
    const cached = await pullModel("acme/tiny-gguf:q4_K_m", offline);
    expect(cached.primary).toBe(online.primary);
    expect(cached.files.map((f) => f.status)).toEqual(["cached"]);
    const error = await rejection(pullModel("acme/tiny-gguf:Q8_0", offline));
    expect((error as HubError).code).toBe("not_cached");
    expect(error.message).toContain("HF_HUB_OFFLINE");
  });
});

describe("pull --include", () => {
  test("fetches exactly the files a glob matches", async () => {
    const { hub, options } = await setUp();
    const result = await pullModel("acme/tiny-gguf", { ...options, include: ["*Q8_0*", "Q6_K/*"] });
    expect(result.files.map((f) => f.path).sort()).toEqual([
      "Q6_K/Tiny-Llama-Q6_K-00001-of-00002.gguf",
      "Q6_K/Tiny-Llama-Q6_K-00002-of-00002.gguf",
      "Tiny-Llama-Q8_0.gguf",
    ]);
    expect(result.primary).toBeUndefined(); // three model files: the directory is the answer
    expect(fileRequests(hub).sort()).toEqual(result.files.map((f) => f.path).sort());
    const none = await rejection(pullModel("acme/tiny-gguf", { ...options, include: ["*.safetensors"] }));
    expect(none.message).toContain("no file of acme/tiny-gguf matches --include '*.safetensors'");
    const both = await rejection(pullModel("acme/tiny-gguf:Q8_0", { ...options, include: ["*"] }));
    expect(both).toBeInstanceOf(InvalidArgumentError);
  });

  test("a llama2.c checkpoint comes with its tokenizer (same folder first), and a missing one is reported", async () => {
    const { options } = await setUp({ name: "tinyllamas", files: TINYLLAMAS });
    const notes: string[] = [];
    const progress = { ...silent, note: (t: string) => void notes.push(t) };
    const top = await pullModel("acme/tinyllamas", { ...options, include: ["stories15M.bin"], progress });
    expect(top.files.map((f) => f.path)).toEqual(["stories15M.bin", "tokenizer.bin"]);
    expect(top.primary).toBe(path.join(top.dir, "stories15M.bin"));
    expect(notes).toEqual(["also pulling tokenizer.bin, the llama2.c tokenizer for stories15M.bin (pass it with --tokenizer)"]);
    const nested = await pullModel("acme/tinyllamas", { ...options, include: ["stories260K/stories260K.bin"] });
    expect(nested.files.map((f) => f.path)).toEqual(["stories260K/stories260K.bin", "stories260K/tok512.bin"]);
    expect(new Uint8Array(await fs.readFile(path.join(nested.dir, "stories260K/tok512.bin")))).toEqual(
      contentOf(TINYLLAMAS, "stories260K/tok512.bin"),
    );

    const { options: bare } = await setUp({ name: "tinyllamas", files: TINYLLAMAS.filter((f) => f.path !== "tokenizer.bin") });
    const alone = await pullModel("acme/tinyllamas", { ...bare, include: ["stories42M.bin"] });
    expect(alone.files.map((f) => f.path)).toEqual(["stories42M.bin"]);
    expect(alone.notes[0]).toContain("has no llama2.c tokenizer (tokenizer.bin or tok*.bin) for stories42M.bin; pass one with --tokenizer");
  });
});

describe("pull CLI with a quant tag", () => {
  const CLI = fileURLToPath(new URL("../../quantizer/pull/cli.ts", import.meta.url));
  test("prints the chosen GGUF on stdout and the choice on stderr", async () => {
    const { hub, cache } = await setUp();
    const run = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          [CLI, ...args],
          { env: { PATH: process.env.PATH ?? "", HOME: cache, HF_ENDPOINT: hub.endpoint, CRUMB_CACHE: cache }, timeout: 20_000 },
          (error, stdout, stderr) => resolve({ code: error === null ? 0 : Number((error as { code?: number }).code ?? 1), stdout, stderr }),
        );
      });
    const ok = await run(["hf.co/acme/tiny-gguf:Q8_0"]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe(`${path.join(cache, "acme--tiny-gguf", COMMIT, "Tiny-Llama-Q8_0.gguf")}\n`);
    expect(ok.stderr).toContain(":Q8_0 chose: Tiny-Llama-Q8_0.gguf");
    const missing = await run(["acme/tiny-gguf:Q2_K"]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe("");
    expect(missing.stderr).toContain("available: f16, IQ4_XS, Q4_K_M, Q6_K, Q8_0");
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
