// `crumb serve` as users start it: a port in use and a host that does not resolve are one line
// and exit 1 (no stack trace) under Bun and Deno, before any model work; a model that fails to
// load is reported once; a model without a chat template answers /v1/chat/completions with
// ChatML (200), says so in /v1/models and in its start-up lines, with the ready line.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { haveFiles } from "../shared-data.ts";
import { BUN, commandFor, crumb, packedStories, REPO, type Runtime } from "./helpers.ts";

const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin");
let dir = "";
let model = "";
let taken: Server;
let takenPort = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "crumb-serve-cli-"));
  if (available) model = await packedStories(dir);
  taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
  takenPort = (taken.address() as { port: number }).port;
});
afterAll(() => {
  taken.close();
  rmSync(dir, { recursive: true, force: true });
});

const oneLine = (text: string) => text.endsWith("\n") && text.split("\n").length === 2;

describe.skipIf(!available)("crumb serve", () => {
  for (const runtime of ["bun", "deno"] as Runtime[]) {
    test(`under ${runtime}: a port in use and a bad host exit 1 with one line`, async () => {
      const inUse = await crumb(["serve", model, "--port", String(takenPort)], { runtime, timeoutMs: 30_000 });
      expect(inUse.code).toBe(1);
      expect(inUse.stderr).toBe(`crumb serve: cannot listen on 127.0.0.1:${takenPort}: the port is in use; stop the other server or choose another with --port (0 picks a free one)\n`);
      expect(inUse.stdout).toBe("");
      const badHost = await crumb(["serve", model, "--host", "no-such-host.invalid", "--port", "0"], { runtime, timeoutMs: 30_000 });
      expect(badHost.code).toBe(1);
      expect(badHost.stderr).toMatch(/^crumb serve: cannot listen on no-such-host\.invalid:0: host no-such-host\.invalid does not resolve; use an address of this machine/);
      expect(oneLine(badHost.stderr)).toBe(true);
    }, 60_000);
  }

  test("the API key is never printed: not by `bun run serve` (bunfig.toml keeps it quiet), not in errors", async () => {
    const r = spawnSync(BUN, ["run", "serve", model, "--api-key", "sekrit-key", "--port", "-1"], { cwd: REPO, encoding: "utf8", timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('crumb serve: --port must be an integer from 0 to 65535, got "-1"\n');
    expect(r.stdout + r.stderr).not.toContain("sekrit-key");
  }, 30_000);

  test("a model that cannot load is reported once, after the listening line, and the server exits 1", async () => {
    const broken = join(dir, "broken.q4");
    writeFileSync(broken, new Uint8Array([0x89, 0x43, 0x52, 0x55, 0x4d, 0x42, 0x0d, 0x0a, 1, 2, 3]));
    const r = await crumb(["serve", broken, "--port", "0"], { timeoutMs: 30_000 });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^crumb serve: listening on http:\/\/127\.0\.0\.1:\d+ /);
    expect(lines.slice(1).filter((l) => l.includes("broken.q4"))).toHaveLength(1);
    expect(lines).toHaveLength(2);
  }, 60_000);

  test("no chat template: ChatML, announced at start-up and in /v1/models; chat completions answer 200", async () => {
    const [command, ...args] = commandFor("bun", ["serve", model, "--port", "0", "--threads", "1", "--api-key", "sekrit-key"]);
    const child = spawn(command, args, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`not ready within 30 s:\n${stderr}`)), 30_000);
        const check = () => {
          const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
          if (match !== null && stderr.includes("ready:")) {
            clearTimeout(timer);
            resolve(match[1]);
          }
        };
        child.stderr.on("data", check);
        child.on("exit", (code) => reject(new Error(`exited with ${code}:\n${stderr}`)));
      });
      expect(stderr).toMatch(/ready: stories260K\.q4 \(llama\), wasm engine, 1 thread, kv f16 \(640 B\/token\), context 512, loaded in \d+ ms/);
      const headers = { "content-type": "application/json", authorization: "Bearer sekrit-key" };
      const models = await (await fetch(`${url}/v1/models`, { headers })).json() as { data: { meta: { chat_template: string } }[] };
      expect(models.data[0].meta.chat_template).toBe("chatml (fallback: the model ships none)");
      const response = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers,
        body: JSON.stringify({ messages: [{ role: "user", content: "Hi" }], max_tokens: 6, temperature: 0 }),
      });
      expect(response.status).toBe(200);
      const body = await response.json() as { choices: { message: { content: string } }[]; usage: { prompt_tokens: number } };
      expect(body.choices[0].message.content.length).toBeGreaterThan(0);
      // "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" in a 512-token vocabulary: many pieces.
      expect(body.usage.prompt_tokens).toBeGreaterThan(10);
      expect(stderr).toContain("crumb serve: note: stories260K.q4 ships no chat template: chats use ChatML");
      expect(stderr).not.toContain("sekrit-key");
    } finally {
      child.kill("SIGKILL");
    }
  }, 60_000);
});
