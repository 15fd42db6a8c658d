/**
 * Cosines and sines of RoPE angles pos·invFreq[i] for every position of the context, so
 * compressed caches can undo and redo the rotation of cached keys without trigonometry per
 * step (KIVI quantises keys before RoPE). Same rotate-half pairing (i, i + headDim/2) and
 * angles as ops.rope. `wasmRotation` applies the forward rotation with the rope_f32 kernel to
 * rows held in WASM memory (same table; f32 rounding instead of the loop's f64 products).
 */
import { ropeCallArgs } from "../../kernels/elementwise.ts";
import { CHUNKS_PER_THREAD, type Pool, splitRows } from "../../threads/pool.ts";
import { call } from "../../kernels/regions.ts";
import type { Kernels } from "../../kernels/wasm.ts";
export interface RopeTable {
  /** cos and sin of pos·invFreq[i], (positions, headDim/2) each. */
  readonly cos: Float32Array;
  readonly sin: Float32Array;
  /** Rotates rows (n, nHeads*headDim) at positions first.. by +angle (direction 1) or -angle (-1), in place. */
  rotate(rows: Float32Array, n: number, first: number, direction: 1 | -1): void;
}

export function createRopeTable(invFreq: Float32Array, nHeads: number, headDim: number, positions: number): RopeTable {
  const half = headDim / 2;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * invFreq[i];
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return {
    cos,
    sin,
    rotate(rows, n, first, direction) {
      for (let t = 0; t < n; t++) {
        const at = (first + t) * half;
        for (let h = 0; h < nHeads; h++) {
          const base = (t * nHeads + h) * headDim;
          for (let i = 0; i < half; i++) {
            const c = cos[at + i];
            const s = direction * sin[at + i];
            const a = rows[base + i];
            const b = rows[base + i + half];
            rows[base + i] = a * c - b * s;
            rows[base + i + half] = b * c + a * s;
          }
        }
      }
    },
  };
}

/** Rows below which a rotation stays on the calling thread (a pool batch costs more). */
const MIN_POOL_ROWS = 64;

/**
 * Rotation by +angle through the rope_f32 kernel, for rows that are views of the kernels'
 * memory (split by rows across `pool` when given); other rows take the table's plain loop. The
 * kernel's table, (positions, headDim) with cos then sin per position, is copied from `table`
 * into the arena.
 */
export function wasmRotation(kernels: Kernels, table: RopeTable, nHeads: number, headDim: number, pool?: Pool) {
  const half = headDim / 2;
  const positions = table.cos.length / half;
  const tablePtr = kernels.arena.alloc(positions * headDim * 4, 64);
  const view = new Float32Array(kernels.memory.buffer, tablePtr, positions * headDim);
  for (let p = 0; p < positions; p++) {
    view.set(table.cos.subarray(p * half, (p + 1) * half), p * headDim);
    view.set(table.sin.subarray(p * half, (p + 1) * half), p * headDim + half);
  }
  return (rows: Float32Array, n: number, first: number): void => {
    if (rows.buffer !== kernels.memory.buffer || n === 0) {
      table.rotate(rows, n, first, 1);
      return;
    }
    const rowBytes = nHeads * headDim * 4;
    const calls = splitRows(n, pool === undefined || n < MIN_POOL_ROWS ? 1 : pool.threads * CHUNKS_PER_THREAD).map(([begin, end]) =>
      ropeCallArgs(kernels, { x: rows.byteOffset + begin * rowBytes, table: tablePtr + (first + begin) * headDim * 4, nTokens: end - begin, nHeads, headDim })
    );
    if (pool === undefined || calls.length === 1) call(kernels, "rope_f32", calls[0]);
    else pool.runTasks(calls.map((args) => ({ exportName: "rope_f32", args })));
  };
}
