// The one-way import rule of DESIGN.md, checked by parsing imports (static, re-exports and
// dynamic `import(...)`) of every runtime file: kernels ← threads ← ops ← models ← engine ←
// server / cli; format depends on nothing but errors; model files do no I/O and never touch
// WASM; runtime code never imports the quantizer, tests, benchmarks or bun:test; and the
// module graph of the runtime has no cycle.
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const TESTS = /\.test\.ts$/;

function sources(dir: string, withTests = false): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path, withTests);
    return name.endsWith(".ts") && (withTests || !TESTS.test(name)) ? [path] : [];
  });
}

/** Static imports, re-exports and (unless `staticOnly`) dynamic imports of a file, repo-relative for relative specifiers. */
function imports(file: string, staticOnly = false): string[] {
  const text = readFileSync(file, "utf8");
  const specs = [
    ...text.matchAll(/^\s*(?:import|export)[^"'`;]*?from\s+["']([^"']+)["']/gm), // import ... from / export ... from
    ...text.matchAll(/^\s*import\s+["']([^"']+)["']/gm), // side-effect imports
    ...(staticOnly ? [] : text.matchAll(/\bimport\s*\(\s*["']([^"']+)["']\s*\)/g)), // dynamic imports
  ].map((m) => m[1]);
  return specs.map((spec) => (spec.startsWith(".") ? relative(ROOT, resolve(dirname(file), spec)) : spec));
}

const BASE = ["runtime/errors.ts"];
/** What each runtime folder (or file) may import: repo-relative prefixes or bare module names. */
const RULES: Record<string, { allow: string[]; forbid?: string[] }> = {
  "runtime/errors.ts": { allow: [] },
  "runtime/format/": { allow: [...BASE, "runtime/format/", "node:"] },
  "runtime/kernels/": { allow: [...BASE, "runtime/format/", "runtime/kernels/", "node:"] },
  "runtime/threads/": { allow: [...BASE, "runtime/format/", "runtime/kernels/", "runtime/threads/", "node:"] },
  "runtime/ops/": { allow: [...BASE, "runtime/format/", "runtime/kernels/", "runtime/threads/", "runtime/ops/", "runtime/models/types.ts"] },
  "runtime/models/": { allow: [...BASE, "runtime/ops/types.ts", "runtime/models/"], forbid: ["node:", "runtime/kernels/", "runtime/threads/"] },
  "runtime/tokenizer/": { allow: [...BASE, "runtime/models/types.ts", "runtime/tokenizer/", "node:", "@huggingface/"] },
  "runtime/import/": { allow: [...BASE, "runtime/format/", "runtime/models/types.ts", "runtime/tokenizer/", "runtime/import/", "node:"] },
  "runtime/engine/": {
    allow: [...BASE, "runtime/format/", "runtime/kernels/", "runtime/threads/", "runtime/ops/", "runtime/models/", "runtime/tokenizer/", "runtime/import/", "runtime/engine/", "node:"],
  },
  "runtime/server/": { allow: ["runtime/", "node:", "hono"], forbid: ["runtime/cli", "runtime/bin/"] },
  // The `crumb` command is every tool's entry point: its quantize, export, pull, info and bench
  // subcommands load the quantizer and the benchmark, dynamically (CLI_TOOLS below).
  "runtime/cli": { allow: ["runtime/", "node:", "commander", "package.json", "quantizer/", "bench/setup-llamacpp.ts"] },
  "runtime/bin/": { allow: ["runtime/", "kernels-wasm/pkg/", "node:"] },
  "runtime/mod.ts": { allow: ["runtime/"] },
};
/** No runtime file (tests aside) may import these, except CLI_TOOLS. */
const NEVER = ["quantizer/", "test/", "bench/", "examples/", "bun:test"];
/** runtime/cli may import the quantizer and the benchmark's llama.cpp setup, only dynamically (a deployed `crumb serve` never loads them). */
const CLI_TOOLS = ["quantizer/", "bench/setup-llamacpp.ts"];
const cliToolImport = (path: string, target: string, file: string) =>
  path.startsWith("runtime/cli/") && CLI_TOOLS.some((p) => target.startsWith(p)) && !imports(file, true).includes(target);

function ruleFor(path: string) {
  return Object.entries(RULES).filter(([prefix]) => path.startsWith(prefix)).sort((a, b) => b[0].length - a[0].length)[0]?.[1];
}

test("runtime layers import only downwards", () => {
  const violations: string[] = [];
  const unruled: string[] = [];
  for (const file of sources(join(ROOT, "runtime"))) {
    const path = relative(ROOT, file);
    const rule = ruleFor(path);
    if (rule === undefined) {
      unruled.push(path);
      continue;
    }
    for (const target of imports(file)) {
      const allowed = rule.allow.some((prefix) => target.startsWith(prefix));
      const forbidden = [...(rule.forbid ?? []), ...NEVER].some((prefix) => target.startsWith(prefix)) && !cliToolImport(path, target, file);
      if (!allowed || forbidden) violations.push(`${path} imports ${target}`);
    }
  }
  expect(unruled).toEqual([]); // every runtime folder has a rule
  expect(violations).toEqual([]);
});

test("runtime code never imports bun:test, tests or the quantizer, also from the files tests sit beside", () => {
  const violations = sources(join(ROOT, "runtime"), true)
    .filter((file) => !TESTS.test(file))
    .flatMap((file) =>
      imports(file)
        .filter((t) => NEVER.some((p) => t.startsWith(p)) && !cliToolImport(relative(ROOT, file), t, file))
        .map((t) => `${relative(ROOT, file)} imports ${t}`)
    );
  expect(violations).toEqual([]);
});

/** The import graph of `files`: repo-relative path → the .ts files it imports. */
function graphOf(files: string[]): Map<string, string[]> {
  return new Map(files.map((f) => {
    const from = relative(ROOT, f);
    return [from, imports(f).filter((t) => t.endsWith(".ts"))];
  }));
}

/** The cycles of a graph found by depth-first search (each as the nodes around it). */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, "open");
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      if (state.get(next) === "open") found.push(stack.slice(stack.indexOf(next)));
      else if (state.get(next) === undefined) visit(next);
    }
    stack.pop();
    state.set(node, "done");
  };
  for (const node of graph.keys()) if (state.get(node) === undefined) visit(node);
  return found;
}

test("the runtime's module graph has no import cycle", () => {
  expect(cycles(graphOf(sources(join(ROOT, "runtime"))))).toEqual([]);
});

test("the checker sees imports and cycles (it is not vacuous)", () => {
  expect(imports(join(ROOT, "runtime/models/llama.ts"))).toContain("runtime/ops/types.ts");
  expect(imports(join(ROOT, "test/engine.test.ts"))).toContain("runtime/import/index.ts");
  // Dynamic imports count: this test file's own sibling uses them.
  expect(imports(join(ROOT, "test/wasm-engine.test.ts"))).toContain("runtime/engine/load-engine.ts");
  expect(sources(join(ROOT, "runtime/models")).length).toBeGreaterThanOrEqual(4);
  expect(graphOf([join(ROOT, "runtime/models/qwen2.ts")]).get("runtime/models/qwen2.ts")).toContain("runtime/models/llama.ts");
  // Made-up graphs: a cycle of three is found, a diamond is not a cycle.
  expect(cycles(new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", ["a"]]]))).toEqual([["a", "b", "c"]]);
  expect(cycles(new Map([["a", ["b", "c"]], ["b", ["d"]], ["c", ["d"]], ["d", []]]))).toEqual([]);
  expect(ruleFor("runtime/engine/kv-cache/wasm-cache.ts")).toBe(RULES["runtime/engine/"]);
});
