#!/usr/bin/env bun
/**
 * `bun bench/heads.ts`: the decode-step cost of each candidate output-head encoding on the
 * heads of real small models (Qwen2.5-0.5B: 151936x896, Llama-3.2-1B: 128256x2048; shapes from
 * bench/config.ts). Times what the engine pays per token for the head: preparing the input
 * (LUT tables, or int8 activations for q8) plus the GEMV over the worker pool, split into row
 * tasks as runtime/ops/wasm-ops.ts does. All candidates of a shape sit in WASM memory at once
 * and are timed in interleaved rounds (the order alternates every round), so load from other
 * jobs on a shared host hits every candidate alike; each round keeps the median of `calls`
 * steps, and the report gives the median round and the median per-round ratio to q8g32 (the
 * encoding heads had before issue 13). Each head is far larger than the last-level cache, so
 * one copy streams from memory as a real head does. Weights are random packed bytes (speed does
 * not depend on the values); every pool result is checked bit-identical to the one-thread GEMV.
 * The quality side of the choice (KL on stories260K) is bench/quality.ts.
 * Flags: --shapes qwen2.5-0.5B,llama3.2-1B --candidates q8g32,q4g64zp,... --threads 1,2
 * --rounds 9 --calls 5 --json --quick (small shapes, for the tests) --out DIR (writes
 * heads.json and heads.md there; bench/quality.ts reads bench/results/heads.json).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError, KernelError } from "../runtime/errors.ts";
import { type Encoding, encodingName, matrixLayout } from "../runtime/format/encoding.ts";
import {
  buildLut,
  createLut,
  createPackedMatrix,
  createQ8Input,
  gemmShardCall,
  gemv,
  type PackedMatrix,
  type PreparedInput,
  quantizeQ8Input,
} from "../runtime/kernels/matmul.ts";
import { CHUNKS_PER_THREAD, createPool, disposePool, type Pool, rowTasks } from "../runtime/threads/pool.ts";
import { type Kernels, loadKernels } from "../runtime/kernels/wasm.ts";
import { SHAPES } from "./config.ts";
import { machineDescription } from "./report.ts";
import { randomPackedMatrix } from "./kernels-measure.ts";

const zp = (bits: 2 | 3 | 4, group: 32 | 64 | 128): Encoding => ({ kind: "bitplane", bits, group, scales: "zero-point" });

/** Head encodings measured, by encodingName (q2g64zp is a reference point, not a candidate). */
export const HEAD_CANDIDATES: readonly Encoding[] = [
  { kind: "q8", group: 32 },
  { kind: "q8", group: 128 },
  zp(4, 32),
  zp(4, 64),
  zp(4, 128),
  zp(3, 64),
  zp(2, 64),
];

const REAL_SHAPES = ["qwen2.5-0.5B", "llama3.2-1B"];
const QUICK_SHAPES = ["tiny-qwen2", "tiny-llama3"];

export interface HeadRow {
  readonly shape: string;
  readonly rows: number;
  readonly cols: number;
  readonly encoding: string;
  readonly threads: number;
  readonly weight_bytes: number;
  /** Median over rounds of each round's median decode step (input preparation + GEMV), ms. */
  readonly ms: number;
  /** Packed bytes / ms. */
  readonly gbs: number;
  /** Median over rounds of this candidate's time / q8g32's in the same round. */
  readonly vs_q8g32: number;
}

interface Options {
  shapes: string[];
  candidates: Encoding[];
  threads: number[];
  rounds: number;
  calls: number;
  json: boolean;
  out: string | undefined;
}

const USAGE = `usage: bun bench/heads.ts [--shapes ${REAL_SHAPES.join(",")}] [--candidates ${HEAD_CANDIDATES.map(encodingName).join(",")}]
  [--threads 1,2] [--rounds 9] [--calls 5 (steps per candidate per round)] [--json] [--quick (tiny shapes, 2 rounds)] [--out DIR]`;

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    shapes: REAL_SHAPES,
    candidates: [...HEAD_CANDIDATES],
    threads: [1, 2],
    rounds: 9,
    calls: 5,
    json: false,
    out: undefined,
  };
  const count = (flag: string, v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(flag, `${flag} ${v}: expected a positive integer`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--json") {
      o.json = true;
      continue;
    }
    if (flag === "--quick") {
      Object.assign(o, { shapes: QUICK_SHAPES, rounds: 2, calls: 2 });
      continue;
    }
    const v = argv[++i];
    if (v === undefined || v.startsWith("--")) throw new InvalidArgumentError(flag, `${flag} needs a value`);
    const list = v.split(",").map((s) => s.trim()).filter((s) => s !== "");
    if (flag === "--shapes") {
      const bad = list.find((s) => SHAPES[s] === undefined);
      if (bad !== undefined) throw new InvalidArgumentError(flag, `unknown shape "${bad}"; choose from ${Object.keys(SHAPES).join(", ")}`);
      o.shapes = list;
    } else if (flag === "--candidates") {
      o.candidates = list.map((name) => {
        const e = HEAD_CANDIDATES.find((c) => encodingName(c) === name);
        if (e === undefined) {
          throw new InvalidArgumentError(flag, `unknown candidate "${name}"; choose from ${HEAD_CANDIDATES.map(encodingName).join(", ")}`);
        }
        return e;
      });
      if (!o.candidates.some((e) => encodingName(e) === "q8g32")) o.candidates.unshift(HEAD_CANDIDATES[0]);
    } else if (flag === "--threads") o.threads = list.map((s) => count(flag, s));
    else if (flag === "--rounds") o.rounds = count(flag, v);
    else if (flag === "--calls") o.calls = count(flag, v);
    else if (flag === "--out") o.out = v;
    else throw new InvalidArgumentError(flag, `unknown argument "${flag}"`);
  }
  return o;
}

/** One candidate head in WASM memory with its prepared input and output. */
interface Head {
  readonly matrix: PackedMatrix;
  readonly input: PreparedInput;
  readonly prepare: () => void;
  readonly out: number;
}

function setUp(k: Kernels, e: Encoding, rows: number, cols: number, xPtr: number, seed: number): Head {
  const matrix = createPackedMatrix(k, e, rows, cols, randomPackedMatrix(e, rows, cols, seed));
  const out = k.arena.alloc(4 * rows, 64);
  if (e.kind === "q8") {
    const input = createQ8Input(k, cols, e.group, 1);
    return { matrix, input, out, prepare: () => quantizeQ8Input(k, input, xPtr, 1) };
  }
  if (e.kind !== "bitplane") throw new KernelError(`head candidate ${encodingName(e)} is neither q8 nor bitplane`);
  const input = createLut(k, cols, e.group, 1);
  return { matrix, input, out, prepare: () => buildLut(k, input, xPtr, 1) };
}

/** One decode step of the head: prepare the input, then the GEMV on `threads` threads. */
function step(k: Kernels, pool: Pool, head: Head, threads: number): void {
  head.prepare();
  const call = gemmShardCall(head.matrix, head.input, 1, head.out, head.matrix.rows);
  if (threads === 1) {
    const code = k.exports[call.exportName](...call.argsFor(0, head.matrix.rows));
    if (code !== 0) throw new KernelError(`${call.exportName} returned ${code}`);
    return;
  }
  pool.runTasks(rowTasks(call.exportName, head.matrix.rows, call.argsFor, call.align, threads * CHUNKS_PER_THREAD));
}

function median(v: readonly number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** Every candidate of one shape at every thread count, interleaved. */
function measureShape(k: Kernels, pool: Pool, shape: string, o: Options, log: (m: string) => void): HeadRow[] {
  const { hidden: cols, vocab } = SHAPES[shape].spec;
  const rows = vocab ?? 32000;
  const mark = k.arena.mark();
  try {
    const xPtr = k.arena.alloc(4 * cols, 64);
    const x = new Float32Array(k.memory.buffer, xPtr, cols);
    for (let i = 0; i < cols; i++) x[i] = Math.sin(i * 0.37) * 2 + Math.cos(i * 0.011);
    log(`${shape}: head ${rows}x${cols}, packing ${o.candidates.length} candidates ...`);
    const heads = o.candidates.map((e, i) => setUp(k, e, rows, cols, xPtr, 17 + i));
    // The pool must compute exactly what the one-thread kernel computes.
    for (const h of heads) {
      const want = gemv(k, h.matrix, x.slice()) as Float32Array;
      for (const t of o.threads) {
        new Float32Array(k.memory.buffer, h.out, rows).fill(NaN);
        step(k, pool, h, t);
        const got = new Float32Array(k.memory.buffer, h.out, rows);
        const bad = got.findIndex((v, i) => !Object.is(v, want[i]));
        if (bad >= 0) {
          throw new KernelError(
            `${encodingName(h.matrix.encoding)} ${rows}x${cols} at ${t} threads: output ${bad} is ${got[bad]}, the one-thread GEMV gives ${
              want[bad]
            }`,
          );
        }
      }
    }
    const rowsOut: HeadRow[] = [];
    for (const threads of o.threads) {
      for (const h of heads) for (let w = 0; w < 2; w++) step(k, pool, h, threads);
      const times: number[][] = heads.map(() => []);
      for (let r = 0; r < o.rounds; r++) {
        const order = heads.map((_, i) => i);
        if (r % 2 === 1) order.reverse();
        for (const i of order) {
          const per: number[] = [];
          for (let c = 0; c < o.calls; c++) {
            const t0 = performance.now();
            step(k, pool, heads[i], threads);
            per.push(performance.now() - t0);
          }
          times[i].push(median(per));
        }
      }
      heads.forEach((h, i) => {
        const bytes = matrixLayout(h.matrix.encoding, rows, cols).byteLength;
        const ms = median(times[i]);
        const row: HeadRow = {
          shape,
          rows,
          cols,
          encoding: encodingName(h.matrix.encoding),
          threads,
          weight_bytes: bytes,
          ms: Math.round(ms * 1000) / 1000,
          gbs: Math.round((bytes / ms / 1e6) * 100) / 100,
          vs_q8g32: Math.round(median(times[i].map((t, r) => t / times[0][r])) * 1000) / 1000,
        };
        log(
          `${shape} t${threads} ${row.encoding.padEnd(8)} ${row.ms.toFixed(2)} ms ${row.gbs.toFixed(1)} GB/s ${
            row.vs_q8g32.toFixed(2)
          }x q8g32`,
        );
        rowsOut.push(row);
      });
    }
    return rowsOut;
  } finally {
    k.arena.release(mark);
  }
}

/** What --json prints and --out writes (heads.json). */
export interface HeadsReport {
  readonly rows: HeadRow[];
  readonly note: string;
  readonly machine: string;
  readonly date: string;
}

export function headsMarkdown(rows: readonly HeadRow[]): string {
  const lines = [
    "| shape | head | encoding | MB | threads | ms / token | GB/s | time vs q8g32 |",
    "|---|---|---|---|---|---|---|---|",
    ...rows.map((r) =>
      `| ${r.shape} | ${r.rows}x${r.cols} | ${r.encoding} | ${(r.weight_bytes / 1e6).toFixed(1)} | ${r.threads} | ${r.ms.toFixed(2)} | ${
        r.gbs.toFixed(1)
      } | ${r.vs_q8g32.toFixed(2)}x |`
    ),
  ];
  return lines.join("\n") + "\n";
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    console.error(USAGE);
    return;
  }
  let o: Options;
  try {
    o = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    console.error(`${error.message}\n${USAGE}`);
    process.exit(2);
  }
  const log = (m: string) => console.error(m);
  const before = loadavg()[0];
  const k = loadKernels();
  const pool = await createPool({ threads: Math.max(2, ...o.threads), kernels: k });
  const rows: HeadRow[] = [];
  try {
    for (const shape of o.shapes) rows.push(...measureShape(k, pool, shape, o, log));
  } finally {
    await disposePool(pool);
  }
  const note = `\`bun bench/heads.ts ${argv.join(" ")}\``.replace(" `", "`") +
    `: ${o.rounds} rounds of ${o.calls} steps; load average ${before.toFixed(1)} before, ${loadavg()[0].toFixed(1)} after`;
  log(note);
  const report: HeadsReport = { rows, note, machine: machineDescription(), date: new Date().toISOString() };
  if (o.out !== undefined) {
    mkdirSync(o.out, { recursive: true });
    writeFileSync(join(o.out, "heads.json"), JSON.stringify(report, null, 2) + "\n");
    writeFileSync(
      join(o.out, "heads.md"),
      `# Output-head decode step per encoding\n\n${headsMarkdown(rows)}\n${note} on ${report.machine}, ${report.date.slice(0, 10)}.\n`,
    );
  }
  process.stdout.write(o.json ? JSON.stringify(report) + "\n" : `${headsMarkdown(rows)}\n${note}\n`);
}

if (import.meta.main) {
  main().catch((error) => {
    console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
    process.exit(1);
  });
}
