/**
 * Runs crumb's command line as a user does, in a subprocess under Bun (`bun runtime/cli.ts`)
 * or Deno (`deno run -A runtime/cli.ts`), with optional stdin, working directory and a time
 * bound; and makes a small packed stories260K for the tests that need a model.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { importModel } from "../../runtime/import/index.ts";
import { writeCheckpointFile } from "../../runtime/format/file.ts";
import { headerFor, packModel } from "../fixtures/pack-model.ts";
import { modelPath } from "../shared-data.ts";

export const REPO = fileURLToPath(new URL("../../", import.meta.url));
export const CLI = join(REPO, "runtime/cli.ts");
export const BUN = join(REPO, "node_modules/.bin/bun");
export const DENO = join(REPO, "node_modules/.bin/deno");

export type Runtime = "bun" | "deno";

export interface Run {
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function commandFor(runtime: Runtime, args: readonly string[]): string[] {
  return runtime === "bun" ? [BUN, CLI, ...args] : [DENO, "run", "-A", CLI, ...args];
}

/** Runs `crumb <args>`; rejects when it outlives `timeoutMs`. */
export function crumb(
  args: readonly string[],
  options: { runtime?: Runtime; stdin?: string; cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Run> {
  const [command, ...rest] = commandFor(options.runtime ?? "bun", args);
  const child = spawn(command, rest, {
    cwd: options.cwd ?? REPO,
    env: { ...process.env, NO_COLOR: "1", ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(options.stdin ?? "");
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`crumb ${args.join(" ")} ran past ${options.timeoutMs ?? 60_000} ms:\n${stdout}\n${stderr}`));
    }, options.timeoutMs ?? 60_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** stories260K packed at 4 bits (tokenizer inside, no chat template), written to `dir`. */
export async function packedStories(dir: string, name = "stories260K.q4", report: Record<string, unknown> = {}): Promise<string> {
  const source = await importModel(modelPath("stories260K/stories260K.bin"), { tokenizer: modelPath("stories260K/tok512.bin") });
  const path = join(dir, name);
  await writeCheckpointFile(path, {
    header: { ...headerFor(source), report },
    tensors: packModel(source, { kind: "bitplane", bits: 4, group: 32, scales: "zero-point" }, { kind: "q8", group: 32 }),
  });
  return path;
}
