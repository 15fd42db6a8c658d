/**
 * `bun bench/load.ts <file.crumb>`: what loading a packed model costs, step by step, from the
 * page cache. Each run is a fresh process, so nothing is warm but the page cache:
 *   steps  (`bench/load.ts --child`): imports, kernel compile, header, the weights (memory
 *          growth, reads + checksums, 1-D parameters), worker threads and tokenizer, first token,
 *          and the peak RSS (VmHWM);
 *   cold   (`runtime/cli.ts generate <file> -n 1 -p hi`): wall clock from spawn to the first
 *          token on stdout and to exit, peak RSS and CPU time (/usr/bin/time) — what a user
 *          waits for.
 * Prints medians with min..max (the spread says how noisy the machine was) next to reading the
 * file into one reused buffer (page-cache speed without page faults). Flags: --runs N (default 5)
 * --runtime bun,deno --threads N (default 2) --tokenizer FILE (for files that carry none)
 * --json.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const SELF = fileURLToPath(import.meta.url);
const CLI = fileURLToPath(new URL("../runtime/cli.ts", import.meta.url));
const DENO = fileURLToPath(new URL("../node_modules/deno/deno", import.meta.url));
const BUN = fileURLToPath(new URL("../node_modules/bun/bin/bun.exe", import.meta.url));
const LLAMA_TOKENIZER = fileURLToPath(new URL("../../shared/models/hf-tokenizers/llama2/tokenizer.json", import.meta.url));
const USAGE = "usage: bun bench/load.ts <file.crumb> [--runs N] [--runtime bun,deno] [--threads N] [--tokenizer FILE] [--json]";

type Runtime = "bun" | "deno";
interface Spec {
  readonly file: string;
  readonly threads: number;
  readonly tokenizer?: string;
}
/** One steps run: milliseconds per step, and the peak RSS in MiB. */
type Steps = Record<string, number>;

// ---- child: one load, timed step by step -------------------------------------------------

async function child(spec: Spec): Promise<void> {
  const steps: Steps = {};
  let t = performance.now();
  steps["start (runtime up, before imports)"] = t;
  const lap = (name: string) => {
    const now = performance.now();
    steps[name] = now - t;
    t = now;
  };
  const { loadKernels } = await import("../runtime/kernels/wasm.ts");
  const { openCheckpoint } = await import("../runtime/format/file.ts");
  const { loadEngine } = await import("../runtime/engine/load-engine.ts");
  lap("imports");
  loadKernels();
  lap("kernels: compile + instantiate");
  const file = await openCheckpoint(spec.file);
  await file.close();
  lap("header (open, read, validate)");
  let stats: { growMs: number; readMs: number; hashMs: number; finishMs: number; bytes: number } | undefined;
  const engine = await loadEngine(spec.file, { threads: spec.threads, tokenizer: spec.tokenizer, onLoaded: (s) => (stats = s) });
  const engineMs = performance.now() - t;
  // (A loader without the onLoaded hook reports only its total.)
  if (stats !== undefined) {
    steps["weights: grow memory"] = stats.growMs;
    steps["weights: read + verify"] = stats.readMs;
    steps["  of which hashing (main thread)"] = stats.hashMs;
    steps["weights: 1-D params, matrices"] = stats.finishMs;
    steps["header again, threads, tokenizer"] = engineMs - stats.growMs - stats.readMs - stats.finishMs;
    steps["read GB/s"] = stats.bytes / stats.readMs / 1e6;
  }
  steps["loadEngine total"] = engineMs;
  t = performance.now();
  for await (const event of engine.generate("hi", { maxTokens: 1, temperature: 0 })) if (event.type === "token") break;
  lap("first token (prompt 'hi')");
  steps["process start to first token"] = performance.now();
  await engine.dispose();
  steps["peak RSS MiB"] = peakRssMb();
  process.stdout.write(JSON.stringify(steps) + "\n");
}

function peakRssMb(): number {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    if (match !== null) return Number(match[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.memoryUsage().rss / (1024 * 1024);
}

// ---- parent: fresh processes, medians --------------------------------------------------

function runtimeCommand(runtime: Runtime, script: string, args: string[]): [string, string[]] {
  if (runtime === "deno") return [DENO, ["run", "-A", "--quiet", "--v8-flags=--expose-gc", script, ...args]];
  return [typeof (globalThis as { Bun?: unknown }).Bun === "undefined" ? BUN : process.execPath, [script, ...args]];
}

/** Runs a command; resolves with its stdout, when stdout first had data, and when it exited (ms after spawn). */
function timed(
  command: string,
  args: string[],
): Promise<{ stdout: string; firstOutputMs: number; exitMs: number; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const proc = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let firstOutputMs = NaN;
    proc.stdout.on("data", (d) => {
      if (Number.isNaN(firstOutputMs)) firstOutputMs = performance.now() - started;
      stdout += d;
    });
    proc.stderr.on("data", (d) => (stderr += d));
    proc.on("error", reject);
    proc.on("close", (code) => resolve({ stdout, firstOutputMs, exitMs: performance.now() - started, stderr, code }));
  });
}

async function stepsRun(runtime: Runtime, spec: Spec): Promise<Steps> {
  const [command, args] = runtimeCommand(runtime, SELF, ["--child", JSON.stringify(spec)]);
  const r = await timed(command, args);
  const line = r.stdout.trim().split("\n").at(-1) ?? "";
  if (r.code !== 0 || !line.startsWith("{")) {
    throw new Error(`${runtime} steps run failed (exit ${r.code}): ${r.stderr.trim().split("\n").slice(-4).join(" | ")}`);
  }
  return JSON.parse(line) as Steps;
}

/** The CLI from a cold process: first token on stdout, exit, peak RSS (when /usr/bin/time exists). */
async function coldRun(runtime: Runtime, spec: Spec, scratch: string): Promise<Steps> {
  const cliArgs = [
    "generate",
    spec.file,
    "-n",
    "1",
    "-p",
    "hi",
    "--threads",
    String(spec.threads),
    ...(spec.tokenizer === undefined ? [] : ["--tokenizer", spec.tokenizer]),
  ];
  let [command, args] = runtimeCommand(runtime, CLI, cliArgs);
  const rssFile = join(scratch, "rss");
  const haveTime = existsSync("/usr/bin/time");
  if (haveTime) [command, args] = ["/usr/bin/time", ["-f", "%M %U %S", "-o", rssFile, command, ...args]];
  const r = await timed(command, args);
  if (r.code !== 0) throw new Error(`${runtime} cli run failed (exit ${r.code}): ${r.stderr.trim().split("\n").slice(-4).join(" | ")}`);
  const out: Steps = { "cli: spawn to first token": r.firstOutputMs, "cli: spawn to exit": r.exitMs };
  if (haveTime) {
    const [rssKb, user, system] = readFileSync(rssFile, "utf8").trim().split("\n").at(-1)!.split(" ").map(Number);
    out["cli: peak RSS MiB"] = rssKb / 1024;
    // CPU time is what a loaded machine cannot hide: compare it when wall clocks scatter.
    out["cli: CPU ms (user + sys)"] = (user + system) * 1000;
  }
  return out;
}

/** Reads the file once into one reused 16 MiB buffer: warms the page cache, gives its read speed. */
function pageCacheRead(path: string): number {
  const buffer = new Uint8Array(16 << 20);
  const fd = openSync(path, "r");
  const started = performance.now();
  try {
    for (let at = 0;; at += buffer.length) if (readSync(fd, buffer, 0, buffer.length, at) < buffer.length) break;
  } finally {
    closeSync(fd);
  }
  return performance.now() - started;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

async function main(argv: string[]): Promise<void> {
  if (argv[0] === "--child") return child(JSON.parse(argv[1]) as Spec);
  let runs = 5;
  let runtimes: Runtime[] = ["bun"];
  let threads = 2;
  let tokenizer: string | undefined;
  let json = false;
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--runs") runs = Number(argv[++i]);
    else if (a === "--runtime") runtimes = argv[++i].split(",") as Runtime[];
    else if (a === "--threads") threads = Number(argv[++i]);
    else if (a === "--tokenizer") tokenizer = argv[++i];
    else if (a === "--json") json = true;
    else if (a.startsWith("--")) throw new Error(`unknown flag ${a}\n${USAGE}`);
    else files.push(a);
  }
  if (files.length !== 1 || !Number.isInteger(runs) || runs < 1 || runtimes.some((r) => r !== "bun" && r !== "deno")) {
    throw new Error(USAGE);
  }
  const file = files[0];
  const { openCheckpoint } = await import("../runtime/format/file.ts");
  const { resolveModel } = await import("../runtime/models/registry.ts");
  const { kvCacheSize } = await import("../runtime/engine/kv-cache/auto.ts");
  const checkpoint = await openCheckpoint(file);
  const carriesTokenizer = checkpoint.header.tokenizer !== null;
  const { args } = resolveModel(checkpoint.header.config);
  await checkpoint.close();
  // The CLI's defaults: context min(max positions, 4096), kv f16.
  const shape = {
    numLayers: args.numLayers,
    numHeads: args.numHeads,
    numKvHeads: args.numKvHeads,
    headDim: args.headDim,
    contextLength: Math.min(args.maxPositions, 4096),
  };
  const kvBytes = kvCacheSize("f16", shape, args.hiddenSize).totalBytes;
  if (!carriesTokenizer && tokenizer === undefined && existsSync(LLAMA_TOKENIZER)) tokenizer = LLAMA_TOKENIZER;
  const spec: Spec = { file, threads, tokenizer };
  const size = statSync(file).size;
  pageCacheRead(file);
  const cacheMs = median(Array.from({ length: 3 }, () => pageCacheRead(file)));
  const log = (s: string) => process.stderr.write(s + "\n");
  const MiB = 1024 * 1024;
  const rssBudgetMiB = (size + kvBytes) / MiB + 100;
  log(
    `${file}: ${(size / 1e6).toFixed(1)} MB; page-cache read into one reused buffer ${cacheMs.toFixed(0)} ms (${
      (size / cacheMs / 1e6).toFixed(1)
    } GB/s)`,
  );
  log(
    `peak RSS budget: file ${(size / MiB).toFixed(0)} MiB + kv f16 at ctx ${shape.contextLength} ${
      (kvBytes / MiB).toFixed(0)
    } MiB + 100 MiB = ${rssBudgetMiB.toFixed(0)} MiB`,
  );
  const scratch = mkdtempSync(join(tmpdir(), "crumb-load-"));
  const results: Record<string, Record<string, number[]>> = {};
  try {
    for (let run = 0; run < runs; run++) {
      for (const runtime of runtimes) {
        const rows = (results[runtime] ??= {});
        const one = { ...(await stepsRun(runtime, spec)), ...(await coldRun(runtime, spec, scratch)) };
        for (const [k, v] of Object.entries(one)) (rows[k] ??= []).push(v);
        log(
          `run ${run + 1}/${runs} ${runtime}: loadEngine ${one["loadEngine total"].toFixed(0)} ms, cli first token ${
            one["cli: spawn to first token"].toFixed(0)
          } ms`,
        );
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const summary = Object.fromEntries(
    Object.entries(results).map(([runtime, rows]) => [
      runtime,
      Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, { median: median(v), min: Math.min(...v), max: Math.max(...v) }])),
    ]),
  );
  if (json) {
    process.stdout.write(
      JSON.stringify({ file, bytes: size, runs, threads, pageCacheReadMs: cacheMs, rssBudgetMiB, results: summary }) + "\n",
    );
    return;
  }
  const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  process.stdout.write(
    `\n${runs} fresh processes per runtime, ${threads} threads; ms unless marked; median (min..max); peak RSS budget ${
      rssBudgetMiB.toFixed(0)
    } MiB\n`,
  );
  for (const [runtime, rows] of Object.entries(summary)) {
    process.stdout.write(`\n${runtime}\n`);
    for (const [k, v] of Object.entries(rows)) {
      process.stdout.write(`  ${k.padEnd(36)} ${fmt(v.median).padStart(7)}  (${fmt(v.min)}..${fmt(v.max)})\n`);
    }
  }
}

await main(process.argv.slice(2));
