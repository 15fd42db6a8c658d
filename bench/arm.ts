/**
 * `bun run bench:arm`: instructions per decoded token on ARM64, counted under
 * `qemu-aarch64 -cpu cortex-a76` (a Raspberry Pi 5's core) by the insn-count plugin
 * (bench/arm/insn-count.c, built here with gcc). An instruction count is deterministic, so it
 * judges a kernel change without the noise of a shared machine; it is a proxy for time, not
 * time (no caches, no memory stalls, no instruction latencies).
 *
 * crumb: Bun for linux-aarch64 runs bench/arm/driver.ts (loadEngine + generate, 1 thread,
 * greedy, the bench's random-weight models from bench/models.ts) with CRUMB_ENV (JIT
 * compilation and GC on the main thread, no wall-clock GC timer: counts that do not depend on
 * timing; identical runs agree to a few thousandths of a percent). Per token =
 * (count after token N2 - count after token N1) / (N2 - N1) on the main thread, from markers
 * in one run (--method marks, default) or from two runs of N1 and N2 tokens (--method runs),
 * so start-up, loading, the prompt and JIT warm-up cancel out.
 * llama.cpp (only with --llamacpp PATH or CRUMB_LLAMACPP_ARM64: an aarch64 llama-completion,
 * or a llama-cli that takes the same flags): the same weights as GGUF (Q2_K, TQ2_0, Q4_0), the
 * same prompt text, -t 1, greedy; always two runs (N1 and N2 tokens), main thread.
 * --kernels adds one kernel call class: the GEMV export of each encoding on the 1.1B matrices,
 * also with bf16 group scales (the bench's models have f16 ones, so no decode row has them).
 *
 * Writes bench/results/arm.md and arm.json, or into --out DIR (experiments); --merge keeps the
 * rows already there that this run does not measure; --json prints the document on stdout.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";
import { tokenizerFromGguf } from "../runtime/tokenizer/index.ts";
import { readGguf } from "../runtime/import/gguf.ts";
import type { GgufExportType } from "../quantizer/export/gguf-export.ts";
import type { Encoding } from "../runtime/format/encoding.ts";
import { type EncodingName, ENCODINGS, LLAMACPP_TYPE, promptIds, SHAPES } from "./config.ts";
import { prepareModels } from "./models.ts";
import type { DriverResult, DriverSpec } from "./arm/driver.ts";
import {
  arm64Bun,
  buildPlugin,
  type Counts,
  CRUMB_ENV,
  type Mark,
  missingTools,
  qemuVersion,
  REPO,
  runCounted,
  SYSROOT,
  totalCount,
} from "./arm/qemu.ts";
import { type ArmOptions, parseArgs, USAGE, UsageError } from "./arm/options.ts";
import { type ArmDocument, type DecodeRow, fmtM, type KernelRowArm, markdownReport, mergeDocuments } from "./arm/report.ts";

const VOCAB_GGUF = fileURLToPath(new URL("../../shared/models/gguf-vocab/ggml-vocab-llama-spm.gguf", import.meta.url));
const DRIVER = fileURLToPath(new URL("./arm/driver.ts", import.meta.url));

/** The GEMV shapes of --kernels: the 1.1B model's matrices (rows x cols). */
const KERNEL_SHAPES: readonly [number, number][] = [[2048, 2048], [256, 2048], [5632, 2048], [2048, 5632]];

const log = (m: string) => console.error(m);

/** tokenizer.json (+ tokenizer_config.json) of the bench's vocab GGUF, written once into the cache. */
export function tokenizerFile(cacheDir: string): string {
  const dir = join(cacheDir, `tokenizer-${basename(VOCAB_GGUF, ".gguf")}`);
  const path = join(dir, "tokenizer.json");
  if (existsSync(path)) return path;
  const files = tokenizerFromGguf(readGguf(VOCAB_GGUF).metadata as Map<string, unknown>);
  if (files === undefined) throw new Error(`${VOCAB_GGUF} carries no tokenizer`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(files.tokenizerConfig ?? {}));
  writeFileSync(path, JSON.stringify(files.tokenizerJson));
  return path;
}

/** The mark the main thread recorded under `n`. */
function markAt(c: Counts, n: number): Mark {
  const m = c.marks.find((x) => x.mark === n && x.vcpu === 0);
  if (m === undefined) {
    throw new Error(`no marker ${n} from the main thread (markers: ${c.marks.map((x) => `${x.mark}@${x.vcpu}`).join(" ")})`);
  }
  return m;
}

const mainThread = (c: Counts) => c.vcpus.get(0) ?? { insns: 0, sdot: 0 };
const allThreads = (c: Counts) => totalCount(c).insns;

interface Context {
  readonly o: ArmOptions;
  readonly plugin: string;
  readonly bun: string;
  readonly scratch: string;
  readonly notes: string[];
  /** Kernel binaries crumb ran with (the driver reports them). */
  readonly variants: string[];
  readonly limit: <T>(task: () => Promise<T>) => Promise<T>;
}

async function runDriver(ctx: Context, spec: DriverSpec): Promise<{ counts: Counts; result: DriverResult; seconds: number }> {
  const run = await runCounted(ctx.bun, [DRIVER, JSON.stringify(spec)], {
    plugin: ctx.plugin,
    cpu: ctx.o.cpu,
    env: CRUMB_ENV,
    scratch: ctx.scratch,
    cwd: REPO,
  });
  const line = run.stdout.trim().split("\n").at(-1) ?? "";
  if (!line.startsWith("{")) throw new Error(`the driver printed no result: ${run.stderr.trim().split("\n").slice(-3).join(" | ")}`);
  return { counts: run.counts, result: JSON.parse(line) as DriverResult, seconds: run.seconds };
}

interface OneMeasurement {
  readonly main: number;
  readonly all: number;
  readonly sdot: number;
  readonly promptTokens: number;
  readonly seconds: number;
  readonly tokens?: { readonly min: number; readonly median: number; readonly max: number };
  readonly marksCheck?: number;
  readonly ids: readonly number[];
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * The prompt: the text, or for a shape whose vocab is cut below the tokenizer's (tiny) 12
 * deterministic ids inside it (no llama.cpp comparison runs on such a shape).
 */
function promptFor(o: ArmOptions, shape: string): string | number[] {
  const vocab = SHAPES[shape].spec.vocab ?? 32000;
  return vocab < 32000 ? promptIds(12, o.seed, vocab) : o.prompt;
}

async function measureCrumb(ctx: Context, shape: string, model: string, tokenizer: string): Promise<OneMeasurement> {
  const [n1, n2] = ctx.o.tokens;
  const prompt = promptFor(ctx.o, shape);
  const spec = (tokens: number): DriverSpec => ({ mode: "decode", model, tokenizer, prompt, tokens, ctx: ctx.o.ctx, kv: ctx.o.kv });
  const long = await runDriver(ctx, spec(n2));
  const promptTokens = long.result.promptTokens ?? 0;
  const ids = long.result.ids ?? [];
  if (long.result.variant !== undefined && !ctx.variants.includes(long.result.variant)) ctx.variants.push(long.result.variant);
  // From the markers of the long run: tokens N1+1..N2, together and one by one.
  const a = markAt(long.counts, n1);
  const b = markAt(long.counts, n2);
  const perToken: number[] = [];
  for (let k = n1 + 1; k <= n2; k++) perToken.push(markAt(long.counts, k).insns - markAt(long.counts, k - 1).insns);
  const fromMarks = {
    main: (b.insns - a.insns) / (n2 - n1),
    all: (b.allInsns - a.allInsns) / (n2 - n1),
    sdot: (b.sdot - a.sdot) / (n2 - n1),
    promptTokens,
    tokens: { min: Math.min(...perToken), median: median(perToken), max: Math.max(...perToken) },
    ids,
  };
  if (ctx.o.method === "marks") return { ...fromMarks, seconds: long.seconds };
  const short = await runDriver(ctx, spec(n1));
  // Where the two methods part: the same work counted differently in the two runs.
  const load = markAt(long.counts, 0).insns - markAt(short.counts, 0).insns;
  const first = markAt(long.counts, n1).insns - markAt(long.counts, 0).insns -
    (markAt(short.counts, n1).insns - markAt(short.counts, 0).insns);
  const tail = mainThread(long.counts).insns - b.insns - (mainThread(short.counts).insns - markAt(short.counts, n1).insns);
  ctx.notes.push(
    `${basename(model)}, --method runs: the N2-token run minus the N1-token run counts ${load.toLocaleString("en-US")} instructions more ` +
      `before the first marker (loading), ${first.toLocaleString("en-US")} more for the prompt and the first ${n1} tokens, and ` +
      `${tail.toLocaleString("en-US")} more after the last token`,
  );
  return {
    ...fromMarks,
    main: (mainThread(long.counts).insns - mainThread(short.counts).insns) / (n2 - n1),
    all: (allThreads(long.counts) - allThreads(short.counts)) / (n2 - n1),
    sdot: (mainThread(long.counts).sdot - mainThread(short.counts).sdot) / (n2 - n1),
    marksCheck: fromMarks.main,
    seconds: long.seconds + short.seconds,
  };
}

/** llama.cpp's version line (`--version`), run under qemu without the plugin. */
function llamaVersion(binary: string, cpu: string): string {
  const r = spawnSync("qemu-aarch64", ["-L", SYSROOT, "-cpu", cpu, binary, "--version"], { encoding: "utf8", timeout: 120_000 });
  const text = `${r.stdout}\n${r.stderr}`;
  const version = /version: (.+)/.exec(text)?.[1]?.trim();
  const built = /built with (.*)/.exec(text)?.[1];
  return `${basename(binary)} ${version ?? "(version unknown)"}${built !== undefined ? `, built with ${built.trim()}` : ""}`;
}

/** llama-completion flags: fixed prompt, n tokens, 1 thread, greedy (temperature 0 alone), EOS ignored. */
function llamaArgs(o: ArmOptions, gguf: string, tokens: number): string[] {
  return [
    "-m",
    gguf,
    "-p",
    o.prompt,
    "-n",
    String(tokens),
    "-t",
    "1",
    "-tb",
    "1",
    "-c",
    String(o.ctx),
    "--temp",
    "0",
    "--samplers",
    "temperature",
    "--seed",
    "0",
    "--ignore-eos",
    "-no-cnv",
    "--no-warmup",
    "--no-display-prompt",
  ];
}

async function measureLlama(ctx: Context, binary: string, gguf: string): Promise<OneMeasurement> {
  const [n1, n2] = ctx.o.tokens;
  const run = (tokens: number) =>
    runCounted(binary, llamaArgs(ctx.o, gguf, tokens), { plugin: ctx.plugin, cpu: ctx.o.cpu, scratch: ctx.scratch });
  const short = await run(n1);
  const long = await run(n2);
  // "prompt eval time = ... / N tokens" from llama_perf_context_print.
  const promptTokens = Number(/prompt eval time\s*=.*\/\s*(\d+) tokens/.exec(long.stderr)?.[1] ?? NaN);
  const evals = Number(/\beval time\s*=.*\/\s*(\d+) runs/.exec(long.stderr.replace(/prompt eval time.*\n/, ""))?.[1] ?? NaN);
  if (Number.isFinite(evals) && evals !== n2 - 1) {
    ctx.notes.push(`llama.cpp ${basename(gguf)}: ${evals} decode evaluations for -n ${n2} (expected ${n2 - 1})`);
  }
  return {
    main: (mainThread(long.counts).insns - mainThread(short.counts).insns) / (n2 - n1),
    all: (allThreads(long.counts) - allThreads(short.counts)) / (n2 - n1),
    sdot: (mainThread(long.counts).sdot - mainThread(short.counts).sdot) / (n2 - n1),
    promptTokens,
    seconds: short.seconds + long.seconds,
    ids: [],
  };
}

/** Runs at most `jobs` tasks at a time (qemu runs are single-threaded; counts ignore the load). */
function limiter(jobs: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active < jobs) active++;
    else await new Promise<void>((resolve) => waiting.push(resolve)); // a finishing task hands over its slot
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next !== undefined) next();
      else active--;
    }
  };
}

type Repeated = { first: OneMeasurement; repeats: number[]; medians: number[]; seconds: number };

/** `repeat` identical measurements (through the limiter); the first is reported, all are listed. */
async function repeated(ctx: Context, label: string, measure: () => Promise<OneMeasurement>): Promise<Repeated> {
  const runs = await Promise.all(Array.from({ length: ctx.o.repeat }, (_, r) =>
    ctx.limit(async () => {
      const name = `${label}${ctx.o.repeat > 1 ? ` (run ${r + 1} of ${ctx.o.repeat})` : ""}`;
      log(`${name} ...`);
      const m = await measure();
      log(
        `${name}: ${fmtM(m.main)} instructions per token on the main thread (${fmtM(m.all)} all threads, ${fmtM(m.sdot)} SDOT), ${
          m.seconds.toFixed(0)
        } s`,
      );
      return m;
    })));
  if (runs.some((m) => m.ids.join() !== runs[0].ids.join())) ctx.notes.push(`${label}: repeated runs decoded different tokens`);
  return {
    first: runs[0],
    repeats: runs.map((m) => m.main),
    medians: runs.flatMap((m) => (m.tokens !== undefined ? [m.tokens.median] : [])),
    seconds: runs.reduce((s, m) => s + m.seconds, 0),
  };
}

function decodeRow(shape: string, engine: DecodeRow["engine"], weights: string, method: DecodeRow["method"], r: Repeated): DecodeRow {
  const m = r.first;
  return {
    shape,
    engine,
    weights,
    insns_per_token: Math.round(r.repeats.reduce((a, b) => a + b, 0) / r.repeats.length),
    all_threads_per_token: Math.round(m.all),
    sdot_per_token: Math.round(m.sdot),
    repeats: r.repeats.map(Math.round),
    ...(r.medians.length > 0 ? { repeat_medians: r.medians.map(Math.round) } : {}),
    ...(m.tokens !== undefined ? { token_min: m.tokens.min, token_median: m.tokens.median, token_max: m.tokens.max } : {}),
    ...(m.marksCheck !== undefined ? { marks_check: Math.round(m.marksCheck) } : {}),
    prompt_tokens: m.promptTokens,
    method,
    seconds: Math.round(r.seconds),
  };
}

function measureKernels(ctx: Context): Promise<KernelRowArm[]> {
  const calls = ctx.o.kernelCalls;
  const encodingOf = (name: string): Encoding => {
    const base = ENCODINGS[name.replace(/-bf16$/, "") as EncodingName];
    return name.endsWith("-bf16") ? { ...base, scaleType: "bf16" } as Encoding : base;
  };
  const one = (encoding: string, r: number, c: number) =>
    ctx.limit(async (): Promise<KernelRowArm> => {
      log(`kernel ${encoding} ${r}x${c} ...`);
      const { counts, result } = await runDriver(ctx, {
        mode: "kernel",
        encoding: encodingOf(encoding),
        rows: r,
        cols: c,
        calls,
        seed: ctx.o.seed,
      });
      if (result.variant !== undefined && !ctx.variants.includes(result.variant)) ctx.variants.push(result.variant);
      const span = (n: number) => {
        const a = markAt(counts, n);
        const b = markAt(counts, n + 1);
        return { insns: b.insns - a.insns, sdot: b.sdot - a.sdot };
      };
      // Calls run in the baseline tier until the JIT's tier-up: the cheapest call is the
      // steady one, and it must recur (two calls within 0.1%) to count as reached.
      const kernelSpans = Array.from({ length: calls }, (_, i) => span(2 * i));
      const best = kernelSpans.reduce((m, x) => (x.insns < m.insns ? x : m));
      if (kernelSpans.filter((x) => x.insns <= best.insns * 1.001).length < 2) {
        ctx.notes.push(
          `kernel ${encoding} ${r}x${c}: no two of ${calls} calls agree (cheapest ${best.insns}): JIT tier-up may not be finished; raise --kernel-calls`,
        );
      }
      const prepare = median(Array.from({ length: calls }, (_, j) => span(2 * calls + 2 * j).insns));
      const row: KernelRowArm = {
        encoding,
        rows: r,
        cols: c,
        export: result.exportName ?? "?",
        calls,
        insns_per_call: best.insns,
        insns_per_kweight: Math.round((best.insns / (r * c)) * 1024 * 10) / 10,
        first_call: kernelSpans[0].insns,
        sdot_per_call: best.sdot,
        prepare_insns: Math.round(prepare),
      };
      log(
        `kernel ${encoding} ${r}x${c}: ${fmtM(row.insns_per_call)} per call (${row.insns_per_kweight} per 1024 weights; first call ${
          fmtM(row.first_call)
        }), input ${fmtM(row.prepare_insns)}`,
      );
      return row;
    });
  // Each LUT encoding also with bf16 scales (the bench's models have f16 ones).
  const names = ctx.o.encodings.flatMap((
    e,
  ) => (ENCODINGS[e].kind === "bitplane" || ENCODINGS[e].kind === "ternary" ? [e, `${e}-bf16`] : [e]));
  return Promise.all(names.flatMap((e) => KERNEL_SHAPES.map(([r, c]) => one(e, r, c))));
}

async function main(): Promise<void> {
  let o: ArmOptions;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${error.message}\n${USAGE}`);
    process.exit(2);
  }
  const missing = missingTools();
  if (missing.length > 0) {
    console.error(`bench:arm needs ${missing.join(", ")}`);
    process.exit(1);
  }
  const started = performance.now();
  const loadBefore = loadavg()[0];
  const scratch = join(o.cacheDir, "arm-scratch");
  const ctx: Context = { o, plugin: buildPlugin(), bun: arm64Bun(), scratch, notes: [], variants: [], limit: limiter(o.jobs) };
  const bunVersion = spawnSync("npx", ["--no-install", "bun", "--version"], { encoding: "utf8" }).stdout.trim();
  const llamaDescription = o.llamacpp !== undefined ? llamaVersion(o.llamacpp, o.cpu) : null;
  const rows: DecodeRow[] = [];
  if (o.decode) {
    const tokenizer = tokenizerFile(o.cacheDir);
    for (const shapeName of o.shapes) {
      const withLlama = o.llamacpp !== undefined && typeof promptFor(o, shapeName) === "string";
      if (o.llamacpp !== undefined && !withLlama) ctx.notes.push(`${shapeName}: no llama.cpp run (its vocab is cut below the tokenizer's)`);
      const types: GgufExportType[] = withLlama ? [...new Set(o.encodings.map((e) => LLAMACPP_TYPE[e]))] : [];
      const files = await prepareModels(SHAPES[shapeName], o.encodings, types, {
        seed: o.seed,
        cacheDir: o.cacheDir,
        vocabGguf: VOCAB_GGUF,
        log,
      });
      const measured = await Promise.all([
        ...o.encodings.map(async (e) =>
          decodeRow(
            shapeName,
            "crumb",
            e,
            o.method,
            await repeated(ctx, `crumb ${shapeName} ${e}`, () => measureCrumb(ctx, shapeName, files.packed[e]!, tokenizer)),
          )
        ),
        ...types.map(async (t) =>
          decodeRow(
            shapeName,
            "llama.cpp",
            t,
            "runs",
            await repeated(ctx, `llama.cpp ${shapeName} ${t}`, () => measureLlama(ctx, o.llamacpp!, files.gguf[t]!)),
          )
        ),
      ]);
      rows.push(...measured);
      const crumbPrompt = rows.find((r) => r.engine === "crumb" && r.shape === shapeName)?.prompt_tokens;
      for (const r of rows.filter((x) => x.engine === "llama.cpp" && x.shape === shapeName)) {
        if (r.prompt_tokens !== crumbPrompt) {
          ctx.notes.push(`${shapeName}: llama.cpp's prompt has ${r.prompt_tokens} tokens, crumb's ${crumbPrompt}`);
        }
      }
    }
  }
  const kernels = o.kernels ? await measureKernels(ctx) : [];
  let command = `bun bench/arm.ts ${process.argv.slice(2).join(" ")}`.trim();
  ctx.notes.push(
    `\`${command}\`: ${((performance.now() - started) / 1000).toFixed(0)} s on a shared host (load average ${
      loadBefore.toFixed(1)
    } before, ${loadavg()[0].toFixed(1)} after; counts do not depend on it)`,
  );
  let doc: ArmDocument = {
    date: new Date().toISOString(),
    command,
    cpu: o.cpu,
    qemu: qemuVersion(),
    bun: `Bun ${bunVersion}`,
    kernels_binary: ctx.variants.join(", ") || "-",
    llamacpp: llamaDescription,
    llamacpp_args: ["-m", "MODEL.gguf", "-p", "PROMPT", ...llamaArgs(o, "", 0).slice(4).map((a, i) => (i === 1 ? "N" : a))].join(" "),
    tokens: o.tokens,
    ctx: o.ctx,
    kv: o.kv,
    prompt: o.prompt,
    rows,
    kernels,
    notes: ctx.notes,
  };
  mkdirSync(o.out, { recursive: true });
  const jsonPath = join(o.out, "arm.json");
  if (o.merge && existsSync(jsonPath)) doc = mergeDocuments(JSON.parse(readFileSync(jsonPath, "utf8")) as ArmDocument, doc);
  command = doc.command;
  writeFileSync(jsonPath, JSON.stringify(doc, null, 2) + "\n");
  const report = markdownReport(doc);
  writeFileSync(join(o.out, "arm.md"), report);
  log(`bench:arm finished in ${((performance.now() - started) / 1000).toFixed(0)} s; results in ${o.out}`);
  if (o.json) process.stdout.write(JSON.stringify(doc) + "\n");
  else process.stdout.write(report);
}

if (import.meta.main) {
  main().catch((error) => {
    console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
    process.exit(1);
  });
}
