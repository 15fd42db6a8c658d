/**
 * The WASM backend of the op interface. `linear` dispatches on each weight's encoding: LUT
 * matrices (bitplane, ternary) go through table building + LUT GEMM, q8 through int8
 * activations + integer dot products, f32/f16 through the dense GEMM; all split rows across
 * the worker pool. An input is prepared (tables, int8 blocks) once and reused by every matrix
 * that reads the same input (Q/K/V and gate/up: the model passes the same array). On a
 * multi-thread pool those siblings also run as one batch: the first call (q_proj, gate_proj)
 * computes the later ones (k_proj and v_proj, up_proj) too and keeps their results until the
 * model asks for them with the same input, so a decoder layer waits for the pool four times
 * instead of seven. SwiGLU runs in the kernels (silu_mul_f32: with the copies in and out 2-3x
 * faster than the JS loop, within 3e-7 relative of it). Norms and RoPE are cheap next to the
 * matmuls and reuse the reference loops.
 */
import { FormatError, ShapeError } from "../errors.ts";
import { f16ToF32 } from "../format/pack-f16.ts";
import { lutRow } from "../format/pack-lut.ts";
import type { Kernels } from "../kernels/wasm.ts";
import {
  buildLut,
  createLut,
  createQ8Input,
  gemmShardCall,
  type PackedMatrix,
  type PreparedInput,
  quantizeQ8Input,
} from "../kernels/matmul.ts";
import { CHUNKS_PER_THREAD, type Pool, type PoolTask, rowTasks } from "../kernels/pool.ts";
import type { ShardPool } from "../kernels/shard-pool.ts";
import { LayerScratch } from "./layer-scratch.ts";
import { referenceOps, rmsNormInto } from "./reference.ts";
import type { Ops, WeightStore } from "./types.ts";

/** A packed matrix resident in WASM memory, under its HF name. */
export type WasmMatrix = PackedMatrix & { readonly name: string };

/** Largest number of tokens one linear call handles; the backend splits longer prefills. */
export const MAX_TOKENS_PER_CALL = 64;

export interface WasmOps extends Ops<WasmMatrix> {
  /** Forget the cached tables (call when the input arrays may be reused with new contents). */
  resetTables(): void;
}

/** Runs a row-sharded call on the pool, or directly on this thread. */
function runRows(kernels: Kernels, pool: Pool | undefined, exportName: string, rows: number, align: number, argsFor: (b: number, e: number) => number[]) {
  if (pool === undefined || pool.threads === 1) {
    const status = kernels.exports[exportName](...argsFor(0, rows));
    if (typeof status === "number" && status !== 0) throw new ShapeError(exportName, "a supported shape", `status ${status}`);
    return;
  }
  pool.runRows(exportName, rows, argsFor, align);
}

/** Later matrices that read the same input as `name` in a decoder layer (computed with it). */
const SIBLINGS: ReadonlyArray<readonly [string, readonly string[]]> = [
  [".self_attn.q_proj.weight", [".self_attn.k_proj.weight", ".self_attn.v_proj.weight"]],
  [".self_attn.k_proj.weight", [".self_attn.v_proj.weight"]],
  [".mlp.gate_proj.weight", [".mlp.up_proj.weight"]],
];

export interface WasmOpsOptions {
  /**
   * The model's matrices by name: with a multi-thread shared-memory pool, `linear` on q_proj
   * or gate_proj also runs the layer's k/v_proj or up_proj in the same batch.
   */
  readonly matrices?: ReadonlyMap<string, WasmMatrix>;
}

/** Key of the prepared input a matrix reads: matrices with equal keys share one. */
function inputKey(w: WasmMatrix): string {
  const e = w.encoding;
  if (e.kind === "f32" || e.kind === "f16") return `f32/${w.cols}`;
  return `${e.kind === "q8" ? "q8" : "lut"}/${w.cols}/${e.group}`;
}

/**
 * Splits the rows of several matrices into about `parts` tasks in all (each matrix gets a
 * share proportional to its rows, at least one task), writing output i at `outs[i]`.
 */
function matmulTasks(matrices: readonly WasmMatrix[], input: number | PreparedInput, n: number, outs: readonly number[], parts: number): PoolTask[] {
  const total = matrices.reduce((sum, w) => sum + w.rows, 0);
  return matrices.flatMap((w, i) => {
    const call = gemmShardCall(w, input, n, outs[i], w.rows);
    return rowTasks(call.exportName, w.rows, call.argsFor, call.align, Math.max(1, Math.round((parts * w.rows) / total)));
  });
}

/**
 * `pool` splits matmul rows across threads: the shared-memory pool, or the row-shard pool
 * where the runtime has no shared WebAssembly memory.
 */
export function createWasmOps(kernels: Kernels, pool?: Pool | ShardPool, options: WasmOpsOptions = {}): WasmOps {
  // Persistent scratch, grown on demand: f32 input rows, output rows, and prepared inputs
  // (LUT tables, int8 activations) per (kind, cols, group).
  let inputPtr = 0;
  let inputFloats = 0;
  let outputPtr = 0;
  let outputFloats = 0;
  const prepared = new Map<string, { buffer: PreparedInput; source?: Float32Array; n: number }>();
  const scratch = new LayerScratch();
  // Sibling results computed ahead (by matrix), valid for the input array they were computed from.
  const ahead = new Map<WasmMatrix, { x: Float32Array; n: number; out: Float32Array }>();
  const siblingCache = new Map<WasmMatrix, WasmMatrix[]>();
  const queue = pool !== undefined && "runTasks" in pool && pool.threads > 1 ? pool : undefined;
  const parts = (queue?.threads ?? 1) * CHUNKS_PER_THREAD;
  const siblingsOf = (w: WasmMatrix): WasmMatrix[] => {
    let list = siblingCache.get(w);
    if (list === undefined) {
      list = [];
      const rule = options.matrices === undefined ? undefined : SIBLINGS.find(([suffix]) => w.name.endsWith(suffix));
      if (rule !== undefined) {
        const prefix = w.name.slice(0, w.name.length - rule[0].length);
        for (const suffix of rule[1]) {
          const m = options.matrices!.get(prefix + suffix);
          if (m !== undefined && m.cols === w.cols && inputKey(m) === inputKey(w)) list.push(m);
        }
      }
      siblingCache.set(w, list);
    }
    return list;
  };
  let actPtr = 0;
  let actFloats = 0;
  const addBias = (name: string, out: Float32Array, n: number, rows: number, bias: Float32Array | undefined) => {
    if (bias === undefined) return out;
    if (bias.length !== rows) throw new ShapeError(`linear ${name} bias`, `${rows} values`, `${bias.length}`);
    for (let t = 0; t < n; t++) for (let r = 0; r < rows; r++) out[t * rows + r] += bias[r];
    return out;
  };

  const ensureInput = (floats: number) => {
    if (floats > inputFloats) {
      inputPtr = kernels.arena.alloc(floats * 4, 64);
      inputFloats = floats;
    }
    return inputPtr;
  };
  const ensureOutput = (floats: number) => {
    if (floats > outputFloats) {
      outputPtr = kernels.arena.alloc(floats * 4, 64);
      outputFloats = floats;
    }
    return outputPtr;
  };

  /** x prepared for `w` (tables or int8 blocks), rebuilt only when x is a different array. */
  const prepare = (x: Float32Array, n: number, w: WasmMatrix): number | PreparedInput => {
    const e = w.encoding;
    if (e.kind === "f32" || e.kind === "f16") {
      const ptr = ensureInput(n * w.cols);
      new Float32Array(kernels.memory.buffer, ptr, n * w.cols).set(x);
      return ptr;
    }
    const kind = e.kind === "q8" ? "q8" : "lut";
    const key = `${kind}/${w.cols}/${e.group}`;
    let entry = prepared.get(key);
    if (entry === undefined || entry.buffer.m < n) {
      const capacity = Math.max(n, entry?.buffer.m ?? 1);
      const buffer = kind === "q8" ? createQ8Input(kernels, w.cols, e.group, capacity) : createLut(kernels, w.cols, e.group, capacity);
      entry = { buffer, n: 0 };
      prepared.set(key, entry);
    }
    if (entry.source !== x || entry.n !== n) {
      if (entry.buffer.kind === "q8") quantizeQ8Input(kernels, entry.buffer as Parameters<typeof quantizeQ8Input>[1], x, n);
      else buildLut(kernels, entry.buffer as Parameters<typeof buildLut>[1], x, n);
      entry.source = x;
      entry.n = n;
    }
    return entry.buffer;
  };

  return {
    ...referenceOps,

    embed(tokens, table) {
      const out = new Float32Array(tokens.length * table.cols);
      tokens.forEach((token, i) => {
        if (!Number.isInteger(token) || token < 0 || token >= table.rows) {
          throw new ShapeError("embed", `token id in [0, ${table.rows})`, String(token));
        }
        out.set(matrixRow(kernels, table, token), i * table.cols);
      });
      return out;
    },

    linear(x, n, w, bias) {
      if (x.length !== n * w.cols) throw new ShapeError(`linear ${w.name}`, `input of ${n}x${w.cols}`, `${x.length} values`);
      if (n > MAX_TOKENS_PER_CALL) throw new ShapeError(`linear ${w.name}`, `at most ${MAX_TOKENS_PER_CALL} tokens per call`, String(n));
      const early = ahead.get(w);
      if (early !== undefined) {
        ahead.delete(w);
        if (early.x === x && early.n === n) return addBias(w.name, early.out, n, w.rows, bias);
      }
      const input = prepare(x, n, w);
      const group = queue === undefined ? [w] : [w, ...siblingsOf(w)];
      const outs: number[] = [];
      let floats = 0;
      for (const m of group) {
        outs.push(floats);
        floats += n * m.rows;
      }
      const outPtr = ensureOutput(floats);
      if (queue !== undefined) queue.runTasks(matmulTasks(group, input, n, outs.map((o) => outPtr + 4 * o), parts));
      else if (pool !== undefined && "gemm" in pool) pool.gemm(w, input, n, outPtr, w.rows);
      else {
        const call = gemmShardCall(w, input, n, outPtr, w.rows);
        runRows(kernels, pool, call.exportName, w.rows, call.align, call.argsFor);
      }
      const results = group.map((m, i) => {
        const out = scratch.f32(n * m.rows);
        out.set(new Float32Array(kernels.memory.buffer, outPtr + 4 * outs[i], n * m.rows));
        return out;
      });
      for (let i = 1; i < group.length; i++) ahead.set(group[i], { x, n, out: results[i] });
      return addBias(w.name, results[0], n, w.rows, bias);
    },

    rmsNorm(x, n, weight, eps) {
      return rmsNormInto(scratch.f32(x.length), x, n, weight, eps);
    },

    siluMul(gate, up) {
      if (gate.length !== up.length) throw new ShapeError("siluMul", "equal lengths", `${gate.length} and ${up.length}`);
      const n = gate.length;
      if (2 * n > actFloats) {
        actPtr = kernels.arena.alloc(8 * n, 64);
        actFloats = 2 * n;
      }
      const view = new Float32Array(kernels.memory.buffer, actPtr, 2 * n);
      view.set(gate);
      view.set(up, n);
      kernels.exports.silu_mul_f32(actPtr, actPtr + 4 * n, actPtr, n);
      const out = scratch.f32(n);
      out.set(new Float32Array(kernels.memory.buffer, actPtr, n));
      return out;
    },

    beginLayer() {
      ahead.clear();
      scratch.begin();
    },

    endLayers() {
      ahead.clear();
      scratch.end();
    },

    resetTables() {
      ahead.clear();
      for (const entry of prepared.values()) entry.source = undefined;
    },
  };
}

/** Row r of a packed matrix as fp32 (embedding lookups). */
export function matrixRow(kernels: Kernels, m: WasmMatrix, r: number): Float32Array {
  const buffer = kernels.memory.buffer;
  const e = m.encoding;
  switch (e.kind) {
    case "f32":
      return new Float32Array(buffer, m.ptr + r * m.cols * 4, m.cols).slice();
    case "f16": {
      const bits = new Uint16Array(buffer, m.ptr + r * m.cols * 2, m.cols);
      return Float32Array.from(bits, f16ToF32);
    }
    case "q8": {
      const codes = new Int8Array(buffer, m.ptr + r * m.layout.colsPadded, m.cols);
      const scales = new Uint16Array(buffer, m.ptr + m.layout.scaleOffset + r * m.layout.groups * 2, m.layout.groups);
      return Float32Array.from(codes, (q, c) => q * f16ToF32(scales[Math.floor(c / e.group)]));
    }
    case "bitplane":
    case "ternary":
      // A tied table stored once in the head's LUT encoding (issue 13): one row dequantised
      // from the packed bytes. For the ops rewrite: keep this case (or an equivalent WASM row
      // kernel); runtime/format/lut-row.test.ts pins lutRow to dequantizeLut bit for bit.
      return lutRow(e, new Uint8Array(buffer, m.ptr, m.layout.byteLength), m.rows, m.cols, r);
  }
}

/** Weights of a packed model by HF name. */
export function packedWeightStore(
  matrices: ReadonlyMap<string, WasmMatrix>,
  vectors: ReadonlyMap<string, Float32Array>,
  file: string,
): WeightStore<WasmMatrix> {
  const missing = (name: string): never => {
    throw new FormatError(`checkpoint has no tensor "${name}"`, { file, tensor: name });
  };
  return {
    has: (name) => matrices.has(name) || vectors.has(name),
    matrix: (name) => matrices.get(name) ?? missing(name),
    vector: (name) => vectors.get(name) ?? missing(name),
  };
}
