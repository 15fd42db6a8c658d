// Loading for the CLI: on a terminal a progress bar is redrawn while the packed file is read
// and its checksums verified, then erased before the ready line; off a terminal no bar at all
// (logs stay clean); the ready line names model, engine, threads, KV mode and bytes per token,
// context and load time.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CliLog, loadModelForCli } from "../../runtime/cli/load-model.ts";
import { haveFiles } from "../shared-data.ts";
import { packedStories } from "./helpers.ts";

const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin");
let dir = "";
let model = "";
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "crumb-load-"));
  if (available) model = await packedStories(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!available)("loading for the CLI", () => {
  test("a terminal gets a progress bar up to 100%, erased before the ready line", async () => {
    const lines: string[] = [];
    const rawWrites: string[] = [];
    const tty: CliLog = { isTTY: true, line: (t) => void lines.push(t), raw: (t) => void rawWrites.push(t) };
    const { engine } = await loadModelForCli(model, { chat: false, threads: 2, kv: "q8" }, tty);
    await engine.dispose();
    expect(rawWrites.length).toBeGreaterThan(2);
    expect(rawWrites[0]).toMatch(/^\rloading stories260K\.q4 \[[#.]{30}\] +\d+% /);
    expect(rawWrites.some((w) => /\[#{30}\] 100% .* \(reading, verifying checksums\)/.test(w))).toBe(true);
    expect(rawWrites.at(-1)).toBe("\r\x1b[K");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ready: stories260K\.q4 \(llama\), wasm engine, 2 threads, kv q8 \([\d.]+ (B|KiB)\/token\), context 512, loaded in \d+ ms$/);
  }, 30_000);

  test("off a terminal: no bar, only the ready line", async () => {
    const lines: string[] = [];
    const rawWrites: string[] = [];
    const { engine } = await loadModelForCli(model, { chat: false, threads: 1 }, { isTTY: false, line: (t) => void lines.push(t), raw: (t) => void rawWrites.push(t) });
    await engine.dispose();
    expect(rawWrites).toEqual([]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ready: stories260K\.q4 \(llama\), wasm engine, 1 thread, kv f16 \(640 B\/token\), context 512/);
  }, 30_000);
});
