/**
 * What `bun run bench:arm` runs under qemu-aarch64 (Bun for linux-aarch64, one thread): a
 * decode through crumb's public API, or one kernel call class, with a marker (a close(2) of
 * a descriptor the insn-count plugin watches, bench/arm/qemu.ts) at every boundary, so one
 * run gives the instruction count of each decoded token or each call.
 *
 *   decode: loadEngine(model, { tokenizer, contextLength, threads: 1, kv }), then
 *     generate(prompt, greedy, maxTokens, EOS ignored); mark 0 after loading, mark k after
 *     the k-th generated token.
 *   kernel: one packed matrix of random codes; LUT (or q8 input) built once, then `calls`
 *     calls of the matmul export for one token (GEMV); marks 2i / 2i+1 around call i, and
 *     the input preparation measured the same way after them (marks 2*calls + 2j, +1).
 *
 * Argument: one JSON object (DriverSpec). Prints one JSON line (DriverResult) on stdout.
 */
import { closeSync } from "node:fs";
import type { Encoding } from "../../runtime/format/encoding.ts";
import type { LutBuffer, Q8Input } from "../../runtime/kernels/matmul.ts";

/** Must match MARK_BASE in insn-count.c (and qemu.ts). */
const MARK_BASE = 0x63730000;

export type DriverSpec =
  | {
    readonly mode: "decode";
    readonly model: string;
    readonly tokenizer: string;
    /** Text (tokenized with BOS, as llama.cpp does) or token ids. */
    readonly prompt: string | readonly number[];
    readonly tokens: number;
    readonly ctx: number;
    readonly kv: string;
  }
  | {
    readonly mode: "kernel";
    readonly encoding: Encoding;
    readonly rows: number;
    readonly cols: number;
    readonly calls: number;
    readonly seed: number;
  };

export interface DriverResult {
  readonly ids?: readonly number[];
  readonly promptTokens?: number;
  readonly exportName?: string;
  /** The kernel binary that ran (relaxed-simd or simd128). */
  readonly variant?: string;
}

/** A marker: the plugin records this thread's instruction count under number n. */
function mark(n: number): void {
  try {
    closeSync(MARK_BASE + n);
  } catch {
    // EBADF is the expected outcome; the syscall itself is the marker.
  }
}

// Each mode imports only what it runs: module loading is slow under emulation.
async function decode(spec: Extract<DriverSpec, { mode: "decode" }>): Promise<DriverResult> {
  const { loadEngine } = await import("../../runtime/engine/load-engine.ts");
  const engine = await loadEngine(spec.model, { tokenizer: spec.tokenizer, contextLength: spec.ctx, threads: 1, kv: spec.kv as never });
  mark(0);
  const ids: number[] = [];
  let promptTokens = 0;
  for await (const event of engine.generate(spec.prompt, { maxTokens: spec.tokens, temperature: 0, stopAtEos: false })) {
    if (event.type === "token") {
      ids.push(event.id);
      mark(ids.length);
    } else if (event.type === "done") {
      promptTokens = event.usage.promptTokens;
    }
  }
  if (ids.length !== spec.tokens) throw new Error(`generated ${ids.length} tokens, asked for ${spec.tokens}`);
  const { kernelVariant } = await import("../../runtime/kernels/wasm.ts");
  return { ids, promptTokens, variant: kernelVariant() };
}

async function kernel(spec: Extract<DriverSpec, { mode: "kernel" }>): Promise<DriverResult> {
  const { buildLut, createLut, createPackedMatrix, createQ8Input, gemmShardCall, quantizeQ8Input } = await import(
    "../../runtime/kernels/matmul.ts"
  );
  const { kernelVariant, loadKernels } = await import("../../runtime/kernels/wasm.ts");
  const { randomPackedMatrix } = await import("../kernels-measure.ts");
  const k = loadKernels();
  const e = spec.encoding;
  const { rows, cols } = spec;
  const a = createPackedMatrix(k, e, rows, cols, randomPackedMatrix(e, rows, cols, spec.seed));
  const xPtr = k.arena.alloc(4 * cols, 64);
  new Float32Array(k.memory.buffer, xPtr, cols).set(new Float32Array(cols).map((_, i) => Math.sin(i * 0.37 + spec.seed) * 2));
  const out = k.arena.alloc(4 * rows, 64);
  let input: number | LutBuffer | Q8Input = xPtr;
  let prepare = () => {};
  if (e.kind === "bitplane" || e.kind === "ternary") {
    const lut = createLut(k, cols, e.group, 1);
    prepare = () => buildLut(k, lut, xPtr, 1);
    input = lut;
  } else if (e.kind === "q8") {
    const q = createQ8Input(k, cols, e.group, 1);
    prepare = () => quantizeQ8Input(k, q, xPtr, 1);
    input = q;
  }
  prepare();
  const call = gemmShardCall(a, input, 1, out, rows);
  const fn = k.exports[call.exportName] as (...args: number[]) => unknown;
  const args = call.argsFor(0, rows);
  for (let i = 0; i < spec.calls; i++) {
    mark(2 * i);
    fn(...args);
    mark(2 * i + 1);
  }
  for (let j = 0; j < spec.calls; j++) {
    mark(2 * spec.calls + 2 * j);
    prepare();
    mark(2 * spec.calls + 2 * j + 1);
  }
  const result = new Float32Array(k.memory.buffer, out, rows);
  if (!result.every(Number.isFinite)) throw new Error(`${call.exportName} produced non-finite outputs`);
  return { exportName: call.exportName, variant: kernelVariant() };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? "{}") as DriverSpec;
  const result = spec.mode === "decode" ? await decode(spec) : spec.mode === "kernel" ? await kernel(spec) : undefined;
  if (result === undefined) throw new Error(`unknown driver mode in ${process.argv[2]}`);
  process.stdout.write(JSON.stringify(result) + "\n");
  // The engine's handles would keep the process alive for nothing: the counts are complete.
  process.exit(0);
}

main().catch((error) => {
  console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
  process.exit(1);
});
