// crumb serve as users start it, in a subprocess: under Deno (`deno task serve` on a
// quantised stories260K, on the WASM engine) completing a chat request, and under Bun (runtime/cli.ts serve) finishing an in-flight stream on SIGTERM and
// exiting 0. Both bind 127.0.0.1 on a free port and print the URL they listen on.
import { describe, expect, test } from "bun:test";
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { haveFiles, modelPath } from "../shared-data.ts";
import { QWEN_TEMPLATE_PATH } from "./helpers.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importModel } from "../../runtime/import/index.ts";
import { writeCheckpointFile } from "../../runtime/format/file.ts";
import { headerFor, packModel } from "../fixtures/pack-model.ts";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin", QWEN_TEMPLATE_PATH);
const SERVE_ARGS = [
  "--chat-template",
  modelPath(QWEN_TEMPLATE_PATH),
  "--host",
  "127.0.0.1",
  "--port",
  "0",
];
const MODEL_ARGS = [modelPath("stories260K/stories260K.bin"), "--tokenizer", modelPath("stories260K/tok512.bin"), ...SERVE_ARGS];

/** stories260K packed at 4 bits (tokenizer inside), as `bun run quantize` would write it. */
async function quantisedStories(dir: string): Promise<string> {
  const source = await importModel(modelPath("stories260K/stories260K.bin"), { tokenizer: modelPath("stories260K/tok512.bin") });
  const path = join(dir, "stories260K.q4");
  await writeCheckpointFile(path, {
    header: headerFor(source),
    tensors: packModel(source, { kind: "bitplane", bits: 4, group: 32, scales: "zero-point" }, { kind: "q8", group: 32 }),
  });
  return path;
}

/** Starts the command and resolves with the URL it prints, or rejects with its output. */
function start(command: string, args: string[], detached = false): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn(command, args, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"], detached });
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL within 30 s:\n${output}`)), 30_000);
    const onData = (data: Buffer) => {
      output += data.toString();
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match !== null) {
        clearTimeout(timer);
        resolve({ child, url: match[1], output: () => output });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before listening:\n${output}`));
    });
  });
}

async function waitHealthy(url: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const status = await fetch(`${url}/health`).then((r) => r.status, () => 0);
    if (status === 200) return;
    await Bun.sleep(50);
  }
  throw new Error("server never became healthy");
}

const exitCode = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.on("exit", (code) => resolve(code));
  });

describe.skipIf(!available)("crumb serve in a subprocess", () => {
  test("under Deno: `deno task serve` on a quantised model completes a chat request", async () => {
    const dir = mkdtempSync(join(tmpdir(), "crumb-deno-serve-"));
    const model = await quantisedStories(dir);
    const { child, url } = await start(`${REPO}node_modules/.bin/deno`, ["task", "serve", model, "--threads", "2", ...SERVE_ARGS], true);
    try {
      await waitHealthy(url);
      const client = new OpenAI({ apiKey: "k", baseURL: `${url}/v1`, maxRetries: 0, timeout: 30_000 });
      const reply = await client.chat.completions.create({
        model: "m",
        messages: [{ role: "user", content: "Hi" }],
        max_tokens: 8,
        temperature: 0,
      });
      expect(reply.choices[0].message.content!.length).toBeGreaterThan(0);
      expect(reply.choices[0].finish_reason).toBe("length");
      // `deno task` runs the server as its child: signal the whole process group.
      process.kill(-child.pid!, "SIGTERM");
      expect(await exitCode(child)).toBe(0);
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, "SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test("under Bun: SIGTERM lets the running stream finish and exits 0", async () => {
    const { child, url, output } = await start(`${REPO}node_modules/.bin/bun`, ["runtime/cli.ts", "serve", ...MODEL_ARGS]);
    try {
      await waitHealthy(url);
      const response = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "Once", max_tokens: 200, stream: true, temperature: 0 }),
      });
      const reader = response.body!.getReader();
      const decoder = new TextDecoder();
      let text = decoder.decode((await reader.read()).value);
      child.kill("SIGTERM");
      for (let i = 0; i < 10_000; i++) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value);
      }
      expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);
      expect(text).toContain('"finish_reason":"length"');
      expect(await exitCode(child)).toBe(0);
      expect(output()).toContain("SIGTERM");
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  }, 60_000);
});
