/**
 * Per-linear calibration statistics, recorded by wrapping an array backend's `linear`: mean x²
 * per input channel (llama.cpp's importance matrix) and H = 2·XᵀX / n (GPTQ's Hessian, Frantar
 * et al. 2022, eq. 2) of every wanted weight's input. The projections of one fused `linear`
 * call (q/k/v, gate/up) read the same input and share one accumulator. The XᵀX update is
 * pluggable: `accumulateXtxReference` is the plain float64 loop, dense-engine.ts has the WASM
 * GEMM one.
 */
import type { ArrayOps } from "../runtime/ops/reference.ts";
import type { MatrixHandle } from "../runtime/ops/types.ts";
import type { LayerStats } from "./methods/types.ts";

/** Adds the upper triangle (j >= i) of XᵀX for x (n, cols) into xtx (cols, cols). */
export type XtxUpdate = (xtx: Float64Array, x: Float32Array, n: number, cols: number) => void;

export interface RecordOptions {
  /** Weight names to collect for; others are skipped. */
  readonly wanted: (name: string) => boolean;
  /** Accumulate XᵀX (cols² doubles per distinct input) besides the importance vector. */
  readonly hessian: boolean;
}

export interface StatsRecorder<M extends MatrixHandle> {
  /** `base` with a `linear` that records its input before computing. */
  readonly ops: ArrayOps<M>;
  /** Statistics by weight name; consumes the accumulators (call once). */
  finish(): Map<string, LayerStats>;
}

interface Accumulator {
  readonly cols: number;
  readonly squares: Float64Array;
  readonly xtx?: Float64Array;
  tokens: number;
}

/** The plain twin: float64 products, one token at a time. */
export function accumulateXtxReference(xtx: Float64Array, x: Float32Array, n: number, cols: number): void {
  for (let t = 0; t < n; t++) {
    const row = t * cols;
    for (let i = 0; i < cols; i++) {
      const xi = x[row + i];
      if (xi === 0) continue;
      const base = i * cols;
      for (let j = i; j < cols; j++) xtx[base + j] += xi * x[row + j];
    }
  }
}

function accumulate(acc: Accumulator, x: Float32Array, n: number, xtxUpdate: XtxUpdate): void {
  const { cols, squares, xtx } = acc;
  for (let t = 0; t < n; t++) {
    const row = t * cols;
    for (let i = 0; i < cols; i++) squares[i] += x[row + i] * x[row + i];
  }
  if (xtx !== undefined) xtxUpdate(xtx, x, n, cols);
  acc.tokens += n;
}

/** Importance and Hessian from an accumulator; the Hessian reuses (mirrors and scales) xtx. */
function finishAccumulator(acc: Accumulator): LayerStats {
  const n = Math.max(1, acc.tokens);
  const importance = acc.squares.map((s) => s / n);
  const { cols, xtx } = acc;
  if (xtx === undefined) return { importance };
  for (let i = 0; i < cols; i++) {
    for (let j = i; j < cols; j++) {
      const v = (2 * xtx[i * cols + j]) / n;
      xtx[i * cols + j] = v;
      xtx[j * cols + i] = v;
    }
  }
  return { importance, hessian: xtx };
}

/**
 * Statistics of one input given as arrays of (n, cols) rows: what a wanted linear fed them would
 * record, without running the linear (the head's input, whose product is the whole vocabulary).
 */
export function inputStats(xs: readonly Float32Array[], cols: number, hessian: boolean, xtxUpdate: XtxUpdate): LayerStats {
  const acc: Accumulator = { cols, squares: new Float64Array(cols), xtx: hessian ? new Float64Array(cols * cols) : undefined, tokens: 0 };
  for (const x of xs) accumulate(acc, x, x.length / cols, xtxUpdate);
  return finishAccumulator(acc);
}

export function createStatsRecorder<M extends MatrixHandle>(base: ArrayOps<M>, options: RecordOptions, xtxUpdate: XtxUpdate): StatsRecorder<M> {
  const byName = new Map<string, Accumulator>();
  const ops: ArrayOps<M> = {
    ...base,
    linear(x, n, projections) {
      const wanted = projections.filter((p) => options.wanted(p.weight.name)).map((p) => p.weight.name);
      if (wanted.length > 0) {
        let acc = wanted.map((name) => byName.get(name)).find((a) => a !== undefined);
        acc ??= {
          cols: x.width,
          squares: new Float64Array(x.width),
          xtx: options.hessian ? new Float64Array(x.width * x.width) : undefined,
          tokens: 0,
        };
        for (const name of wanted) byName.set(name, acc);
        accumulate(acc, x.data.subarray(0, n * x.width), n, xtxUpdate);
      }
      base.linear(x, n, projections);
    },
  };
  return {
    ops,
    finish() {
      const finished = new Map<Accumulator, LayerStats>();
      const out = new Map<string, LayerStats>();
      for (const [name, acc] of byName) {
        let stats = finished.get(acc);
        if (stats === undefined) {
          stats = finishAccumulator(acc);
          finished.set(acc, stats);
        }
        out.set(name, stats);
      }
      byName.clear();
      return out;
    },
  };
}
