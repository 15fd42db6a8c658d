/**
 * A/B timing of LUT matmul kernel builds: `bun bench/kernels-ab.ts --wasm a.wasm,b.wasm` (or
 * `deno run -A bench/kernels-ab.ts ...`) loads each binary (plain swizzles rewritten to relaxed
 * ones where the runtime has them, as the loader did for binaries built before relaxed SIMD
 * could be emitted: ./relaxed-rewrite.ts) over its own memory with the same random packed
 * matrices and tables, checks that builds of the same kernel ABI give bit-identical outputs
 * (m = 1..17 tokens, so token tiles and odd tails are covered), then times `gemm_lut` on one
 * thread (or a worker pool per build with --threads N) in interleaved rounds (the build order
 * alternates every round) so that load from other jobs on a shared host hits every build
 * alike. Per build it prints the median and best round (ms per call) and the median per-round
 * ratio to the first build.
 * Builds of ABI 4 (before engine v2: 16-row tiles, plane-major, biased tables) read the same
 * bytes: their blocks have the same size with the f16 scales at the same offsets, so the
 * matrix is valid for both and streams the same number of bytes, though it means different
 * weights; outputs are compared only between builds of one ABI.
 */
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { InvalidArgumentError, KernelError } from "../runtime/errors.ts";
import { type Encoding, lutPlanes, matrixLayout } from "../runtime/format/encoding.ts";
import { createPool, disposePool, type Pool } from "../runtime/threads/pool.ts";
import { relaxedSwizzleBinary } from "./relaxed-rewrite.ts";
import { Arena, instantiateKernels, type KernelExports, type Kernels, KERNELS_ABI_VERSION } from "../runtime/kernels/wasm.ts";
import { KERNEL_ENCODING, randomPackedMatrix } from "./kernels-measure.ts";

const USAGE = `usage: bun bench/kernels-ab.ts --wasm A.wasm,B.wasm[,...] [--encodings q2,q3,q4,ternary]
  [--shapes 2048x5632,5632x2048] [--m 1 (tokens per call)] [--rounds 15] [--calls 15 (per round)]
  [--working-set-mb 64 (matrix copies cycled per build; 0 = one hot copy)] [--threads 1 (pool per build)]
  [--no-check (skip the bit-identity check: timing experiments only)]
A path ending in ":plain" loads that binary without the relaxed-swizzle rewrite.`;

const LUT_ENCODINGS = ["q2", "q3", "q4", "ternary"] as const;
type LutEncodingName = typeof LUT_ENCODINGS[number];
const MIB = 2 ** 20;

interface Options {
  wasm: string[];
  encodings: LutEncodingName[];
  shapes: [number, number][];
  m: number;
  rounds: number;
  calls: number;
  workingSet: number;
  noCheck: boolean;
  threads: number;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    wasm: [],
    encodings: ["q2", "q3", "q4", "ternary"],
    shapes: [[2048, 5632], [5632, 2048]],
    m: 1,
    rounds: 15,
    calls: 15,
    workingSet: 64 * MIB,
    noCheck: false,
    threads: 1,
  };
  const count = (flag: string, v: string | undefined, min = 1): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(flag, `${flag} ${v}: expected an integer >= ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const v = argv[++i];
    if (flag === "--no-check") {
      o.noCheck = true;
      i--;
      continue;
    }
    if (v === undefined) throw new InvalidArgumentError(flag, `${flag} needs a value`);
    if (flag === "--wasm") o.wasm = v.split(",");
    else if (flag === "--encodings") {
      const list = v.split(",");
      const bad = list.find((s) => !(LUT_ENCODINGS as readonly string[]).includes(s));
      if (bad !== undefined) throw new InvalidArgumentError(flag, `unknown encoding "${bad}"; choose from ${LUT_ENCODINGS.join(", ")}`);
      o.encodings = list as LutEncodingName[];
    } else if (flag === "--shapes") {
      o.shapes = v.split(",").map((s) => {
        const r = /^(\d+)x(\d+)$/.exec(s);
        if (r === null) throw new InvalidArgumentError(flag, `shape "${s}": expected ROWSxCOLS`);
        return [Number(r[1]), Number(r[2])];
      });
    } else if (flag === "--m") o.m = count(flag, v);
    else if (flag === "--threads") o.threads = count(flag, v);
    else if (flag === "--rounds") o.rounds = count(flag, v);
    else if (flag === "--calls") o.calls = count(flag, v);
    else if (flag === "--working-set-mb") o.workingSet = count(flag, v, 0) * MIB;
    else throw new InvalidArgumentError(flag, `unknown argument "${flag}"`);
  }
  if (o.wasm.length < 1) throw new InvalidArgumentError("--wasm", "--wasm needs at least one binary");
  return o;
}

/** One build over its own shared memory with its arena, and a pool when timing on threads. */
class Build {
  readonly kernels: Kernels;
  readonly abi: number;
  pool: Pool | undefined;

  constructor(readonly path: string) {
    const plain = path.endsWith(":plain");
    const bytes = new Uint8Array(readFileSync(plain ? path.slice(0, -":plain".length) : path));
    const relaxed = plain ? undefined : relaxedSwizzleBinary(bytes);
    const binary = relaxed !== undefined && WebAssembly.validate(relaxed) ? relaxed : bytes;
    const memory = new WebAssembly.Memory({ initial: 64, maximum: 65536, shared: true });
    const module = new WebAssembly.Module(binary);
    const raw = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
    this.abi = raw.kernels_abi_version();
    // The current ABI goes through the loader (which also picks the LUT flavour); older ones raw.
    const instance = this.abi === KERNELS_ABI_VERSION ? instantiateKernels(memory, undefined, module) : { exports: raw, memory, module };
    this.kernels = { ...instance, arena: new Arena(memory, Number(instance.exports.__heap_base.value)) };
  }

  get exports(): KernelExports {
    return this.kernels.exports;
  }

  get memory(): WebAssembly.Memory {
    return this.kernels.memory;
  }

  alloc(bytes: number): number {
    return this.kernels.arena.alloc(bytes, 64);
  }

  reset(mark: number): void {
    this.kernels.arena.release(mark);
  }

  mark(): number {
    return this.kernels.arena.mark();
  }
}

interface Case {
  readonly groups: number;
  readonly blockBytes: number;
  readonly mats: number[];
  readonly lut: number;
  readonly lutStride: number;
  readonly out: number;
}

function lutArgs(e: Encoding): [number, number, number] {
  if (e.kind === "bitplane") return [e.bits, e.group, e.scales === "zero-point" ? 0 : 1];
  if (e.kind === "ternary") return [lutPlanes(e), e.group, 2];
  throw new KernelError(`not a LUT encoding`);
}

/** scale type argument of the ABI 5 kernel (0 f16, 1 bf16). */
function scaleTypeArg(e: Encoding): number {
  return "scaleType" in e && e.scaleType === "bf16" ? 1 : 0;
}

function setUp(b: Build, e: Encoding, rows: number, cols: number, packed: Uint8Array, copies: number, mMax: number): Case {
  const mats = Array.from({ length: copies }, () => {
    const p = b.alloc(packed.byteLength);
    new Uint8Array(b.memory.buffer, p, packed.byteLength).set(packed);
    return p;
  });
  const group = (e as { group: number }).group;
  const lutStride = Math.ceil(cols / group) * (4 * group + 8);
  const lut = b.alloc(lutStride * mMax);
  const x = b.alloc(4 * cols * mMax);
  const xs = new Float32Array(b.memory.buffer, x, cols * mMax);
  for (let i = 0; i < xs.length; i++) xs[i] = Math.sin(i * 0.37) * 2 + Math.cos(i * 0.011);
  if (b.exports.build_lut_f32_batch(x, cols, mMax, cols, group, lut) !== 0) throw new KernelError("build_lut_f32_batch failed");
  const l = matrixLayout(e, rows, cols);
  return { groups: l.groups, blockBytes: l.blockBytes, mats, lut, lutStride, out: b.alloc(4 * rows * mMax) };
}

/** gemm_lut's arguments for rows [begin, end): ABI 5 takes the whole matrix and the range, ABI 4 a shifted pointer. */
function gemmArgs(b: Build, c: Case, args: [number, number, number], st: number, mat: number, m: number, rows: number, cols: number, begin: number, end: number): number[] {
  if (b.abi >= 5) return [...args, st, mat, c.lut, c.lutStride, m, rows, begin, end, cols, c.out, rows];
  const tileBytes = c.blockBytes * c.groups; // one row tile of 16 rows
  return [...args, mat + (begin / 16) * tileBytes, c.lut, c.lutStride, m, end - begin, cols, c.out + 4 * begin, rows];
}

function call(b: Build, c: Case, args: [number, number, number], st: number, mat: number, m: number, rows: number, cols: number): void {
  if (b.pool !== undefined) {
    b.pool.runRows("gemm_lut", rows, (begin, end) => gemmArgs(b, c, args, st, mat, m, rows, cols, begin, end), 16);
    return;
  }
  const r = b.exports.gemm_lut(...gemmArgs(b, c, args, st, mat, m, rows, cols, 0, rows));
  if (r !== 0) throw new KernelError(`gemm_lut returned ${r}`);
}

function median(v: readonly number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h] : (s[h - 1] + s[h]) / 2;
}

async function main(): Promise<void> {
  let o: Options;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  const builds = o.wasm.map((p) => new Build(p));
  if (o.threads > 1) {
    for (const b of builds) b.pool = await createPool({ threads: o.threads, kernels: b.kernels });
  }
  const runtime = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "Deno" in globalThis ? "deno" : "node";
  console.log(`runtime ${runtime}; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}; m ${o.m}; threads ${o.threads}`);
  const checkM = [1, 2, 3, 8, 9, 17];
  const mMax = Math.max(o.m, ...checkM);
  for (const [rows, cols] of o.shapes) {
    for (const name of o.encodings) {
      // Ternary at group 64: ABI 4 builds have no group 256 (bench/config.ts packs 256); the same format in every build.
      const e = name === "ternary" ? { ...KERNEL_ENCODING.ternary, group: 64 } as Encoding : KERNEL_ENCODING[name];
      const args = lutArgs(e);
      const st = scaleTypeArg(e);
      const packed = randomPackedMatrix(e, rows, cols, rows * 7 + cols);
      const copies = Math.max(1, Math.ceil(o.workingSet / packed.byteLength));
      const marks = builds.map((b) => b.mark());
      const cases = builds.map((b) => setUp(b, e, rows, cols, packed, copies, mMax));
      for (const m of checkM) {
        const outs = builds.map((b, i) => {
          new Float32Array(b.memory.buffer, cases[i].out, rows * m).fill(NaN);
          call(b, cases[i], args, st, cases[i].mats[0], m, rows, cols);
          return new Uint32Array(b.memory.buffer.slice(cases[i].out, cases[i].out + 4 * rows * m));
        });
        for (let i = 1; i < outs.length && !o.noCheck; i++) {
          const first = builds.findIndex((b) => b.abi === builds[i].abi);
          if (first === i) continue;
          const bad = outs[i].findIndex((v, j) => v !== outs[first][j]);
          if (bad >= 0) throw new KernelError(`${name} ${rows}x${cols} m ${m}: ${o.wasm[i]} differs from ${o.wasm[first]} at output ${bad}`);
        }
      }
      const times: number[][] = builds.map(() => []);
      let n = 0;
      for (let i = 0; i < builds.length; i++) for (let w = 0; w < 3 * o.calls; w++) call(builds[i], cases[i], args, st, cases[i].mats[n++ % copies], o.m, rows, cols);
      for (let r = 0; r < o.rounds; r++) {
        const order = builds.map((_, i) => i);
        if (r % 2 === 1) order.reverse();
        for (const i of order) {
          const per: number[] = [];
          for (let c = 0; c < o.calls; c++) {
            const t0 = performance.now();
            call(builds[i], cases[i], args, st, cases[i].mats[n++ % copies], o.m, rows, cols);
            per.push(performance.now() - t0);
          }
          times[i].push(median(per));
        }
      }
      const line = builds.map((_, i) => {
        const ratio = median(times[i].map((t, r) => t / times[0][r]));
        return `${median(times[i]).toFixed(3)} (best ${Math.min(...times[i]).toFixed(3)}, x${ratio.toFixed(3)})`;
      });
      console.log(`${name.padEnd(7)} ${rows}x${cols} m${o.m}: ${line.join(" | ")}`);
      builds.forEach((b, i) => b.reset(marks[i]));
    }
  }
  console.log(`load average after ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  for (const b of builds) if (b.pool !== undefined) await disposePool(b.pool);
}

main().catch((error) => {
  console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
  process.exit(1);
});
