/**
 * GPTQ (Frantar et al. 2022, arXiv 2210.17323, Algorithm 1): quantise the columns of W one at
 * a time and spread each column's rounding error over the columns not yet quantised, using
 * the upper Cholesky factor U of H⁻¹ (H = 2XᵀX/n from calibration, dampened by 1% of its mean
 * diagonal). Updates are lazy: inside a block of 128 columns immediately, to the rest of the
 * matrix once per block. Columns are visited in act-order (descending H_ii) with static
 * groups: every group's (d, z) is fitted up front on the original weights, with the grid.ts
 * search weighted by diag(H) (the paper's default fits min/max when a group starts; on
 * stories260K act-order with static groups gave the lower KL). Columns never activated in
 * calibration (H_ii = 0) are zeroed, as in the reference code.
 *
 * Not in the paper: once the codes are fixed, every group's (d, z) is refitted against the
 * damped Hessian (one block-Jacobi step per row, kept only where the row's output error drops;
 * ../gptq-refit.ts). On stories260K (mean KL) it took 4 bits 0.0526 → 0.0510, 3 bits
 * 0.2565 → 0.2389 and 2 bits 1.2627 → 1.2038, for about 45% more time per 1.1B-shaped layer
 * (two more triangular products the size of the sweep's); `refit: false` turns it off.
 * Then a second round (`rounds`, default 2): the sweep runs again from the refitted (d, z),
 * so the codes are chosen for the parameters they will be stored with, and is refitted in
 * turn; each row keeps the round with the lower damped output error eᵀH'e, so the layer
 * objective never goes up (alternating minimisation: codes given parameters, parameters given
 * codes). On stories260K it took mean KL 0.0510 → 0.0497 at 4 bits, 0.2389 → 0.2316 at 3 and
 * 1.2038 → 1.1530 at 2, and lowered it at every width with two other calibration texts too;
 * a third round did not help consistently (bench/results/quality.md). Each round costs one
 * more sweep and refit (the factor is shared).
 *
 * Two paths: with a DenseEngine, the blocked factorisation (../gptq-factor.ts) and the
 * left-looking sweep (../gptq-sweep.ts) run their O(n³) and O(rows·n²) parts on the WASM
 * GEMM in float32, as the reference implementation does on a GPU; the factor is cached per
 * Hessian, so q/k/v and gate/up (one shared Hessian) factorise once. Without one,
 * `quantizeGptqReference` is the plain float64 twin the parity tests compare against.
 */
import { InvalidArgumentError } from "../../runtime/errors.ts";
import type { DenseEngine } from "../dense-engine.ts";
import { type GptqFactor, reverseCholeskyBlocked } from "../gptq-factor.ts";
import { createGroupFitter } from "./group-fit.ts";
import { refitGroups, refitGroupsReference } from "../gptq-refit.ts";
import { gptqSweep } from "../gptq-sweep.ts";
import { dampingSchedule, inverseCholeskyUpper, meanDiagonal } from "../linalg.ts";
import { type AffineParams, affineCode, fitAffine } from "./grid.ts";
import { checkInput, type MatrixInput, type QuantizedMatrix } from "./types.ts";

export const GPTQ_BLOCK = 128;
export const GPTQ_DAMP = 0.01;
/** Sweep-and-refit rounds by default (see the module comment). */
export const GPTQ_ROUNDS = 2;

export interface GptqOptions {
  /** Runs the factorisation and the sweep on this engine's GEMM; absent: the float64 reference. */
  readonly engine?: DenseEngine;
  /** Refit the group scales and zero points to the Hessian after the sweep (default true). */
  readonly refit?: boolean;
  /**
   * Sweep-and-refit rounds, each sweeping from the previous round's parameters (default
   * GPTQ_ROUNDS; an integer from 1 to 8); ignored without the refit, where a second sweep
   * would repeat the first.
   */
  readonly rounds?: number;
}

/** One round's codes and parameters, and each row's damped output error with them. */
interface RoundResult {
  readonly codes: Uint8Array;
  readonly scales: Float32Array;
  readonly zeros: Float32Array;
  readonly errors: Float64Array;
}

/** What the factor depends on: act-order and diag(H) with dead columns set to 1. */
interface HessianPlan {
  readonly diag: Float64Array;
  readonly dead: Uint8Array;
  readonly order: number[];
}

interface CachedFactor {
  readonly plan: HessianPlan;
  readonly factor: GptqFactor;
}

/** Factors by Hessian array: layers fed the same input share one Hessian (calibration-stats.ts). */
const factorCache = new WeakMap<Float64Array, CachedFactor>();

/**
 * GPTQ codes for one matrix. With `options.engine`, the fast path: float32 GEMMs whose outputs
 * are single dot products, so the codes do not depend on the engine's thread count; the factor
 * is cached by Hessian array (keep the array unchanged while it is in use).
 */
export function quantizeGptq(input: MatrixInput, options: GptqOptions = {}): QuantizedMatrix {
  const h = checkGptqInput(input);
  const engine = options.engine;
  if (engine === undefined) return quantizeGptqReference(input, options);
  const { rows, cols, group, bits } = input;
  let cached = factorCache.get(h);
  if (cached === undefined || !sameDiagonal(cached.plan, h, cols)) {
    const plan = planHessian(h, cols);
    cached = { plan, factor: reverseCholeskyBlocked(h, cols, GPTQ_DAMP, plan, engine) };
    factorCache.set(h, cached);
  }
  const { plan, factor } = cached;
  const fit = fitGroups(input, plan);
  const sweep = { weights: input.weights, rows, cols, bits, group, order: plan.order, dead: plan.dead, params: fit.params };
  const encoding = { kind: "bitplane", bits, group, scales: "zero-point" } as const;
  if (options.refit === false) return { encoding, codes: gptqSweep(sweep, factor, engine), scales: fit.scales, zeros: fit.zeros };
  const rounds = checkRounds(options.rounds);
  const mark = engine.mark();
  try {
    const scaledErrorPtr = engine.alloc(rows * cols); // (rows, cols) Y = (W0 − Q)·R, visiting order
    let best: RoundResult | undefined;
    for (let round = 0; round < rounds; round++) {
      const start = best ?? fit;
      const params = best === undefined ? fit.params : paramsOf(best);
      const codes = gptqSweep({ ...sweep, params, scaledErrorPtr }, factor, engine);
      const refit = { weights: input.weights, rows, cols, group, hessian: h, dead: plan.dead, shift: factor.lambda, codes, scales: start.scales, zeros: start.zeros };
      const { scales, zeros, errors } = refitGroups(refit, factor, plan.order, scaledErrorPtr, engine);
      best = keepBetterRows(best, { codes, scales, zeros, errors }, cols, group);
    }
    return { encoding, codes: best!.codes, scales: best!.scales, zeros: best!.zeros };
  } finally {
    engine.release(mark);
  }
}

function checkRounds(rounds: number | undefined): number {
  if (rounds === undefined) return GPTQ_ROUNDS;
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 8) {
    throw new InvalidArgumentError("rounds", `gptq rounds ${rounds} is not an integer from 1 to 8; 1 is the single sweep and refit, ${GPTQ_ROUNDS} the default`);
  }
  return rounds;
}

function paramsOf(q: { readonly scales: Float32Array; readonly zeros: Float32Array }): AffineParams[] {
  return Array.from(q.scales, (d, k) => ({ d, z: q.zeros[k] }));
}

/**
 * Per row, the round with the lower error: `next` itself when there is no best yet, else
 * `best` with the rows where `next` is lower copied in (ties keep the earlier round).
 */
function keepBetterRows(best: RoundResult | undefined, next: RoundResult, cols: number, group: number): RoundResult {
  if (best === undefined) return next;
  const groups = cols / group;
  for (let r = 0; r < best.errors.length; r++) {
    if (!(next.errors[r] < best.errors[r])) continue;
    best.errors[r] = next.errors[r];
    best.codes.set(next.codes.subarray(r * cols, (r + 1) * cols), r * cols);
    best.scales.set(next.scales.subarray(r * groups, (r + 1) * groups), r * groups);
    best.zeros.set(next.zeros.subarray(r * groups, (r + 1) * groups), r * groups);
  }
  return best;
}

/** A cached factor is reused only while H's diagonal is unchanged (a cheap guard against a reused buffer). */
function sameDiagonal(plan: HessianPlan, h: Float64Array, cols: number): boolean {
  for (let i = 0; i < cols; i++) if (h[i * cols + i] !== (plan.dead[i] ? 0 : plan.diag[i])) return false;
  return true;
}

function checkGptqInput(input: MatrixInput): Float64Array {
  checkInput("gptq", input);
  if (input.hessian === undefined) {
    throw new InvalidArgumentError("calibration", "gptq needs the calibration Hessian of every linear layer; quantise through quantizeModel (which calibrates) or pass hessian");
  }
  return input.hessian;
}

function planHessian(h: Float64Array, cols: number): HessianPlan {
  const diag = new Float64Array(cols);
  const dead = new Uint8Array(cols);
  for (let i = 0; i < cols; i++) {
    diag[i] = h[i * cols + i];
    if (diag[i] === 0) {
      diag[i] = 1;
      dead[i] = 1;
    }
  }
  const order = Array.from({ length: cols }, (_, i) => i).sort((a, b) => diag[b] - diag[a] || a - b);
  return { diag, dead, order };
}

/**
 * Static groups: (d, z) of every group from the original weights (dead columns as 0, weighted
 * by diag H), so columns can then be visited in act-order without changing the layout. The
 * fitter gives fitAffine's parameters exactly (group-fit.ts), faster.
 */
function fitGroups(input: MatrixInput, plan: HessianPlan): { params: AffineParams[]; scales: Float32Array; zeros: Float32Array } {
  const { weights, rows, cols, group, bits } = input;
  const groups = cols / group;
  const scales = new Float32Array(rows * groups);
  const zeros = new Float32Array(rows * groups);
  const params: AffineParams[] = new Array(rows * groups);
  const x = new Float64Array(group);
  const hw = new Float64Array(group);
  const fitter = createGroupFitter(bits);
  for (let g = 0; g < groups; g++) {
    for (let k = 0; k < group; k++) hw[k] = plan.diag[g * group + k];
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < group; k++) x[k] = plan.dead[g * group + k] ? 0 : weights[r * cols + g * group + k];
      const p = fitter.fit(x, hw, group);
      params[r * groups + g] = p;
      scales[r * groups + g] = p.d;
      zeros[r * groups + g] = p.z;
    }
  }
  return { params, scales, zeros };
}

/** The float64 twin: the paper's right-looking sweep on U = chol(H⁻¹) (linalg.ts), the same rounds. */
export function quantizeGptqReference(input: MatrixInput, options: { readonly refit?: boolean; readonly rounds?: number } = {}): QuantizedMatrix {
  const h = checkGptqInput(input); // read only: factorised through a permuted view
  const { rows, cols, group, bits } = input;
  const groups = cols / group;
  const w = Float64Array.from(input.weights); // (rows, cols)
  const diag = new Float64Array(cols); // diag(H) with dead columns set to 1
  const dead = new Uint8Array(cols);
  for (let i = 0; i < cols; i++) {
    diag[i] = h[i * cols + i];
    if (diag[i] === 0) {
      diag[i] = 1;
      dead[i] = 1;
      for (let r = 0; r < rows; r++) w[r * cols + i] = 0;
    }
  }

  // Static groups: (d, z) of every group from the original weights (weighted by diag H), so
  // columns can then be visited in act-order (descending H_ii) without changing the layout.
  const scales = new Float32Array(rows * groups);
  const zeros = new Float32Array(rows * groups);
  const params: AffineParams[] = new Array(rows * groups);
  const x = new Float64Array(group);
  const hw = new Float64Array(group);
  for (let g = 0; g < groups; g++) {
    for (let k = 0; k < group; k++) hw[k] = diag[g * group + k];
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < group; k++) x[k] = w[r * cols + g * group + k];
      const p = fitAffine(x, hw, group, bits, true);
      params[r * groups + g] = p;
      scales[r * groups + g] = p.d;
      zeros[r * groups + g] = p.z;
    }
  }
  const order = Array.from({ length: cols }, (_, i) => i).sort((a, b) => diag[b] - diag[a] || a - b);
  const u = inverseCholeskyUpper(h, cols, GPTQ_DAMP, { order, diag });
  const sweep = { w, u, order, rows, cols, group, bits };
  const encoding = { kind: "bitplane", bits, group, scales: "zero-point" } as const;
  if (options.refit === false) return { encoding, codes: sweepReference(sweep, params), scales, zeros };
  const shift = dampingShift(h, cols, { order, diag }, u);
  const rounds = checkRounds(options.rounds);
  let best: RoundResult | undefined;
  for (let round = 0; round < rounds; round++) {
    const start = best ?? { scales, zeros };
    const codes = sweepReference(sweep, best === undefined ? params : paramsOf(best));
    const refit = refitGroupsReference({ weights: input.weights, rows, cols, group, hessian: h, dead, shift, codes, scales: start.scales, zeros: start.zeros });
    best = keepBetterRows(best, { codes, scales: refit.scales, zeros: refit.zeros, errors: refit.errors }, cols, group);
  }
  return { encoding, codes: best!.codes, scales: best!.scales, zeros: best!.zeros };
}

interface ReferenceSweep {
  /** (rows, cols) weights, dead columns zeroed. */
  readonly w: Float64Array;
  /** Upper Cholesky factor of the damped H⁻¹ in visiting order. */
  readonly u: Float64Array;
  readonly order: readonly number[];
  readonly rows: number;
  readonly cols: number;
  readonly group: number;
  readonly bits: number;
}

/** One GPTQ sweep with fixed group parameters: codes (rows, cols) in the original column order. */
function sweepReference(input: ReferenceSweep, params: readonly AffineParams[]): Uint8Array {
  const { w, u, order, rows, cols, group, bits } = input;
  const levels = 1 << bits;
  const groups = cols / group;
  const codes = new Uint8Array(rows * cols);
  const wp = new Float64Array(rows * cols); // (rows, cols) in visiting order
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) wp[r * cols + j] = w[r * cols + order[j]];
  const err = new Float64Array(rows * GPTQ_BLOCK); // (rows, block) scaled errors
  for (let b1 = 0; b1 < cols; b1 += GPTQ_BLOCK) {
    const b2 = Math.min(b1 + GPTQ_BLOCK, cols);
    const width = b2 - b1;
    for (let i = b1; i < b2; i++) {
      const col = order[i];
      const g = Math.floor(col / group);
      const uii = u[i * cols + i];
      for (let r = 0; r < rows; r++) {
        const value = wp[r * cols + i];
        const p = params[r * groups + g];
        const q = affineCode(value, p, levels);
        codes[r * cols + col] = q;
        const e = (value - p.d * (q - p.z)) / uii;
        err[r * GPTQ_BLOCK + (i - b1)] = e;
        const row = r * cols;
        for (let j = i + 1; j < b2; j++) wp[row + j] -= e * u[i * cols + j];
      }
    }
    if (b2 === cols) continue;
    for (let r = 0; r < rows; r++) {
      const row = r * cols;
      for (let k = 0; k < width; k++) {
        const e = err[r * GPTQ_BLOCK + k];
        if (e === 0) continue;
        const urow = (b1 + k) * cols;
        for (let j = b2; j < cols; j++) wp[row + j] -= e * u[urow + j];
      }
    }
  }
  return codes;
}

/**
 * The damping λ·mean that inverseCholeskyUpper added (λ from its schedule): the last visited
 * pivot of the damped H is 1/U_nn², so the schedule entry closest to 1/U_nn² − H_nn is it.
 * Computed the same way as the blocked factor's, so both paths refit against the same H'.
 */
function dampingShift(h: Float64Array, cols: number, view: { order: readonly number[]; diag: Float64Array }, u: Float64Array): number {
  const mean = meanDiagonal(h, cols, view);
  const last = u[cols * cols - 1];
  const shift = 1 / (last * last) - view.diag[view.order[cols - 1]];
  let best = GPTQ_DAMP * mean;
  for (const lambda of dampingSchedule(GPTQ_DAMP)) if (Math.abs(lambda * mean - shift) < Math.abs(best - shift)) best = lambda * mean;
  return best;
}

