/**
 * Test helpers for the kernel tests: a seeded normal generator, copying arrays in and out of the
 * kernels' shared memory, an error-bound assertion that reports the worst element, and the
 * CRUMB_QUICK_TESTS switch that shrinks shape sweeps (used by the emulated ARM64 run).
 */
import { expect } from "bun:test";
import type { Kernels } from "./wasm.ts";

/** True when the shape sweeps should shrink (every export still runs at least once). */
export const QUICK = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env
  .CRUMB_QUICK_TESTS === "1";

/** mulberry32 uniform in [0, 1) and a Box–Muller normal on top of it. */
export function createRng(seed: number): { uniform(): number; normal(): number } {
  let s = seed >>> 0;
  const uniform = (): number => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

export function randomF32(seed: number, n: number, scale = 1): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

/** Allocates `data` in the kernel memory and returns its byte offset. */
export function put(kern: Kernels, data: Float32Array | Uint16Array): number {
  const ptr = kern.arena.alloc(data.byteLength);
  const view = data instanceof Float32Array
    ? new Float32Array(kern.memory.buffer, ptr, data.length)
    : new Uint16Array(kern.memory.buffer, ptr, data.length);
  view.set(data);
  return ptr;
}

/** Allocates n zeroed f32 and returns the byte offset. */
export function alloc(kern: Kernels, n: number): number {
  const ptr = kern.arena.alloc(n * 4);
  new Float32Array(kern.memory.buffer, ptr, n).fill(0);
  return ptr;
}

export function getF32(kern: Kernels, ptr: number, n: number): Float32Array {
  return new Float32Array(kern.memory.buffer, ptr, n).slice();
}

export function getU16(kern: Kernels, ptr: number, n: number): Uint16Array {
  return new Uint16Array(kern.memory.buffer, ptr, n).slice();
}

/** Asserts |got − want| ≤ atol + rtol·|want| everywhere; the failure names the worst index. */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number): void {
  expect(got.length).toBe(want.length);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    const excess = err - (atol + rtol * Math.abs(want[i]));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    expect({ index: worst, got: got[worst], want: want[worst] }).toEqual({ index: worst, got: want[worst], want: want[worst] });
  }
}

/** Runs `body` and releases everything it allocated from the arena. */
export function withArena<T>(kern: Kernels, body: () => T): T {
  const mark = kern.arena.mark();
  try {
    return body();
  } finally {
    kern.arena.release(mark);
  }
}
