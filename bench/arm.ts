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
import { ENCODING_NAMES, type EncodingName, ENCODINGS, LLAMACPP_TYPE, promptIds, SHAPES } from "./config.ts";
import { defaultCacheDir, prepareModels } from "./models.ts";
import type { DriverResult, DriverSpec } from "./arm/driver.ts";
import {
  arm64Bun,
  buildPlugin,
  type Counts,
  DEFAULT_CPU,
  type Mark,
  missingTools,
  qemuVersion,
  REPO,
  runCounted,
  SYSROOT,
  totalCount,
} from "./arm/qemu.ts";

const VOCAB_GGUF = fileURLToPath(new URL("../../shared/models/gguf-vocab/ggml-vocab-llama-spm.gguf", import.meta.url));
const RESULTS = fileURLToPath(new URL("./results/", import.meta.url));
const DRIVER = fileURLToPath(new URL("./arm/driver.ts", import.meta.url));

/** The targets of issue 13: crumb / llama.cpp instructions per token at most this. */
export const TARGETS: Partial<Record<EncodingName, number>> = { q2: 0.35, ternary: 0.6 };
/** The GEMV shapes of --kernels: the 1.1B model's matrices (rows x cols). */
const KERNEL_SHAPES: readonly [number, number][] = [[2048, 2048], [256, 2048], [5632, 2048], [2048, 5632]];
const DEFAULT_PROMPT = "Once upon a time, there was a little robot who lived in a small town by the sea.";

const USAGE = `usage: bun bench/arm.ts [--shapes 1.1B] [--encodings q2,ternary,q4] [--tokens 8,24] [--ctx 64] [--kv f16]
  [--llamacpp PATH (aarch64 llama-completion; or env CRUMB_LLAMACPP_ARM64)] [--no-llamacpp]
  [--method marks|runs] [--repeat N (identical runs, to check they agree)] [--jobs N (qemu runs at a time)]
  [--kernels] [--kernel-calls 32] [--no-decode]
  [--cpu cortex-a76] [--prompt TEXT] [--seed 0] [--cache DIR] [--out DIR] [--merge] [--json]`;

class UsageError extends Error {}

export interface ArmOptions {
  shapes: string[];
  encodings: EncodingName[];
  tokens: [number, number];
  ctx: number;
  kv: string;
  llamacpp: string | undefined;
  method: "marks" | "runs";
  repeat: number;
  jobs: number;
  kernels: boolean;
  kernelCalls: number;
  decode: boolean;
  cpu: string;
  prompt: string;
  seed: number;
  cacheDir: string;
  out: string;
  merge: boolean;
  json: boolean;
}

/** One engine's decode cost on one model. Counts are guest instructions per decoded token. */
export interface DecodeRow {
  readonly shape: string;
  readonly engine: "crumb" | "llama.cpp";
  /** crumb encoding, or the llama.cpp GGUF type. */
  readonly weights: string;
  /** Main thread (vCPU 0), mean over the repeated runs: the headline figure. */
  readonly insns_per_token: number;
  /** Every guest thread together (first run; so is the SDOT count). */
  readonly all_threads_per_token: number;
  readonly sdot_per_token: number;
  /** insns_per_token of each repeated measurement (identical runs). */
  readonly repeats: readonly number[];
  /** crumb: the median single token (tokens N1+1..N2) of each repeated measurement. */
  readonly repeat_medians?: readonly number[];
  /** crumb: the main-thread count of single tokens N1+1..N2 (min, median, max), from markers. */
  readonly token_min?: number;
  readonly token_median?: number;
  readonly token_max?: number;
  /** crumb with --method runs: the same figure from the markers of the N2-token run (a cross-check). */
  readonly marks_check?: number;
  readonly prompt_tokens: number;
  readonly method: "marks" | "runs";
  readonly seconds: number;
}

export interface KernelRowArm {
  /** A bench encoding, or one with "-bf16": the same with bf16 group scales (a kernel-only variant). */
  readonly encoding: string;
  readonly rows: number;
  readonly cols: number;
  readonly export: string;
  /** Calls made. */
  readonly calls: number;
  /** The cheapest call's instructions (after JIT tier-up), and per 1024 weights. */
  readonly insns_per_call: number;
  readonly insns_per_kweight: number;
  readonly first_call: number;
  readonly sdot_per_call: number;
  /** Building the call's input (LUT or q8 codes) for one token (median of the calls). */
  readonly prepare_insns: number;
}

export interface ArmDocument {
  readonly date: string;
  readonly command: string;
  readonly cpu: string;
  readonly qemu: string;
  readonly bun: string;
  /** crumb's kernel binary under that Bun (relaxed-simd: SDOT through the "dot" LUT flavour). */
  readonly kernels_binary: string;
  readonly llamacpp: string | null;
  /** llama.cpp's command line (model and prompt elided). */
  readonly llamacpp_args: string;
  readonly tokens: readonly number[];
  readonly ctx: number;
  readonly kv: string;
  readonly prompt: string;
  readonly rows: DecodeRow[];
  readonly kernels: KernelRowArm[];
  readonly notes: string[];
}

function parseArgs(argv: readonly string[]): ArmOptions {
  const o: ArmOptions = {
    shapes: ["1.1B"],
    encodings: ["q2", "ternary", "q4"],
    tokens: [8, 24],
    ctx: 64,
    kv: "f16",
    llamacpp: process.env.CRUMB_LLAMACPP_ARM64 || undefined,
    method: "marks",
    repeat: 1,
    jobs: 1,
    kernels: false,
    kernelCalls: 32,
    decode: true,
    cpu: DEFAULT_CPU,
    prompt: DEFAULT_PROMPT,
    seed: 0,
    cacheDir: defaultCacheDir(),
    out: RESULTS,
    merge: false,
    json: false,
  };
  const value = (flag: string, v: string | undefined): string => {
    if (v === undefined || v.startsWith("--")) throw new UsageError(`${flag} needs a value`);
    return v;
  };
  const list = (flag: string, v: string | undefined) => value(flag, v).split(",").map((s) => s.trim()).filter((s) => s !== "");
  const int = (flag: string, v: string | undefined, min: number) => {
    const n = Number(value(flag, v));
    if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag} must be an integer >= ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => argv[++i];
    switch (arg) {
      case "--shapes": {
        o.shapes = list(arg, next());
        const bad = o.shapes.find((s) => SHAPES[s] === undefined);
        if (bad !== undefined) throw new UsageError(`unknown shape "${bad}"; choose from ${Object.keys(SHAPES).join(", ")}`);
        break;
      }
      case "--encodings": {
        const e = list(arg, next());
        const bad = e.find((x) => !(ENCODING_NAMES as readonly string[]).includes(x));
        if (bad !== undefined) throw new UsageError(`unknown encoding "${bad}"; choose from ${ENCODING_NAMES.join(", ")}`);
        o.encodings = e as EncodingName[];
        break;
      }
      case "--tokens": {
        const t = list(arg, next()).map(Number);
        if (t.length !== 2 || !t.every(Number.isInteger) || !(t[0] >= 1 && t[1] > t[0])) {
          throw new UsageError("--tokens takes N1,N2 with 1 <= N1 < N2");
        }
        o.tokens = [t[0], t[1]];
        break;
      }
      case "--ctx":
        o.ctx = int(arg, next(), 8);
        break;
      case "--kv":
        o.kv = value(arg, next());
        break;
      case "--llamacpp":
        o.llamacpp = value(arg, next());
        break;
      case "--no-llamacpp":
        o.llamacpp = undefined;
        break;
      case "--method": {
        const m = value(arg, next());
        if (m !== "marks" && m !== "runs") throw new UsageError("--method is marks or runs");
        o.method = m;
        break;
      }
      case "--repeat":
        o.repeat = int(arg, next(), 1);
        break;
      case "--jobs":
        o.jobs = int(arg, next(), 1);
        break;
      case "--kernels":
        o.kernels = true;
        break;
      case "--kernel-calls":
        o.kernelCalls = int(arg, next(), 1);
        break;
      case "--no-decode":
        o.decode = false;
        break;
      case "--cpu":
        o.cpu = value(arg, next());
        break;
      case "--prompt":
        o.prompt = value(arg, next());
        break;
      case "--seed":
        o.seed = int(arg, next(), 0);
        break;
      case "--cache":
        o.cacheDir = value(arg, next());
        break;
      case "--out":
        o.out = value(arg, next());
        break;
      case "--merge":
        o.merge = true;
        break;
      case "--json":
        o.json = true;
        break;
      case "--help":
      case "-h":
        console.error(USAGE);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown argument "${arg}"`);
    }
  }
  if (o.llamacpp !== undefined && !existsSync(o.llamacpp)) throw new UsageError(`llama.cpp binary ${o.llamacpp} does not exist`);
  return o;
}

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

/**
 * Environment of every crumb run, for counts that do not depend on timing: JIT compilation
 * and garbage collection on the main thread (counted there), and no Bun GC timer (under
 * emulation a wall-clock timer fires every few tokens, where natively it would every hundred).
 */
export const CRUMB_ENV = { BUN_JSC_useConcurrentJIT: "0", BUN_JSC_useConcurrentGC: "0", BUN_GC_TIMER_DISABLE: "1" };

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

const fmtM = (v: number) => (Number.isFinite(v) ? `${(v / 1e6).toFixed(1)} M` : "-");
const fmtRatio = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : "-");

/** The spread of identical runs as a fraction of the smallest. */
function spread(values: readonly number[]): number {
  if (values.length < 2) return NaN;
  return (Math.max(...values) - Math.min(...values)) / Math.min(...values);
}

export function markdownReport(doc: ArmDocument): string {
  const [n1, n2] = doc.tokens;
  const lines = [
    "# ARM64 instruction counts (bench:arm)",
    "",
    `\`${doc.command}\`, ${
      doc.date.slice(0, 10)
    }: ${doc.qemu}, \`-cpu ${doc.cpu}\`, ${doc.bun} for linux-aarch64 (crumb kernels: ${doc.kernels_binary})` +
    `${doc.llamacpp !== null ? `; llama.cpp: ${doc.llamacpp}` : ""}.`,
    "",
    "Guest instructions per decoded token on the main thread (1 thread), counted by bench/arm/insn-count.c: the",
    `instruction count after token ${n2} minus the count after token ${n1}, divided by ${n2 - n1} (mean of the repeated runs), so`,
    `start-up, loading, the prompt and JIT warm-up cancel out; for crumb also its median single token (the steadier figure`,
    `for judging a kernel change: a garbage collection lands in the window in some runs and not others).`,
    `The prompt text is the same for both engines (ctx ${doc.ctx}, greedy; crumb kv ${doc.kv}).`,
    "crumb: Bun runs bench/arm/driver.ts (loadEngine + generate, one thread) with " +
    Object.entries(CRUMB_ENV).map(([k, v]) => `${k}=${v}`).join(" ") + " (JIT compilation and GC",
    "on the main thread, where they are counted; no wall-clock GC timer), markers after each token (one run).",
    `llama.cpp: \`${doc.llamacpp_args}\`, one run of ${n1} and one of ${n2} tokens`,
    "(with one thread its compute runs on the main thread: compare the all-threads column).",
    "Random-weight models of real shapes from bench/models.ts (crumb: bit-planes group 64 / ternary group 256 as",
    "bench/config.ts packs them, embeddings q8, lm_head the quantizer's default for the width (q4 g64 for q2, q8 g128",
    "otherwise); llama.cpp: the same weights exported to Q2_K / TQ2_0 / Q4_0 with Q8_0 embeddings and a Q6_K head).",
    "Instruction counts are a proxy, not time: qemu models no caches, memory bandwidth or instruction latencies.",
    "",
    "| shape | crumb | instr/token | median token | all threads | SDOT/token | llama.cpp | instr/token | SDOT/token | crumb / llama.cpp | target |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  const crumbRows = doc.rows.filter((r) => r.engine === "crumb");
  for (const r of crumbRows) {
    const type = LLAMACPP_TYPE[r.weights as EncodingName];
    const l = doc.rows.find((x) => x.engine === "llama.cpp" && x.shape === r.shape && x.weights === type);
    const ratio = l !== undefined ? r.insns_per_token / l.insns_per_token : NaN;
    const target = TARGETS[r.weights as EncodingName];
    const verdict = target === undefined
      ? "-"
      : Number.isFinite(ratio)
      ? `<= ${target}x: ${ratio <= target ? "met" : "not met"}`
      : `<= ${target}x`;
    lines.push(
      `| ${r.shape} | ${r.weights} | ${fmtM(r.insns_per_token)} | ${r.token_median !== undefined ? fmtM(r.token_median) : "-"} | ${
        fmtM(r.all_threads_per_token)
      } | ${fmtM(r.sdot_per_token)} | ${l?.weights ?? type} | ${l !== undefined ? fmtM(l.insns_per_token) : "-"} | ${
        l !== undefined ? fmtM(l.sdot_per_token) : "-"
      } | ${fmtRatio(ratio)} | ${verdict} |`,
    );
  }
  for (
    const l of doc.rows.filter((x) =>
      x.engine === "llama.cpp" && !crumbRows.some((r) => r.shape === x.shape && LLAMACPP_TYPE[r.weights as EncodingName] === x.weights)
    )
  ) {
    lines.push(`| ${l.shape} | - | - | - | - | - | ${l.weights} | ${fmtM(l.insns_per_token)} | ${fmtM(l.sdot_per_token)} | - | - |`);
  }
  lines.push(
    "",
    "Per measurement: instructions per token (the headline figure) of each identical run and their spread; for crumb",
    "also the single tokens N1+1..N2 of the first run (min / median / max: a garbage collection or a JIT compilation",
    "landing in the window makes the maximum) and the median token of each run with its spread.",
    "",
    "| shape | engine | weights | method | prompt tokens | instr/token, each run | spread | token min / median / max | median token, each run | spread | qemu s |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  );
  const pct = (v: number) => (Number.isFinite(v) ? `${(v * 100).toFixed(3)}%` : "-");
  const list = (v: readonly number[]) => v.map((x) => x.toLocaleString("en-US")).join(", ");
  for (const r of doc.rows) {
    lines.push(
      `| ${r.shape} | ${r.engine} | ${r.weights} | ${r.method} | ${r.prompt_tokens} | ${list(r.repeats)} | ${pct(spread(r.repeats))} | ${
        r.token_min !== undefined ? `${fmtM(r.token_min)} / ${fmtM(r.token_median!)} / ${fmtM(r.token_max!)}` : "-"
      } | ${r.repeat_medians !== undefined ? list(r.repeat_medians) : "-"} | ${
        r.repeat_medians !== undefined ? pct(spread(r.repeat_medians)) : "-"
      } | ${r.seconds} |`,
    );
  }
  for (const r of doc.rows.filter((x) => x.marks_check !== undefined)) {
    lines.push(
      "",
      `${r.shape} ${r.weights}: two runs give ${fmtM(r.insns_per_token)} per token, the markers of the longer one ${fmtM(r.marks_check!)}.`,
    );
  }
  if (doc.kernels.length > 0) {
    lines.push(
      "",
      `One kernel call class: the GEMV export for one token on random packed codes (the cheapest of ${
        doc.kernels[0].calls
      } calls: after JIT`,
      "tier-up; the first call for comparison), and building its input (the activation LUT, or q8 codes; median call).",
      "`-bf16`: the same encoding with bf16 group scales (kernel only: the bench's models carry f16 scales).",
      "",
      "| encoding | rows x cols | export | instr/call | per 1024 weights | SDOT/call | first call | input build |",
      "|---|---|---|---|---|---|---|---|",
    );
    for (const k of doc.kernels) {
      lines.push(
        `| ${k.encoding} | ${k.rows}x${k.cols} | ${k.export} | ${fmtM(k.insns_per_call)} | ${k.insns_per_kweight} | ${
          fmtM(k.sdot_per_call)
        } | ${fmtM(k.first_call)} | ${fmtM(k.prepare_insns)} |`,
      );
    }
  }
  if (doc.notes.length > 0) lines.push("", "Notes:", "", ...doc.notes.map((n) => `- ${n}`));
  return lines.join("\n") + "\n";
}

function mergeDocuments(previous: ArmDocument, fresh: ArmDocument): ArmDocument {
  const key = (r: DecodeRow) => `${r.shape}|${r.engine}|${r.weights}`;
  const kkey = (k: KernelRowArm) => `${k.encoding}|${k.rows}|${k.cols}`;
  const rows = new Map(previous.rows.map((r) => [key(r), r]));
  for (const r of fresh.rows) rows.set(key(r), r);
  const kernels = new Map(previous.kernels.map((k) => [kkey(k), k]));
  for (const k of fresh.kernels) kernels.set(kkey(k), k);
  return {
    ...fresh,
    command: `${previous.command}; ${fresh.command}`,
    llamacpp: fresh.llamacpp ?? previous.llamacpp,
    kernels_binary: [...new Set([previous.kernels_binary, fresh.kernels_binary].filter((v) => v !== "-"))].join(", ") || "-",
    rows: [...rows.values()],
    kernels: [...kernels.values()],
    notes: [...new Set([...previous.notes, ...fresh.notes])],
  };
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
