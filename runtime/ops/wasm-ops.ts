/**
 * The WASM backend of the op interface: the run state lives in WASM memory next to the
 * weights, and every op is a kernel call on byte offsets into it (RMSNorm, RoPE, SwiGLU,
 * residual adds, biases, embedding rows, LUT tables and matmuls). The host only sequences:
 * each op's calls are checked once, when its plan is first built for those buffers and that
 * many rows (runtime/kernels: the *CallArgs wrappers, checkedGemmCall and checkedPrepareCall), and from then on
 * queued as they are (runtime/threads/kernel-queue.ts), so a decode step allocates nothing and
 * validates nothing per token, and with a worker pool a layer or a whole step runs as one
 * dispatch with barriers between dependent steps.
 *
 * `linear` runs a fused group: the input is prepared once per kind (T-MAC tables for
 * bitplane/ternary matrices, int8 blocks for q8, the f32 rows themselves for f32/f16), then
 * every projection's rows are split across the pool in one step, then the biases. Where the
 * runtime has no shared WebAssembly memory, matmuls go through the row-shard pool instead.
 */
import { ShapeError, UnsupportedModelError } from "../errors.ts";
import { type LutEncoding, lutRow } from "../format/pack-lut.ts";
import { addCallArgs, f16ToF32CallArgs, gatedActivationCall, rmsnormCallArgs, ropeCallArgs, scaleCallArgs } from "../kernels/elementwise.ts";
import { checkedGemmCall, checkedPrepareCall, createLut, createQ8Input, inputGroup, inputKind, type PackedMatrix, type PreparedInput } from "../kernels/matmul.ts";
import { addRowsCallArgs, q8RowCallArgs } from "../kernels/rows.ts";
import type { KernelQueue } from "../threads/kernel-queue.ts";
import { splitRows } from "../threads/pool.ts";
import type { ShardPool } from "../threads/shard-pool.ts";
import type { Activation, Ops, Projection, VectorHandle } from "./types.ts";

/** A packed matrix resident in WASM memory, under its HF name. */
export type WasmMatrix = PackedMatrix & { readonly name: string };

/** A 1-D parameter copied into WASM memory once. */
export interface WasmVector extends VectorHandle {
  readonly name: string;
  readonly ptr: number;
  readonly id: number;
}

/** A run-state buffer (or rows of one) at byte offset `ptr`; `storage` orders its readers and writers. */
export interface WasmActivation extends Activation {
  readonly ptr: number;
  readonly storage: number;
  readonly id: number;
}

/** Largest number of tokens one op handles (the prefill tile); the backend splits longer prefills. */
export const MAX_TOKENS_PER_CALL = 64;

/** Floats below which an elementwise op stays one call (a decode row); larger ones are split across the pool. */
const SPLIT_FLOATS = 16384;

export interface WasmOps extends Ops<WasmMatrix, WasmVector, WasmActivation> {
  readonly queue: KernelQueue;
  /** Call plans built (checked) so far: constant once every op of a step has run. */
  readonly plansBuilt: number;
  /** Runs the queued kernels: before the host touches WASM memory itself. */
  flush(): void;
}

/** One step of a plan: calls of one export that may run in parallel. */
interface Step {
  readonly fn: number;
  readonly calls: number[][];
  readonly reads: number[];
  readonly writes: number[];
}

let nextId = 1;

/** Rows of a linear group's matmuls that the row-shard pool runs (no shared memory). */
interface ShardedMatmul {
  readonly w: WasmMatrix;
  readonly input: number | PreparedInput;
  readonly out: number;
}

interface LinearPlan {
  readonly prepare: Step[];
  readonly matmul: Step[];
  readonly sharded: ShardedMatmul[];
  readonly bias: Step[];
}

interface RopePlan {
  readonly step: Step;
  /** First token of each call (the table pointer moves with the start position). */
  readonly first: number[];
  readonly table: number;
  readonly positions: number;
  readonly headDim: number;
}

interface EmbedPlan {
  /** Undefined for a tied table in a LUT encoding: its rows are dequantised on the host. */
  readonly step: Step | undefined;
  /** Row r's data at base + r·rowBytes; a q8 row's scales at scales + r·scaleBytes. */
  readonly rowBytes: number;
  readonly base: number;
  readonly scales: number;
  readonly scaleBytes: number;
}

/**
 * Plans cached by the one or two objects of an op (buffers, weights, a projection group) and
 * a small integer made of the rest of its key (below 2^30, so the engines keep it unboxed).
 * The lookup takes no callback, so a cached op allocates nothing.
 */
class PlanCache<P> {
  private readonly byHandle = new WeakMap<object, WeakMap<object, Map<number, P>>>();
  constructor(private readonly counter: { built: number }) {}
  get(a: object, b: object, key: number): P | undefined {
    return this.byHandle.get(a)?.get(b)?.get(key);
  }
  set(a: object, b: object, key: number, plan: P): P {
    let byB = this.byHandle.get(a);
    if (byB === undefined) this.byHandle.set(a, byB = new WeakMap());
    let inner = byB.get(b);
    if (inner === undefined) byB.set(b, inner = new Map());
    inner.set(key, plan);
    this.counter.built++;
    return plan;
  }
}

/** Key of an op's rows (≤ 2^14) and one handle id (< 2^16). */
const rowsKey = (rows: number, id = 0) => id * 16384 + rows;

export function createWasmOps(queue: KernelQueue, options: { shardPool?: ShardPool } = {}): WasmOps {
  const k = queue.kernels;
  const shardPool = options.shardPool;
  const run = (s: Step) => queue.step(s.fn, s.calls, s.reads, s.writes);
  const step = (exportName: string, calls: number[][], reads: number[], writes: number[]): Step => ({ fn: queue.fn(exportName), calls, reads, writes });
  /** Splits `count` units into up to `parts` ranges (aligned) and maps each to a call. */
  const split = (count: number, parts: number, align: number, argsFor: (begin: number, end: number) => number[]) =>
    splitRows(count, Math.max(1, parts), align).map(([b, e]) => argsFor(b, e));
  const partsFor = (floats: number) => (floats >= SPLIT_FLOATS ? queue.parts : 1);
  const counter = { built: 0 };
  let positions = 0;

  const activation = (name: string, width: number, rows: number, ptr: number, storage: number): WasmActivation => ({
    name,
    width,
    rows,
    ptr,
    storage,
    id: nextId++,
  });
  const checkRows = (op: string, x: WasmActivation, n: number) => {
    if (!Number.isInteger(n) || n < 1 || n > x.rows || n > MAX_TOKENS_PER_CALL) {
      throw new ShapeError(op, `1..${Math.min(x.rows, MAX_TOKENS_PER_CALL)} rows of ${x.name}`, String(n));
    }
  };

  // Prepared inputs (T-MAC tables, int8 blocks) for up to MAX_TOKENS_PER_CALL tokens, per (kind, cols, group).
  const prepared = new Map<string, { buffer: PreparedInput; storage: number }>();
  const preparedFor = (w: WasmMatrix) => {
    const kind = inputKind(w.encoding);
    const key = `${kind}/${w.cols}/${inputGroup(w.encoding)}`;
    let entry = prepared.get(key);
    if (entry === undefined) {
      const buffer = kind === "q8"
        ? createQ8Input(k, w.cols, inputGroup(w.encoding), MAX_TOKENS_PER_CALL)
        : createLut(k, w.cols, inputGroup(w.encoding), MAX_TOKENS_PER_CALL);
      prepared.set(key, entry = { buffer, storage: queue.storage() });
    }
    return entry;
  };

  const linearPlans = new PlanCache<LinearPlan>(counter);
  const planLinear = (x: WasmActivation, n: number, projections: readonly Projection<WasmMatrix, WasmVector, WasmActivation>[]): LinearPlan => {
    checkRows("linear", x, n);
    const plan: LinearPlan = { prepare: [], matmul: [], sharded: [], bias: [] };
    const inputs = new Map<string, { input: number | PreparedInput; storage: number }>();
    const matmuls = new Map<string, Step>();
    const totalRows = projections.reduce((sum, p) => sum + p.weight.rows, 0);
    const biasCalls: number[][] = [];
    const biasOuts: number[] = [];
    for (const { weight: w, out, bias } of projections) {
      const op = `linear ${w.name}`;
      if (x.width !== w.cols) throw new ShapeError(op, `input of width ${w.cols}`, `${x.name} of width ${x.width}`);
      if (out.width !== w.rows) throw new ShapeError(op, `output of width ${w.rows}`, `${out.name} of width ${out.width}`);
      checkRows(op, out, n);
      if (out.storage === x.storage) throw new ShapeError(op, "an output apart from the input", out.name);
      const kind = inputKind(w.encoding);
      const inputKey = kind === "f32" ? "f32" : `${kind}/${w.cols}/${inputGroup(w.encoding)}`;
      let input = inputs.get(inputKey);
      if (input === undefined) {
        if (kind === "f32") input = { input: x.ptr, storage: x.storage };
        else {
          const entry = preparedFor(w);
          const call = checkedPrepareCall(k, entry.buffer, x.ptr, n);
          const calls = split(n, n > 1 ? queue.parts : 1, 1, call.argsFor);
          plan.prepare.push(step(call.exportName, calls, [x.storage], [entry.storage]));
          input = { input: entry.buffer, storage: entry.storage };
        }
        inputs.set(inputKey, input);
      }
      const call = checkedGemmCall(k, w, input.input, n, out.ptr, w.rows);
      if (shardPool !== undefined) plan.sharded.push({ w, input: input.input, out: out.ptr });
      else {
        const parts = Math.max(1, Math.round((queue.parts * w.rows) / totalRows));
        let s = matmuls.get(call.exportName);
        if (s === undefined) {
          matmuls.set(call.exportName, s = step(call.exportName, [], [], []));
          plan.matmul.push(s);
        }
        s.calls.push(...split(w.rows, parts, call.align, call.argsFor));
        if (!s.reads.includes(input.storage)) s.reads.push(input.storage);
        s.writes.push(out.storage);
      }
      if (bias !== undefined) {
        if (bias.length !== w.rows) throw new ShapeError(`${op} bias`, `${w.rows} values`, String(bias.length));
        biasCalls.push(addRowsCallArgs(k, { x: out.ptr, bias: bias.ptr, out: out.ptr, rows: n, n: w.rows }));
        biasOuts.push(out.storage);
      }
    }
    if (biasCalls.length > 0) plan.bias.push(step("add_rows_f32", biasCalls, biasOuts, biasOuts));
    return plan;
  };

  const ropeTables = new Map<Float32Array, { ptr: number; positions: number }>();
  const ropeTable = (invFreq: Float32Array) => {
    let table = ropeTables.get(invFreq);
    if (table === undefined || table.positions < positions) {
      // cos/sin of every position, (positions, headDim), built once. The angles are taken in
      // f64 as the reference backend takes them: rope_table_f32 rounds θ to f32 as torch does,
      // which differs by up to pos·2⁻²⁴ rad, enough to flip a LUT table's rounding now and then.
      const half = invFreq.length;
      const ptr = k.arena.alloc(positions * 2 * half * 4, 64);
      const values = new Float32Array(k.memory.buffer, ptr, positions * 2 * half);
      for (let p = 0; p < positions; p++) {
        for (let i = 0; i < half; i++) {
          values[p * 2 * half + i] = Math.cos(p * invFreq[i]);
          values[p * 2 * half + half + i] = Math.sin(p * invFreq[i]);
        }
      }
      ropeTables.set(invFreq, table = { ptr, positions });
      ropePlans = new PlanCache(counter); // plans point into the table they were built with
    }
    return table;
  };
  let ropePlans = new PlanCache<RopePlan>(counter);
  const planRope = (x: WasmActivation, n: number, nHeads: number, headDim: number, invFreq: Float32Array): RopePlan => {
    checkRows("rope", x, n);
    if (x.width !== nHeads * headDim) throw new ShapeError("rope", `width ${nHeads}x${headDim}`, `${x.name} of width ${x.width}`);
    if (invFreq.length * 2 !== headDim) throw new ShapeError("rope", `${headDim / 2} inverse frequencies`, String(invFreq.length));
    const table = ropeTable(invFreq);
    const first: number[] = [];
    const calls = split(n, n >= 8 ? queue.parts : 1, 1, (b, e) => {
      first.push(b);
      // Checked at the last positions the table holds: every start position the call may get is below.
      const last = table.ptr + (table.positions - (e - b)) * headDim * 4;
      return ropeCallArgs(k, { x: x.ptr + b * x.width * 4, table: last, nTokens: e - b, nHeads, headDim });
    });
    return { step: step("rope_f32", calls, [x.storage], [x.storage]), first, table: table.ptr, positions: table.positions, headDim };
  };

  const normPlans = new PlanCache<Step & { eps: number }>(counter);
  const planNorm = (x: WasmActivation, rows: number, weight: WasmVector, eps: number, out: WasmActivation) => {
    const dim = weight.length;
    if (!Number.isInteger(rows) || rows < 1 || rows * dim > x.rows * x.width || rows * dim > out.rows * out.width) {
      throw new ShapeError("rmsNorm", `${rows} rows of ${dim} within ${x.name} and ${out.name}`, `${x.rows}x${x.width}, ${out.rows}x${out.width}`);
    }
    const calls = split(rows, partsFor(rows * dim), 1, (b, e) =>
      rmsnormCallArgs(k, { x: x.ptr + b * dim * 4, weight: weight.ptr, out: out.ptr + b * dim * 4, rows: e - b, n: dim, eps }));
    return { ...step("rmsnorm_f32", calls, [x.storage], [out.storage]), eps };
  };

  /** Elementwise over n rows of equal-width buffers, split by floats (multiples of 4). */
  const elementwise = (exportName: string, n: number, width: number, argsFor: (offset: number, count: number) => number[], reads: number[], writes: number[]) =>
    step(exportName, split(n * width, partsFor(n * width), 4, (b, e) => argsFor(4 * b, e - b)), reads, writes);

  const siluPlans = new PlanCache<Step>(counter);
  const planSiluMul = (gate: WasmActivation, up: WasmActivation, n: number, out: WasmActivation) => {
    checkRows("siluMul", gate, n);
    if (gate.width !== up.width || out.width !== gate.width) throw new ShapeError("siluMul", "equal widths", `${gate.width}, ${up.width} and ${out.width}`);
    return elementwise("silu_mul_f32", n, gate.width, (o, count) =>
      gatedActivationCall(k, "silu", { gate: gate.ptr + o, up: up.ptr + o, out: out.ptr + o, n: count }).args, [gate.storage, up.storage], [out.storage]);
  };
  const addPlans = new PlanCache<Step>(counter);
  const planAdd = (x: WasmActivation, y: WasmActivation, n: number) => {
    checkRows("add", x, n);
    if (x.width !== y.width) throw new ShapeError("add", "equal widths", `${x.width} and ${y.width}`);
    return elementwise("add_f32", n, x.width, (o, count) => addCallArgs(k, { a: x.ptr + o, b: y.ptr + o, out: x.ptr + o, n: count }), [x.storage, y.storage], [x.storage]);
  };
  const embedPlans = new PlanCache<EmbedPlan>(counter);
  const planEmbed = (table: WasmMatrix, out: WasmActivation, n: number): EmbedPlan => {
    checkRows("embed", out, n);
    if (out.width !== table.cols) throw new ShapeError("embed", `an output of width ${table.cols}`, `${out.name} of width ${out.width}`);
    const e = table.encoding;
    const cols = table.cols;
    // A tied table stored once in the head's LUT encoding (issue 13): each row is dequantised
    // from the packed bytes on the host (lutRow, bit-identical to dequantizeLut), a few
    // microseconds per token next to the whole step.
    if (e.kind === "bitplane" || e.kind === "ternary") return { step: undefined, rowBytes: 0, base: table.ptr, scales: 0, scaleBytes: 0 };
    // Checked on the first and the last row of the table: every row lies between.
    const check = (row: number, dst: number): number[] => {
      if (e.kind === "f32") return scaleCallArgs(k, { x: table.ptr + row * cols * 4, s: 1, out: dst, n: cols });
      if (e.kind === "f16") return f16ToF32CallArgs(k, { src: table.ptr + row * cols * 2, dst, n: cols });
      if (e.kind === "q8") {
        const l = table.layout;
        return q8RowCallArgs(k, { codes: table.ptr + row * l.colsPadded, scales: table.ptr + l.scaleOffset + row * l.groups * 2, group: e.group, n: cols, out: dst });
      }
      throw new UnsupportedModelError(`embedding matrix "${table.name}" is ${e.kind}; embeddings must be stored as f32, f16 or q8`, ["f32", "f16", "q8"]);
    };
    const calls: number[][] = [];
    for (let t = 0; t < n; t++) {
      check(table.rows - 1, out.ptr + t * cols * 4);
      calls.push(check(0, out.ptr + t * cols * 4));
    }
    // f32 rows copy through scale_f32 by 1 (exact); f16 rows convert; q8 rows scale codes per group.
    const exportName = e.kind === "f32" ? "scale_f32" : e.kind === "f16" ? "f16_to_f32" : "q8_row_f32";
    const rowBytes = e.kind === "f32" ? cols * 4 : e.kind === "f16" ? cols * 2 : table.layout.colsPadded;
    const scaleBytes = e.kind === "q8" ? table.layout.groups * 2 : 0;
    return { step: step(exportName, calls, [], [out.storage]), rowBytes, base: table.ptr, scales: table.ptr + table.layout.scaleOffset, scaleBytes };
  };

  let views = new Map<WasmActivation, Float32Array[]>();
  let viewBuffer: ArrayBufferLike | undefined;
  const view = (x: WasmActivation, n: number): Float32Array => {
    if (k.memory.buffer !== viewBuffer) {
      views = new Map();
      viewBuffer = k.memory.buffer;
    }
    let byRows = views.get(x);
    if (byRows === undefined) views.set(x, byRows = []);
    return byRows[n] ??= new Float32Array(k.memory.buffer, x.ptr, n * x.width);
  };
  const rowViews = new Map<WasmActivation, WasmActivation[]>();

  return {
    queue,
    flush: () => queue.flush(),
    get plansBuilt() {
      return counter.built;
    },

    createState(widths, maxTokens, contextLength) {
      if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new ShapeError("createState", "a positive row count", String(maxTokens));
      positions = Math.max(positions, contextLength);
      const state = {} as Record<keyof typeof widths, WasmActivation>;
      for (const name of Object.keys(widths) as (keyof typeof widths)[]) {
        const width = widths[name];
        const ptr = k.arena.alloc(Math.max(1, maxTokens * width) * 4, 64);
        state[name] = activation(String(name), width, maxTokens, ptr, queue.storage());
      }
      return state;
    },

    rows(x, first) {
      let byFirst = rowViews.get(x);
      if (byFirst === undefined) rowViews.set(x, byFirst = []);
      let rows = byFirst[first];
      if (rows === undefined) {
        if (!Number.isInteger(first) || first < 0 || first >= x.rows) throw new ShapeError(`rows of ${x.name}`, `a row in [0, ${x.rows})`, String(first));
        rows = byFirst[first] = activation(x.name, x.width, x.rows - first, x.ptr + first * x.width * 4, x.storage);
      }
      return rows;
    },

    embed(tokens, table, out) {
      const n = tokens.length;
      const plan = embedPlans.get(table, out, n) ?? embedPlans.set(table, out, n, planEmbed(table, out, n));
      if (plan.step === undefined) {
        queue.flush(); // queued steps may still read `out`
        const e = table.encoding as LutEncoding;
        const bytes = new Uint8Array(k.memory.buffer, table.ptr, table.layout.byteLength);
        for (let t = 0; t < n; t++) {
          const token = tokens[t];
          if (!Number.isInteger(token) || token < 0 || token >= table.rows) throw new ShapeError("embed", `token id in [0, ${table.rows})`, String(token));
          new Float32Array(k.memory.buffer, out.ptr + t * table.cols * 4, table.cols).set(lutRow(e, bytes, table.rows, table.cols, token));
        }
        return;
      }
      for (let t = 0; t < n; t++) {
        const token = tokens[t];
        if (!Number.isInteger(token) || token < 0 || token >= table.rows) throw new ShapeError("embed", `token id in [0, ${table.rows})`, String(token));
        const call = plan.step.calls[t];
        call[0] = plan.base + token * plan.rowBytes;
        if (plan.scaleBytes > 0) call[1] = plan.scales + token * plan.scaleBytes;
      }
      run(plan.step);
    },

    linear(x, n, projections) {
      const plan = linearPlans.get(projections, x, n) ?? linearPlans.set(projections, x, n, planLinear(x, n, projections));
      for (let i = 0; i < plan.prepare.length; i++) run(plan.prepare[i]);
      for (let i = 0; i < plan.matmul.length; i++) run(plan.matmul[i]);
      for (let i = 0; i < plan.sharded.length; i++) {
        const { w, input, out } = plan.sharded[i];
        shardPool!.gemm(w, input, n, out, w.rows);
      }
      for (let i = 0; i < plan.bias.length; i++) run(plan.bias[i]);
    },

    rmsNorm(x, rows, weight, eps, out) {
      const key = rowsKey(rows, out.id);
      let plan = normPlans.get(x, weight, key);
      if (plan === undefined || plan.eps !== eps) plan = normPlans.set(x, weight, key, planNorm(x, rows, weight, eps, out));
      run(plan);
    },

    rope(x, n, nHeads, headDim, startPos, invFreq) {
      const key = (nHeads * 1024 + headDim) * 128 + n;
      let plan = ropePlans.get(x, invFreq, key);
      if (plan === undefined || ropeTables.get(invFreq)?.ptr !== plan.table) plan = ropePlans.set(x, invFreq, key, planRope(x, n, nHeads, headDim, invFreq));
      if (!Number.isInteger(startPos) || startPos < 0 || startPos + n > plan.positions) {
        throw new ShapeError("rope", `positions below ${plan.positions}`, `${startPos}..${startPos + n - 1}`);
      }
      for (let i = 0; i < plan.first.length; i++) plan.step.calls[i][1] = plan.table + (startPos + plan.first[i]) * plan.headDim * 4;
      run(plan.step);
    },

    siluMul(gate, up, n, out) {
      const key = rowsKey(n, out.id);
      run(siluPlans.get(gate, up, key) ?? siluPlans.set(gate, up, key, planSiluMul(gate, up, n, out)));
    },

    add(x, y, n) {
      run(addPlans.get(x, y, n) ?? addPlans.set(x, y, n, planAdd(x, y, n)));
    },

    read(x, n) {
      if (!Number.isInteger(n) || n < 1 || n > x.rows) throw new ShapeError("read", `1..${x.rows} rows of ${x.name}`, String(n));
      queue.flush();
      return view(x, n);
    },

    write(x, n, data) {
      if (!Number.isInteger(n) || n < 1 || n > x.rows) throw new ShapeError("write", `1..${x.rows} rows of ${x.name}`, String(n));
      if (data.length < n * x.width) throw new ShapeError("write", `${n}x${x.width} values`, String(data.length));
      queue.flush();
      view(x, n).set(data.length === n * x.width ? data : data.subarray(0, n * x.width));
    },
  };
}
