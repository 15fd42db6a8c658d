// Model paths a user can get wrong, each reported as what it is (issue 16, item 8): a crumb file
// whose magic was damaged in transit is named as such by every loader (FORMAT.md promises it),
// not as "not a llama2.c header"; a symbolic link loop and a dangling link are not "does not
// exist". Covers importModel, loadEngine, `serve` and `quantize` argument checks.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runQuantize } from "../../quantizer/cli.ts";
import { importModel } from "../../runtime/import/index.ts";
import { parseServeArgs } from "../../runtime/cli/serve.ts";
import { loadEngine } from "../../runtime/engine/load-engine.ts";
import { FormatError, InvalidArgumentError } from "../../runtime/errors.ts";

const dir = mkdtempSync(join(tmpdir(), "crumb-hostile-files-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const quiet = { stdout: { write: () => {} }, stderr: { write: () => {} } };

async function rejection(run: () => unknown): Promise<Error> {
  try {
    await run();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected an error");
}

describe("paths and files reported as what they are", () => {
  test("a damaged CRUMB magic (CR LF rewritten to LF, high bit cleared) names the damage at byte 0", async () => {
    const junk = new Uint8Array(256).fill(7);
    const damaged = [
      ["lf.q4", [0x89, 0x43, 0x52, 0x55, 0x4d, 0x42, 0x0a, 0x00]],
      ["7bit.q4", [0x09, 0x43, 0x52, 0x55, 0x4d, 0x42, 0x0d, 0x0a]],
    ] as const;
    for (const [name, magic] of damaged) {
      const path = join(dir, name);
      writeFileSync(path, new Uint8Array([...magic, ...junk]));
      for (const load of [() => importModel(path), () => loadEngine(path)]) {
        const error = await rejection(load);
        expect(error).toBeInstanceOf(FormatError);
        expect(error.message).toContain("damaged crumb checkpoint magic");
        expect(error.message).not.toContain("llama2.c");
        expect((error as FormatError).offset).toBe(0);
      }
    }
  });

  test("a zip archive (a PyTorch checkpoint) is named as such", async () => {
    const path = join(dir, "model.pt");
    writeFileSync(path, new Uint8Array([0x50, 0x4b, 0x03, 0x04, ...new Uint8Array(200)]));
    const error = await rejection(() => importModel(path));
    expect(error).toBeInstanceOf(FormatError);
    expect(error.message).toContain("zip archive");
  });

  test("a symbolic link loop and a dangling link are reported as such, not as missing files", async () => {
    const a = join(dir, "loop-a");
    const b = join(dir, "loop-b");
    symlinkSync(b, a);
    symlinkSync(a, b);
    const dangling = join(dir, "dangling");
    symlinkSync(join(dir, "nowhere.q4"), dangling);
    const cases: [string, RegExp][] = [[a, /symbolic link loop/], [dangling, /symbolic link to a file that does not exist/]];
    for (const [path, message] of cases) {
      const checks: [() => unknown, typeof FormatError | typeof InvalidArgumentError][] = [
        [() => parseServeArgs([path], {}), InvalidArgumentError],
        [() => loadEngine(path), InvalidArgumentError],
        [() => importModel(path), FormatError],
        [() => runQuantize([path, "-o", join(dir, "out.q2")], quiet), InvalidArgumentError],
      ];
      for (const [run, kind] of checks) {
        const error = await rejection(run);
        expect(error).toBeInstanceOf(kind);
        expect(error.message).toMatch(message);
      }
    }
    expect((await rejection(() => loadEngine(join(dir, "absent.q4")))).message).toContain("does not exist");
  });
});
