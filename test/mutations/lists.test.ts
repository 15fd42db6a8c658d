/**
 * Every list of recorded breaks in this directory (the files run.ts loads) stays applicable:
 * each entry names a tracked file in which its `find` text occurs exactly once, changes it,
 * and names existing test files; names are unique across the lists. Whether those tests
 * catch each break is checked by applying it and running them (run.ts), not here.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Mutation } from "./types.ts";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const LISTS = readdirSync(HERE).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && f !== "types.ts" && f !== "run.ts").sort();

describe("recorded mutations", () => {
  test("the lists include every area that records breaks", () => {
    expect(LISTS).toEqual(expect.arrayContaining(["architectures.ts", "cli.ts", "gguf-export.ts", "gguf-import.ts", "heads.ts", "kernels.ts", "load.ts", "reliability.ts", "units.ts", "work-done.ts"]));
  });

  const names = new Set<string>();
  for (const list of LISTS) {
    test(`${list}: every break applies to exactly one place and names existing tests`, async () => {
      const { mutations } = (await import(HERE + list)) as { mutations: Mutation[] };
      expect(mutations.length).toBeGreaterThan(0);
      for (const m of mutations) {
        const text = readFileSync(ROOT + m.file, "utf8");
        expect({ name: m.name, occurrences: text.split(m.find).length - 1 }).toEqual({ name: m.name, occurrences: 1 });
        expect(m.replace).not.toBe(m.find);
        expect(m.tests.length).toBeGreaterThan(0);
        for (const file of m.tests) expect({ name: m.name, file, exists: existsSync(ROOT + file) }).toEqual({ name: m.name, file, exists: true });
        expect({ duplicate: names.has(m.name), name: m.name }).toEqual({ duplicate: false, name: m.name });
        names.add(m.name);
      }
    });
  }
});
