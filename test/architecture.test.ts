// The one-way import rule of DESIGN.md, checked by parsing imports:
// kernels ← ops ← models ← engine ← server / cli; format depends on nothing but errors;
// model files do no I/O and never touch WASM.
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
/** Tests and the helpers only tests import (fixtures, seeded data) are exempt. */
const TEST_SUPPORT = /(\.test\.ts|^test-data\.ts|^testing\.ts|-fixtures\.ts|-smoke\.ts)$/;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith(".ts") && !TEST_SUPPORT.test(name) ? [path] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs = [...text.matchAll(/^\s*(?:import|export)[^"']*?from\s+["']([^"']+)["']/gm)].map((m) => m[1]);
  return specs.map((spec) => (spec.startsWith(".") ? relative(ROOT, resolve(dirname(file), spec)) : spec));
}

/** What each layer may import (repo-relative prefixes or bare module names). */
const RULES: Record<string, { allow: string[]; forbid?: string[] }> = {
  "runtime/format/": { allow: ["runtime/errors.ts", "runtime/format/", "node:"] },
  "runtime/kernels/": { allow: ["runtime/errors.ts", "runtime/format/", "runtime/kernels/", "node:"] },
  "runtime/ops/": { allow: ["runtime/errors.ts", "runtime/format/", "runtime/kernels/", "runtime/ops/", "runtime/models/types.ts"] },
  "runtime/models/": { allow: ["runtime/errors.ts", "runtime/ops/types.ts", "runtime/models/"], forbid: ["node:", "runtime/kernels/"] },
  "runtime/tokenizer/": { allow: ["runtime/errors.ts", "runtime/models/types.ts", "runtime/tokenizer/", "node:", "@huggingface/"] },
};

test("runtime layers import only downwards", () => {
  const violations: string[] = [];
  for (const file of sources(join(ROOT, "runtime"))) {
    const path = relative(ROOT, file);
    const rule = Object.entries(RULES).find(([prefix]) => path.startsWith(prefix))?.[1];
    if (rule === undefined) continue;
    for (const target of imports(file)) {
      const allowed = rule.allow.some((prefix) => target.startsWith(prefix));
      const forbidden = rule.forbid?.some((prefix) => target.startsWith(prefix)) ?? false;
      if (!allowed || forbidden) violations.push(`${path} imports ${target}`);
    }
  }
  expect(violations).toEqual([]);
});

test("the checker sees imports (it is not vacuous)", () => {
  expect(imports(join(ROOT, "runtime/models/llama.ts"))).toContain("runtime/ops/types.ts");
  expect(sources(join(ROOT, "runtime/models")).length).toBeGreaterThanOrEqual(4);
});
