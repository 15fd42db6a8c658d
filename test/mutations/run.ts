/**
 * Runs the recorded mutations (test/mutations/*.ts, each exporting `mutations: Mutation[]`):
 * for each one, copies the repository's tracked files into a scratch directory, applies the
 * break there, runs its tests with `bun test` and reports whether they caught it. Before the
 * breaks, each distinct set of tests is run once on the unbroken copy: a set that already
 * fails, or whose filter selects no test, would make every break look caught.
 *
 *   npx bun test/mutations/run.ts [--only <substring of a name or list file>] [--table]
 *
 * Exits non-zero when a break is missed, cannot be applied (`find` must occur exactly once),
 * or its run ends without a failing test to show for it (a crash, a timeout). Not named
 * *.test.ts, so `bun test` never picks it up. See test/mutations.md.
 */
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Mutation } from "./types.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, "../..");
/** Files in this directory that are not lists of mutations. */
const NOT_LISTS = new Set(["types.ts", "run.ts"]);
/** One test run longer than this is stopped and reported. */
const RUN_TIMEOUT_MS = 15 * 60_000;

interface Listed {
  readonly list: string;
  readonly mutation: Mutation;
}

/** Every list in this directory, imported by file name so new lists are picked up as they land. */
async function loadMutations(): Promise<Listed[]> {
  const files = readdirSync(HERE).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !NOT_LISTS.has(f)).sort();
  const all: Listed[] = [];
  for (const file of files) {
    const module = await import(join(HERE, file));
    if (!Array.isArray(module.mutations)) throw new Error(`test/mutations/${file} does not export a "mutations" array`);
    for (const mutation of module.mutations as Mutation[]) all.push({ list: file, mutation });
  }
  return all;
}

function trackedFiles(): string[] {
  const out = spawnSync("git", ["ls-files", "-z"], { cwd: REPO, encoding: "utf8" });
  if (out.status !== 0) throw new Error(`git ls-files failed in ${REPO}: ${out.stderr}`);
  return out.stdout.split("\0").filter((f) => f !== "");
}

/**
 * A scratch copy: <tmp>/crumb-mutation-XXXX/repo holds the tracked files (as they are in the
 * working tree) and a node_modules link; <tmp>/crumb-mutation-XXXX/shared links to the
 * repository's ../shared, so tests find ../shared/models as they do here.
 */
function scratchCopy(files: readonly string[]): { root: string; repo: string } {
  const root = mkdtempSync(join(tmpdir(), "crumb-mutation-"));
  const repo = join(root, "repo");
  for (const file of files) {
    const from = join(REPO, file);
    if (!existsSync(from)) continue; // deleted in the working tree, not yet in the index
    mkdirSync(dirname(join(repo, file)), { recursive: true });
    copyFileSync(from, join(repo, file));
  }
  const modules = join(REPO, "node_modules");
  if (existsSync(modules)) symlinkSync(realpathSync(modules), join(repo, "node_modules"));
  const shared = resolve(REPO, "../shared");
  if (existsSync(shared)) symlinkSync(realpathSync(shared), join(root, "shared"));
  return { root, repo };
}

/**
 * A break in the Rust kernels only shows once the binaries are rebuilt: build.sh runs in the
 * scratch copy, reusing this checkout's wasm32 sysroot (kernels-wasm/target/sysroot-*) so core
 * is not compiled again.
 */
function rebuildKernels(repo: string): void {
  const target = join(REPO, "kernels-wasm", "target");
  if (existsSync(target)) {
    mkdirSync(join(repo, "kernels-wasm", "target"), { recursive: true });
    for (const entry of readdirSync(target).filter((e) => e.startsWith("sysroot-"))) {
      symlinkSync(join(target, entry), join(repo, "kernels-wasm", "target", entry));
    }
  }
  const build = spawnSync("bash", ["kernels-wasm/build.sh"], { cwd: repo, encoding: "utf8" });
  if (build.status !== 0) throw new Error(`kernels-wasm/build.sh failed with the break in place:\n${build.stdout}${build.stderr}`);
}

/** Applies the break; throws unless `find` occurs exactly once. */
function applyMutation(repo: string, m: Mutation): void {
  const path = join(repo, m.file);
  if (!existsSync(path)) throw new Error(`${m.file} is not a tracked file`);
  const text = readFileSync(path, "utf8");
  const count = text.split(m.find).length - 1;
  if (count !== 1) throw new Error(`"find" occurs ${count} times in ${m.file} (must be exactly once): ${JSON.stringify(m.find)}`);
  writeFileSync(path, text.replace(m.find, () => m.replace));
}

interface TestRun {
  readonly passed: boolean;
  readonly timedOut: boolean;
  /** Names of the failing tests, from bun's "(fail)" lines. */
  readonly failed: string[];
  readonly passCount: number;
  readonly output: string;
}

function runTests(repo: string, tests: readonly string[], filter: string | undefined): TestRun {
  for (const t of tests) if (!existsSync(join(repo, t))) throw new Error(`test file ${t} is not a tracked file`);
  const args = ["test", ...tests.map((t) => `./${t}`), ...(filter === undefined ? [] : ["-t", filter])];
  const run = spawnSync(process.execPath, args, {
    cwd: repo,
    encoding: "utf8",
    timeout: RUN_TIMEOUT_MS,
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1" },
  });
  const output = `${run.stdout ?? ""}${run.stderr ?? ""}`;
  const failed = [...output.matchAll(/^\(fail\) (.*?)(?: \[[\d.]+m?s\])?$/gm)].map((m) => m[1]);
  const passCount = Number(/^\s*(\d+) pass$/m.exec(output)?.[1] ?? 0);
  return { passed: run.status === 0, timedOut: run.error !== undefined || run.signal !== null, failed, passCount, output };
}

const tail = (output: string, lines = 25) => output.trimEnd().split("\n").slice(-lines).map((l) => `      ${l}`).join("\n");

function parseArgs(argv: readonly string[]): { only?: string; table: boolean } {
  const only = argv.indexOf("--only");
  if (only !== -1 && argv[only + 1] === undefined) throw new Error("--only needs a substring");
  const unknown = argv.filter((a, i) => a !== "--only" && a !== "--table" && (only === -1 || i !== only + 1));
  if (unknown.length > 0) {
    throw new Error(`unknown arguments: ${unknown.join(" ")} (usage: bun test/mutations/run.ts [--only <substring>] [--table])`);
  }
  return { only: only === -1 ? undefined : argv[only + 1], table: argv.includes("--table") };
}

/** The selected records as markdown, one table per list (test/mutations.md is made of them). */
function printTables(selected: readonly Listed[]): void {
  const cell = (text: string) => text.replaceAll("|", "\\|").replaceAll("\n", " ");
  for (const list of [...new Set(selected.map((s) => s.list))]) {
    console.log(`### \`test/mutations/${list}\`\n\n| mutation | file | caught by |\n|---|---|---|`);
    for (const { mutation: m } of selected.filter((s) => s.list === list)) {
      const by = `${m.tests.join(", ")}${m.filter === undefined ? "" : ` (-t "${m.filter}")`}`;
      console.log(`| ${cell(m.name)} | ${m.file} | ${cell(by)} |`);
    }
    console.log();
  }
}

async function main(): Promise<number> {
  const { only, table } = parseArgs(process.argv.slice(2));
  const selected = (await loadMutations()).filter(({ list, mutation }) =>
    only === undefined || mutation.name.includes(only) || list.includes(only)
  );
  if (selected.length === 0) {
    console.error(`no mutation matches ${JSON.stringify(only)}`);
    return 1;
  }
  if (table) {
    printTables(selected);
    return 0;
  }
  const files = trackedFiles();
  const problems: string[] = [];

  // The unbroken copy first: each distinct (tests, filter) must pass and run at least one test.
  const baseline = new Map<string, boolean>();
  for (const { mutation: m } of selected) {
    const key = JSON.stringify([m.tests, m.filter]);
    if (baseline.has(key)) continue;
    const { root, repo } = scratchCopy(files);
    try {
      const run = runTests(repo, m.tests, m.filter);
      const ok = run.passed && run.passCount > 0;
      baseline.set(key, ok);
      const what = `${m.tests.join(" ")}${m.filter === undefined ? "" : ` -t ${JSON.stringify(m.filter)}`}`;
      console.log(`${ok ? "baseline ok " : "BASELINE FAILS"}  ${what} (${run.passCount} pass)`);
      if (!ok) {
        problems.push(`baseline: ${what}`);
        console.log(tail(run.output));
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }

  for (const { list, mutation: m } of selected) {
    const label = `[${list}] ${m.name}`;
    if (baseline.get(JSON.stringify([m.tests, m.filter])) !== true) {
      console.log(`SKIPPED  ${label}: its tests fail without the break`);
      continue;
    }
    const { root, repo } = scratchCopy(files);
    try {
      applyMutation(repo, m);
      if (m.file.startsWith("kernels-wasm/src/")) rebuildKernels(repo);
      const run = runTests(repo, m.tests, m.filter);
      if (run.timedOut) {
        problems.push(`timed out: ${label}`);
        console.log(`TIMED OUT  ${label}`);
      } else if (run.passed) {
        problems.push(`missed: ${label}`);
        console.log(`MISSED  ${label}\n      ${m.file}: ${JSON.stringify(m.find)} -> ${JSON.stringify(m.replace)}`);
      } else if (run.failed.length === 0) {
        problems.push(`no failing test (crash?): ${label}`);
        console.log(`ERRORED  ${label}: the run failed without a failing test\n${tail(run.output)}`);
      } else {
        console.log(
          `caught  ${label}\n      by: ${run.failed.slice(0, 3).join(" | ")}${run.failed.length > 3 ? ` (+${run.failed.length - 3})` : ""}`,
        );
      }
    } catch (error) {
      problems.push(`not applied: ${label}: ${(error as Error).message}`);
      console.log(`NOT APPLIED  ${label}: ${(error as Error).message}`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }

  const tested = selected.length;
  console.log(`\n${tested} mutation(s), ${problems.length} problem(s)`);
  for (const p of problems) console.log(`  - ${p}`);
  return problems.length === 0 ? 0 : 1;
}

process.exit(await main());
