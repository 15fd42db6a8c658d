/**
 * `bun run bench`: crumb vs llama.cpp, side by side in one run. Writes bench/results/bench.json,
 * bench.md and bench.svg (or --out DIR). `--quick` is the sub-minute subset (134M, q2 and
 * ternary, kv f16, ctx 128, 1 and 2 threads); `--json` prints one {"rows": [...]} object on
 * stdout (progress goes to stderr). Grid flags: --shapes 134M,1.1B,qwen2.5-0.5B,llama3.2-1B
 * (the last two with real vocabularies and tied heads, issue 13) --encodings q2,q3,q4,ternary
 * --kv f16,q8,q4,xquant --ctx 128,1024,4096 --threads 1,2 --decode 32 --seed 0 --no-llamacpp;
 * --runtime bun,deno measures crumb under each runtime (default bun);
 * --repeat N keeps the best of N runs per configuration; --prepare only generates (or finds in
 * the cache) the model files; --merge adds the rows to those already in the output directory
 * (replacing the same configurations), so a long grid can be measured in parts.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BenchRow, CRUMB_RUNTIMES, type CrumbRuntime, ENCODING_NAMES, type EncodingName, SHAPES } from "./config.ts";
import { type BenchOptions, prepareAll, runBench } from "./harness.ts";
import { markdownReport, svgChart } from "./report.ts";

const VOCAB_GGUF = fileURLToPath(new URL("../../shared/models/gguf-vocab/ggml-vocab-llama-spm.gguf", import.meta.url));
const RESULTS = fileURLToPath(new URL("./results/", import.meta.url));

const USAGE = `usage: bun bench/run.ts [--quick] [--json] [--out DIR] [--shapes 134M,1.1B,qwen2.5-0.5B,llama3.2-1B] [--encodings q2,q3,q4,ternary]
  [--kv f16,q8,q4,xquant] [--ctx 128,1024,4096] [--threads 1,2] [--runtime bun,deno] [--decode N] [--seed N] [--no-llamacpp]
  [--vocab ggml-vocab-llama-spm.gguf] [--cache DIR] [--prepare]
  [--repeat N (runs per configuration, best kept)] [--merge (add to the rows already in --out)]`;

class UsageError extends Error {}

interface Parsed {
  options: BenchOptions;
  json: boolean;
  out: string;
  prepare: boolean;
  merge: boolean;
}

function parseArgs(argv: readonly string[]): Parsed {
  const full: Omit<BenchOptions, "log"> = {
    shapes: ["134M", "1.1B", "qwen2.5-0.5B", "llama3.2-1B"],
    encodings: [...ENCODING_NAMES],
    kv: ["f16", "q8", "q4", "xquant"],
    ctx: [128, 1024, 4096],
    threads: [1, 2],
    decodeTokens: 32,
    seed: 0,
    llamacpp: true,
    vocabGguf: VOCAB_GGUF,
  };
  let options = { ...full };
  let json = false;
  let prepare = false;
  let merge = false;
  let out = RESULTS;
  const list = (v: string | undefined) => {
    if (v === undefined || v.startsWith("--")) throw new UsageError("missing value");
    return v.split(",").map((s) => s.trim()).filter((s) => s !== "");
  };
  const numbers = (v: string | undefined) => list(v).map((s) => (/^\d+k$/i.test(s) ? Number(s.slice(0, -1)) * 1024 : Number(s)));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => argv[++i];
    switch (arg) {
      case "--quick":
        options = { ...options, shapes: ["134M"], encodings: ["q2", "ternary"], kv: ["f16"], ctx: [128], threads: [1, 2] };
        break;
      case "--json": json = true; break;
      case "--prepare": prepare = true; break;
      case "--merge": merge = true; break;
      case "--out": out = list(next())[0]; break;
      case "--shapes": options.shapes = list(next()); break;
      case "--encodings": {
        const e = list(next());
        const bad = e.find((x) => !(ENCODING_NAMES as readonly string[]).includes(x));
        if (bad !== undefined) throw new UsageError(`unknown encoding "${bad}"; choose from ${ENCODING_NAMES.join(", ")}`);
        options.encodings = e as EncodingName[];
        break;
      }
      case "--kv": options.kv = list(next()); break;
      case "--ctx": options.ctx = numbers(next()); break;
      case "--threads": options.threads = numbers(next()); break;
      case "--runtime": {
        const r = list(next());
        const bad = r.find((x) => !(CRUMB_RUNTIMES as readonly string[]).includes(x));
        if (bad !== undefined) throw new UsageError(`unknown runtime "${bad}"; choose from ${CRUMB_RUNTIMES.join(", ")}`);
        options = { ...options, runtimes: r as CrumbRuntime[] };
        break;
      }
      case "--decode": options.decodeTokens = numbers(next())[0]; break;
      case "--seed": options.seed = numbers(next())[0]; break;
      case "--repeat": options = { ...options, repeat: numbers(next())[0] }; break;
      case "--no-llamacpp": options.llamacpp = false; break;
      case "--vocab": options.vocabGguf = list(next())[0]; break;
      case "--cache": options = { ...options, cacheDir: list(next())[0] }; break;
      case "--help":
      case "-h":
        console.error(USAGE);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown argument "${arg}"`);
    }
  }
  return { options: { ...options, log: (m) => console.error(m) }, json, out, prepare, merge };
}

const rowKey = (r: BenchRow) => `${r.shape}|${r.runtime ?? "bun"}|${r.encoding}|${r.kv}|${r.ctx}|${r.threads}`;

/**
 * Earlier rows with new ones replacing those of the same configuration, in table order. A
 * fresh llama.cpp measurement also replaces the one earlier rows share with it (same shape,
 * type, ctx and threads), so one llama.cpp number stands per configuration.
 */
function mergeRows(previous: readonly BenchRow[], fresh: readonly BenchRow[]): BenchRow[] {
  const llamaKey = (r: BenchRow) => `${r.shape}|${r.llamacpp?.type}|${r.ctx}|${r.threads}`;
  const llama = new Map(fresh.filter((r) => r.llamacpp !== null).map((r) => [llamaKey(r), r.llamacpp]));
  const byKey = new Map(previous.map((r) => [rowKey(r), r.llamacpp !== null && llama.has(llamaKey(r)) ? { ...r, llamacpp: llama.get(llamaKey(r))! } : r]));
  for (const r of fresh) byKey.set(rowKey(r), r);
  const shapeOrder = Object.keys(SHAPES);
  const kvOrder = ["f32", "f16", "q8", "q4", "xquant", "xquant-cl", "auto"];
  const rank = (r: BenchRow): number[] => [
    shapeOrder.indexOf(r.shape), r.ctx, r.threads, ENCODING_NAMES.indexOf(r.encoding), kvOrder.indexOf(r.kv),
    CRUMB_RUNTIMES.indexOf(r.runtime ?? "bun"),
  ];
  return [...byKey.values()].sort((a, b) => {
    const ra = rank(a);
    const rb = rank(b);
    for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return ra[i] - rb[i];
    return 0;
  });
}

async function main(): Promise<void> {
  let parsed: Parsed;
  try {
    parsed = parseArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${error.message}\n${USAGE}`);
    process.exit(2);
  }
  const { options, json, out, prepare, merge } = parsed;
  const started = performance.now();
  if (prepare) {
    await prepareAll(options);
    return;
  }
  const loadBefore = loadavg()[0];
  const measured = await runBench(options);
  let command = `bun bench/run.ts ${process.argv.slice(2).join(" ")}`.trim();
  const hostNote = `\`${command}\`: host load average ${loadBefore.toFixed(1)} before, ${loadavg()[0].toFixed(1)} after (${
    ((performance.now() - started) / 1000).toFixed(0)
  } s; other jobs share the 2 cores)`;
  let { rows } = measured;
  let notes = [...measured.notes, hostNote];
  mkdirSync(out, { recursive: true });
  const previousPath = join(out, "bench.json");
  if (merge && existsSync(previousPath)) {
    const previous = JSON.parse(readFileSync(previousPath, "utf8")) as { rows: BenchRow[]; notes?: string[]; command?: string };
    rows = mergeRows(previous.rows, rows);
    notes = [...new Set([...(previous.notes ?? []), ...notes])];
    command = `${previous.command ?? ""}; ${command}`.replace(/^; /, "");
  }
  const document = { rows: measured.rows };
  const report = markdownReport(rows, { command, decodeTokens: options.decodeTokens, notes });
  writeFileSync(previousPath, JSON.stringify({ rows, notes, command, decode_tokens: options.decodeTokens, date: new Date().toISOString() }, null, 2) + "\n");
  writeFileSync(join(out, "bench.md"), report);
  // The chart compares like with like: crumb's f16 cache against llama.cpp's (all rows if none).
  const f16 = rows.filter((r) => r.kv === "f16");
  writeFileSync(join(out, "bench.svg"), svgChart(f16.length > 0 ? f16 : rows));
  console.error(`bench finished in ${((performance.now() - started) / 1000).toFixed(1)} s; results in ${out}`);
  if (json) process.stdout.write(JSON.stringify(document) + "\n");
  else process.stdout.write(report);
}

main().catch((error) => {
  console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
  process.exit(1);
});
