/**
 * Helpers for the importer tests: paths into ../shared/models (a test that needs them fails
 * under CI=true when they are missing and is skipped elsewhere), temp directories, and an
 * assertion that a function throws a given error class whose message names file and offset.
 */

import { expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export { modelPath, testShared } from "../shared-data.ts";

export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "crumb-import-"));
}

/** Runs `fn` (sync or async) and returns what it threw; fails the test if nothing was thrown. */
export async function caught(fn: () => unknown): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error, none was thrown");
}

/** Asserts a typed error naming the file and (when given) the byte offset. */
export async function expectTypedError(
  fn: () => unknown,
  cls: new (...args: never[]) => Error,
  details: { file?: string; offset?: number; tensor?: string; message?: RegExp } = {},
): Promise<Error> {
  const err = await caught(fn);
  expect(err).toBeInstanceOf(cls);
  if (details.file !== undefined) expect(err.message).toContain(details.file);
  if (details.offset !== undefined) {
    expect((err as { offset?: number }).offset).toBe(details.offset);
    expect(err.message).toContain(`byte offset ${details.offset}`);
  }
  if (details.tensor !== undefined) expect((err as { tensor?: string }).tensor).toBe(details.tensor);
  if (details.message !== undefined) expect(err.message).toMatch(details.message);
  return err;
}
