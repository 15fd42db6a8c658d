/**
 * The calibration forward's fast path: fp32 matrices in a private WASM memory multiplied by
 * the SIMD128 `gemm_f32` kernel (kernels-wasm/src/dense.rs), split into row blocks small
 * enough to stay in cache while every token of a window streams past (the kernel itself is a
 * loop of GEMVs, which would re-read the whole matrix from DRAM once per token), and spread
 * over a worker pool. The same kernel computes XᵀX block by block (only blocks on or above the
 * diagonal) for the GPTQ Hessian, and `gemm` hands raw gemm_f32 calls over engine memory to
 * the pool (GPTQ's factorisation and sweep, gptq-factor.ts / gptq-sweep.ts). The memory is
 * private so it is freed with the engine: the process-wide kernels' memory never shrinks.
 *
 * Products are f32 dot products (float64 in the reference twins); the parity tests bound the
 * difference.
 */
import { ShapeError } from "../runtime/errors.ts";
import { createPool, defaultThreads, disposePool, type Pool } from "../runtime/threads/pool.ts";
import { createKernels } from "../runtime/kernels/wasm.ts";
import type { MatrixHandle } from "../runtime/ops/types.ts";

/** Bytes of one row block of the weight matrix: sized for a core's L2 cache. */
const BLOCK_BYTES = 256 * 1024;
/** Rows (and columns) of one XᵀX block. */
const XTX_BLOCK = 64;

/** A (rows, cols) f32 matrix resident in the engine's memory at `ptr`. */
export interface EngineMatrix extends MatrixHandle {
  readonly ptr: number;
}

export interface DenseEngine {
  readonly threads: number;
  /** Copies `data` (rows, cols) into the engine's memory (freed by `release`). */
  upload(name: string, data: Float32Array, rows: number, cols: number): EngineMatrix;
  /** x (n, w.cols) · wᵀ: (n, w.rows). */
  matmul(x: Float32Array, n: number, w: EngineMatrix): Float32Array;
  /** Adds the upper triangle (j >= i) of XᵀX for x (n, cols) into xtx (cols, cols). */
  accumulateXtx(xtx: Float64Array, x: Float32Array, n: number, cols: number): void;
  /** Allocation mark: `release(mark())` frees everything uploaded or allocated after it. */
  mark(): number;
  /** Byte offset of `count` uninitialised f32 slots in the engine's memory (freed by `release`). */
  alloc(count: number): number;
  /** A view of `count` f32 at byte offset `ptr`; take a new view after any `alloc` (the memory may grow). */
  floats(ptr: number, count: number): Float32Array;
  /**
   * Runs gemm_f32 once per argument list (w, x, x stride, m, rows, cols, out, out stride: out
   * (m, rows) = x (m, cols) · wᵀ, byte offsets), spread over the pool. The calls must write
   * disjoint memory; every output is one dot product, so results do not depend on the threads.
   */
  gemm(calls: readonly (readonly number[])[]): void;
  release(mark: number): void;
  dispose(): Promise<void>;
}

/** One gemm_f32 product: out (m, rows) = x (m, cols) · wᵀ, byte offsets, x and out with row strides. */
export interface GemmProduct {
  readonly w: number;
  readonly x: number;
  readonly xStride: number;
  readonly m: number;
  readonly rows: number;
  readonly cols: number;
  readonly out: number;
  readonly outStride: number;
}

/**
 * `engine.gemm` argument lists for one product split into bands of `bandRows` rows of x and
 * `subRows` rows of w, so the pool gets many disjoint calls.
 */
export function tiledGemmCalls(p: GemmProduct, bandRows: number, subRows: number): number[][] {
  const calls: number[][] = [];
  for (let r0 = 0; r0 < p.m; r0 += bandRows) {
    const band = Math.min(bandRows, p.m - r0);
    for (let j0 = 0; j0 < p.rows; j0 += subRows) {
      const sub = Math.min(subRows, p.rows - j0);
      calls.push([p.w + 4 * j0 * p.cols, p.x + 4 * r0 * p.xStride, p.xStride, band, sub, p.cols, p.out + 4 * (r0 * p.outStride + j0), p.outStride]);
    }
  }
  return calls;
}

/**
 * Multiply-adds below which a batch of calls runs on the calling thread: waking a worker costs
 * tens of microseconds (far more when another process holds the other core), more than the
 * work of a small model's matmul.
 */
const POOL_MIN_MACS = 1 << 21;

/** Loads the kernels into a fresh memory with a pool of `threads` (default: every core). */
export async function createDenseEngine(options: { threads?: number } = {}): Promise<DenseEngine> {
  const kernels = createKernels({ shared: true });
  const threads = Math.max(1, Math.floor(options.threads ?? defaultThreads()));
  const pool: Pool | undefined = threads > 1 ? await createPool({ threads, kernels }) : undefined;
  const gemm = kernels.exports.gemm_f32 as (...args: number[]) => void;

  /** Runs gemm_f32 once per argument list, `threads` calls at a time. */
  const runAll = (calls: readonly (readonly number[])[]) => {
    // gemm_f32 arguments: w, x, x stride, tokens, rows, cols, out, out stride.
    const macs = calls.reduce((sum, c) => sum + c[3] * c[4] * c[5], 0);
    if (pool === undefined || macs < POOL_MIN_MACS) {
      for (const call of calls) gemm(...call);
      return;
    }
    for (let i = 0; i < calls.length; i += pool.threads) pool.run("gemm_f32", calls.slice(i, i + pool.threads));
  };
  const floats = (ptr: number, count: number) => new Float32Array(kernels.memory.buffer, ptr, count);
  const scratch = (count: number) => kernels.arena.alloc(4 * count, 64);

  return {
    threads,
    upload(name, data, rows, cols) {
      if (data.length !== rows * cols) throw new ShapeError(`upload ${name}`, `${rows}x${cols} values`, `${data.length}`);
      const ptr = scratch(data.length);
      floats(ptr, data.length).set(data);
      return { name, rows, cols, ptr };
    },

    matmul(x, n, w) {
      const { rows, cols } = w;
      if (x.length !== n * cols) throw new ShapeError(`linear ${w.name}`, `input of ${n}x${cols}`, `${x.length} values`);
      const mark = kernels.arena.mark();
      try {
        const xPtr = scratch(n * cols);
        const outPtr = scratch(n * rows);
        floats(xPtr, n * cols).set(x);
        const block = Math.max(4, Math.min(64, Math.floor(BLOCK_BYTES / (4 * cols))));
        const calls: number[][] = [];
        for (let r0 = 0; r0 < rows; r0 += block) {
          calls.push([w.ptr + 4 * r0 * cols, xPtr, cols, n, Math.min(block, rows - r0), cols, outPtr + 4 * r0, rows]);
        }
        runAll(calls);
        return floats(outPtr, n * rows).slice();
      } finally {
        kernels.arena.release(mark);
      }
    },

    accumulateXtx(xtx, x, n, cols) {
      if (x.length < n * cols || xtx.length !== cols * cols) {
        throw new ShapeError("accumulateXtx", `x ${n}x${cols}, xtx ${cols}x${cols}`, `${x.length}, ${xtx.length}`);
      }
      const mark = kernels.arena.mark();
      try {
        // Xᵀ (cols, n): row i holds channel i over the window's tokens, so block (i, j) of XᵀX
        // is gemm_f32 of rows i.. (as the activations) against rows j.. (as the matrix).
        const tPtr = scratch(cols * n);
        const xt = floats(tPtr, cols * n);
        for (let t = 0; t < n; t++) for (let i = 0; i < cols; i++) xt[i * n + t] = x[t * cols + i];
        const outPtr = scratch(XTX_BLOCK * cols); // (block, cols): rows i0.. of XᵀX
        for (let i0 = 0; i0 < cols; i0 += XTX_BLOCK) {
          const bi = Math.min(XTX_BLOCK, cols - i0);
          const calls: number[][] = [];
          for (let j0 = i0; j0 < cols; j0 += XTX_BLOCK) {
            calls.push([tPtr + 4 * j0 * n, tPtr + 4 * i0 * n, n, bi, Math.min(XTX_BLOCK, cols - j0), n, outPtr + 4 * j0, cols]);
          }
          runAll(calls);
          const out = floats(outPtr, XTX_BLOCK * cols);
          for (let a = 0; a < bi; a++) {
            const i = i0 + a;
            for (let j = i; j < cols; j++) xtx[i * cols + j] += out[a * cols + j];
          }
        }
      } finally {
        kernels.arena.release(mark);
      }
    },

    mark: () => kernels.arena.mark(),
    alloc: scratch,
    floats,
    gemm: runAll,
    release: (mark) => kernels.arena.release(mark),
    async dispose() {
      if (pool !== undefined) await disposePool(pool);
    },
  };
}
