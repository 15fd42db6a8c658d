/**
 * The record of load-path breaks (./load.ts) stays applicable: each names an existing file in
 * which its `find` text occurs exactly once, changes it, and lists existing test files.
 * Whether those tests catch each break is checked by applying it and running them (see
 * types.ts), not here.
 */
import { expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { mutations } from "./load.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

test("every load-path mutation applies to exactly one place and names existing tests", () => {
  expect(mutations.length).toBeGreaterThanOrEqual(10);
  for (const m of mutations) {
    const text = readFileSync(ROOT + m.file, "utf8");
    expect({ name: m.name, occurrences: text.split(m.find).length - 1 }).toEqual({ name: m.name, occurrences: 1 });
    expect(m.replace).not.toBe(m.find);
    for (const file of m.tests) {
      expect({ name: m.name, file, exists: existsSync(ROOT + file) }).toEqual({ name: m.name, file, exists: true });
    }
  }
  expect(new Set(mutations.map((m) => m.name)).size).toBe(mutations.length);
});
