/**
 * The benchmark grid: for each shape, prepare (or reuse) the model files, then run every
 * (encoding, kv, ctx, threads) configuration of crumb, and the matching llama.cpp
 * configuration on the same weights, each in a fresh subprocess (bench/worker.ts). llama.cpp
 * runs once per (type, ctx, threads) and is shared by the rows that compare against it
 * (q2 and q3 both against Q2_K; every crumb kv mode against llama.cpp's f16 cache).
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { InvalidArgumentError } from "../runtime/errors.ts";
import type { GgufExportType } from "../quantizer/export/gguf-export.ts";
import { type BenchRow, type CrumbRuntime, type EncodingName, LLAMACPP_TYPE, type RunResult, type RunSpec, SHAPES } from "./config.ts";
import { supportedKvTypes } from "./crumb.ts";
import { prepareModels } from "./models.ts";

export interface BenchOptions {
  readonly shapes: readonly string[];
  readonly encodings: readonly EncodingName[];
  readonly kv: readonly string[];
  readonly ctx: readonly number[];
  readonly threads: readonly number[];
  /** Runtimes crumb is measured under (default bun). */
  readonly runtimes?: readonly CrumbRuntime[];
  /** Greedy decode steps timed per configuration. */
  readonly decodeTokens: number;
  readonly seed: number;
  readonly llamacpp: boolean;
  readonly vocabGguf: string;
  readonly cacheDir?: string;
  readonly log?: (message: string) => void;
  /** Per-run subprocess time limit. */
  readonly timeoutMs?: number;
  /** Runs per configuration; the fastest decode and the fastest prefill are kept (noisy hosts). */
  readonly repeat?: number;
}

export interface BenchResult {
  readonly rows: BenchRow[];
  /** Skipped configurations and why. */
  readonly notes: string[];
}

const WORKER = fileURLToPath(new URL("./worker.ts", import.meta.url));
const DENO = fileURLToPath(new URL("../node_modules/deno/deno", import.meta.url));

/** The command of a measurement process: `bun bench/worker.ts`, or the same under Deno. */
function workerCommand(spec: RunSpec): [string, string[]] {
  const arg = JSON.stringify(spec);
  if (spec.runtime === "deno") return [DENO, ["run", "-A", "--quiet", "--v8-flags=--expose-gc", WORKER, arg]];
  return [process.execPath, [WORKER, arg]];
}

/** Runs one measurement in a fresh `bun bench/worker.ts` (or Deno) process. */
export function runInSubprocess(spec: RunSpec, timeoutMs = 30 * 60_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const [command, args] = workerCommand(spec);
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      const line = stdout.trim().split("\n").at(-1) ?? "";
      if (code === 0 && line.startsWith("{")) resolve(JSON.parse(line) as RunResult);
      else reject(new Error(`${spec.engine} run on ${spec.model} (ctx ${spec.ctx}, ${spec.threads} threads, kv ${spec.kv}) failed with exit code ${code}: ${stderr.trim().split("\n").slice(-5).join(" | ")}`));
    });
  });
}

/** Runs `spec` `repeat` times in fresh processes; keeps the best decode and prefill. */
async function bestOf(spec: RunSpec, repeat: number, timeoutMs?: number): Promise<RunResult> {
  let best = await runInSubprocess(spec, timeoutMs);
  for (let i = 1; i < repeat; i++) {
    const r = await runInSubprocess(spec, timeoutMs);
    best = {
      ...best,
      decode_tps: Math.max(best.decode_tps, r.decode_tps),
      prefill_tps: Math.max(best.prefill_tps, r.prefill_tps),
      ttft_ms: Math.min(best.ttft_ms, r.ttft_ms),
      rss_mb: Math.max(best.rss_mb, r.rss_mb),
    };
  }
  return best;
}

function checkOptions(o: BenchOptions): void {
  for (const s of o.shapes) {
    if (SHAPES[s] === undefined) throw new InvalidArgumentError("shape", `unknown shape "${s}"; choose from ${Object.keys(SHAPES).join(", ")}`);
  }
  for (const c of o.ctx) {
    if (!Number.isInteger(c) || c <= o.decodeTokens) {
      throw new InvalidArgumentError("ctx", `ctx ${c} must be an integer above the ${o.decodeTokens} decode tokens`);
    }
  }
  for (const t of o.threads) if (!Number.isInteger(t) || t < 1) throw new InvalidArgumentError("threads", `threads ${t} must be a positive integer`);
}

function ggufTypesFor(o: BenchOptions): GgufExportType[] {
  return o.llamacpp ? [...new Set(o.encodings.map((e) => LLAMACPP_TYPE[e]))] : [];
}

/** Generates (or finds in the cache) every model file the grid needs, without measuring. */
export async function prepareAll(o: BenchOptions): Promise<void> {
  checkOptions(o);
  for (const s of o.shapes) {
    await prepareModels(SHAPES[s], o.encodings, ggufTypesFor(o), { seed: o.seed, cacheDir: o.cacheDir, vocabGguf: o.vocabGguf, log: o.log });
  }
}

export async function runBench(o: BenchOptions): Promise<BenchResult> {
  checkOptions(o);
  const log = o.log ?? (() => {});
  const supported = supportedKvTypes();
  const notes: string[] = [];
  const kvs = o.kv.filter((k) => {
    if (supported.includes(k)) return true;
    notes.push(`kv ${k} skipped: the WASM backend supports ${supported.join(", ")}`);
    log(notes.at(-1)!);
    return false;
  });
  const rows: BenchRow[] = [];
  for (const shapeName of o.shapes) {
    const shape = SHAPES[shapeName];
    const files = await prepareModels(shape, o.encodings, ggufTypesFor(o), { seed: o.seed, cacheDir: o.cacheDir, vocabGguf: o.vocabGguf, log });
    const llamaRuns = new Map<string, RunResult | null>();
    const base = { decodeTokens: o.decodeTokens, seed: o.seed, vocab: shape.spec.vocab ?? 32000 };
    for (const ctx of o.ctx) {
      for (const threads of o.threads) {
        for (const encoding of o.encodings) {
          let llamacpp: BenchRow["llamacpp"] = null;
          if (o.llamacpp) {
            const type: GgufExportType = LLAMACPP_TYPE[encoding];
            const key = `${type}/${ctx}/${threads}`;
            if (!llamaRuns.has(key)) {
              log(`llama.cpp ${shapeName} ${type} ctx ${ctx} threads ${threads} ...`);
              try {
                llamaRuns.set(key, await bestOf({ ...base, engine: "llamacpp", model: files.gguf[type]!, threads, ctx, kv: "f16" }, o.repeat ?? 1, o.timeoutMs));
              } catch (error) {
                notes.push(`llama.cpp ${shapeName} ${type} ctx ${ctx} threads ${threads}: ${(error as Error).message}`);
                log(notes.at(-1)!);
                llamaRuns.set(key, null);
              }
            }
            const r = llamaRuns.get(key);
            llamacpp = r ? { type, decode_tps: r.decode_tps, prefill_tps: r.prefill_tps, ttft_ms: r.ttft_ms, rss_mb: r.rss_mb } : null;
          }
          for (const kv of kvs) for (const runtime of o.runtimes ?? ["bun"]) {
            const label = `crumb (${runtime}) ${shapeName} ${encoding} kv ${kv} ctx ${ctx} threads ${threads}`;
            log(`${label} ...`);
            let r: RunResult;
            try {
              r = await bestOf({ ...base, engine: "crumb", runtime, model: files.packed[encoding]!, threads, ctx, kv }, o.repeat ?? 1, o.timeoutMs);
            } catch (error) {
              notes.push(`${label} skipped: ${(error as Error).message}`);
              log(notes.at(-1)!);
              continue;
            }
            const row: BenchRow = {
              shape: shapeName, runtime, encoding, kv, ctx, threads,
              decode_tps: r.decode_tps, prefill_tps: r.prefill_tps, ttft_ms: r.ttft_ms, rss_mb: r.rss_mb,
              kv_bytes_per_token: r.kv_bytes_per_token,
              llamacpp,
            };
            log(`  decode ${r.decode_tps.toFixed(1)} tok/s, prefill ${r.prefill_tps.toFixed(1)} tok/s` +
              (llamacpp ? ` | llama.cpp ${llamacpp.type}: decode ${llamacpp.decode_tps.toFixed(1)}, prefill ${llamacpp.prefill_tps.toFixed(1)}` : ""));
            rows.push(row);
          }
        }
      }
    }
  }
  return { rows, notes };
}
