// The README's library snippet, taken from README.md as written, run from another project
// that has crumb installed in node_modules as npm installs it (a real directory: package.json,
// the TypeScript for Bun, dist/ built by runtime/bin/build-js.ts for Deno, which refuses to strip
// types under node_modules; its dependencies beside it), importing it by name through package.json
// exports, under Bun and under Deno: it prints its reply and vector size and exits 0 within a
// generous bound; without its dispose() call it still exits (idle workers hold nothing).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { haveFiles } from "../shared-data.ts";
import { commandFor, packedStories, REPO, type Runtime } from "./helpers.ts";
import { spawnSync } from "node:child_process";

const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin");
/** Far above the 1-2 s these take; a process kept alive by its workers would hit it. */
const BOUND_MS = 30_000;

/** The ```ts block under "## As a library" in README.md. */
function readmeSnippet(): string {
  const readme = readFileSync(join(REPO, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## As a library"));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  if (match === null) throw new Error("README.md has no ts block under ## As a library");
  return match[1];
}

let project = "";
let model = "";
beforeAll(async () => {
  project = mkdtempSync(join(tmpdir(), "crumb-user-project-"));
  if (!available) return;
  model = await packedStories(project, "smol.q4");
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "user-project", type: "module", dependencies: { crumb: "*" } }));
  const installed = join(project, "node_modules", "crumb");
  mkdirSync(installed, { recursive: true });
  copyFileSync(join(REPO, "package.json"), join(installed, "package.json"));
  // Copies, not links: Bun and Deno resolve a link to its real path, outside node_modules.
  for (const dir of ["runtime", "quantizer", "kernels-wasm/pkg"]) {
    cpSync(join(REPO, dir), join(installed, dir), { recursive: true, filter: (path) => !path.endsWith(".test.ts") });
  }
  const build = spawnSync(commandFor("bun", [])[0], [join(REPO, "runtime/bin/build-js.ts"), "--outdir", join(installed, "dist")], { encoding: "utf8" });
  if (build.status !== 0) throw new Error(`build-js failed: ${build.stderr}`);
  const manifest = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { dependencies: Record<string, string> };
  for (const name of Object.keys(manifest.dependencies)) {
    const target = join(project, "node_modules", name);
    mkdirSync(dirname(target), { recursive: true });
    symlinkSync(join(REPO, "node_modules", name), target, "dir");
  }
});
afterAll(() => rmSync(project, { recursive: true, force: true }));

function run(runtime: Runtime, file: string) {
  const [command, ...args] = runtime === "bun" ? commandFor("bun", []).slice(0, 1) : commandFor("deno", []).slice(0, 3);
  const started = performance.now();
  const r = spawnSync(command, [...args, file], { cwd: project, encoding: "utf8", timeout: BOUND_MS, env: { ...process.env, NO_COLOR: "1" } });
  return { ...r, ms: performance.now() - started };
}

describe.skipIf(!available)("the README library snippet from another project", () => {
  test("it imports crumb by name and ends with dispose()", () => {
    const snippet = readmeSnippet();
    expect(snippet).toContain('import { loadEngine } from "crumb";');
    expect(snippet).toContain("await engine.dispose();");
  });

  for (const runtime of ["bun", "deno"] as Runtime[]) {
    test(`under ${runtime}: runs to completion and exits`, () => {
      writeFileSync(join(project, "snippet.ts"), readmeSnippet());
      const r = run(runtime, "snippet.ts");
      expect(r.error).toBeUndefined();
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/\n64 dimensions\n$/);
      expect(r.ms).toBeLessThan(BOUND_MS);
    }, BOUND_MS + 10_000);

    test(`under ${runtime}: without dispose() it still exits (idle workers do not hold the process)`, () => {
      writeFileSync(join(project, "no-dispose.ts"), readmeSnippet().replace("await engine.dispose(); // stops the worker threads\n", ""));
      const r = run(runtime, "no-dispose.ts");
      expect(r.error).toBeUndefined();
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/64 dimensions/);
    }, BOUND_MS + 10_000);
  }
});
