// The single-file executable: `bun runtime/bin/build.ts --target linux-x64` builds crumb with
// the kernels and the pool worker embedded; the binary, run from an unrelated directory,
// serves a quantised stories260K and answers a completion.
import { describe, expect, test } from "bun:test";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importModel } from "../runtime/import/index.ts";
import { writeCheckpointFile } from "../runtime/format/file.ts";
import { headerFor, packModel } from "./fixtures/pack-model.ts";
import { haveFiles, modelPath } from "./shared-data.ts";

const REPO = new URL("..", import.meta.url).pathname;
const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin");

function listening(child: ChildProcess): Promise<string> {
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL within 30 s:\n${output}`)), 30_000);
    const onData = (data: Buffer) => {
      output += data.toString();
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match !== null) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("exit", (code) => reject(new Error(`exited with ${code}:\n${output}`)));
  });
}

describe.skipIf(!available)("single-file executable", () => {
  test("builds for linux-x64 and serves a request from another directory", async () => {
    const dir = mkdtempSync(join(tmpdir(), "crumb-binary-"));
    try {
      const build = Bun.spawnSync([process.execPath, "runtime/bin/build.ts", "--target", "linux-x64", "--outdir", dir], { cwd: REPO });
      expect(build.exitCode).toBe(0);
      const source = await importModel(modelPath("stories260K/stories260K.bin"), { tokenizer: modelPath("stories260K/tok512.bin") });
      const model = join(dir, "stories.q4");
      await writeCheckpointFile(model, {
        header: headerFor(source),
        tensors: packModel(source, { kind: "bitplane", bits: 4, group: 32, scales: "zero-point" }, { kind: "q8", group: 32 }),
      });
      const child = spawn(join(dir, "crumb-linux-x64"), ["serve", model, "--port", "0", "--threads", "2"], {
        cwd: dir,
        stdio: ["ignore", "pipe", "pipe"],
      });
      try {
        const url = await listening(child);
        let health = 0;
        for (let i = 0; i < 200 && health !== 200; i++) {
          health = await fetch(`${url}/health`).then((r) => r.status, () => 0);
          if (health !== 200) await Bun.sleep(50);
        }
        const response = await fetch(`${url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ prompt: "Once upon a time", max_tokens: 12, temperature: 0 }),
        });
        expect(response.status).toBe(200);
        const body = await response.json() as { choices: { text: string; finish_reason: string }[] };
        expect(body.choices[0].text.length).toBeGreaterThan(0);
        expect(body.choices[0].finish_reason).toBe("length");
      } finally {
        child.kill("SIGKILL");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
