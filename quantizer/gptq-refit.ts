/**
 * Refit of the group parameters after GPTQ (Frantar et al. 2022) has fixed the codes: with q
 * fixed, ŵ_i = a·q_i + b in each group (a = d, b = −d·z) is linear in (a, b), so each row's
 * output error eᵀH'e (e = w − ŵ, H' the damped Hessian GPTQ factorised) is a quadratic in the
 * group parameters. One block-Jacobi step per row: with He computed once, every group g solves
 * its 2×2 least-squares system min δᵀH'_gg·δ − 2δᵀ(H'e)_g for δ_i = Δa·q_i + Δb, then
 * d = f16(a + Δa), z = f16(−(b + Δb)/d); degenerate systems (all codes equal) and a + Δa ≤ 0
 * keep the group as it was. A Jacobi step can overshoot where groups are strongly coupled, so
 * a row keeps its new parameters only when its error went down (the guard). On stories260K
 * more (Gauss-Seidel) sweeps overfit the calibration Hessian at 2 bits: one step it is.
 *
 * Fast path (with a DenseEngine, as gptq-sweep.ts): H' = R·Rᵀ in visiting order (the factor),
 * and the sweep hands over Y = D·R (D = W0 − Q, rows in visiting order), so H'e = R·y for each
 * row y of Y and the error before is ‖y‖²; the error after is ‖y − Δ·R‖² for the change Δ of ŵ. Both
 * products are triangular (rows·cols²/2 multiply-adds each) on gemm_f32, one dot product per
 * output, so results do not depend on the thread count. `refitGroupsReference` is the float64
 * twin on H' itself. Each product costs as much as the sweep's own GEMM; anything exact needs
 * them (the q-weighted cross terms between groups are a full quadratic form per row): on a
 * 1.1B-shaped layer (2 cores, shared with other work) GPTQ took 58-61 s without the refit and
 * 86-87 s with it. Engine memory: the caller's Y plus one (rows, cols) work buffer, released
 * before returning.
 */
import { ShapeError } from "../runtime/errors.ts";
import { roundToF16 } from "../runtime/format/pack-f16.ts";
import { type DenseEngine, tiledGemmCalls } from "./dense-engine.ts";
import type { GptqFactor } from "./gptq-factor.ts";

/** Rows of Y and output columns per gemm_f32 call (tiledGemmCalls). */
const BAND_ROWS = 64;
const SUB_COLS = 32;
/** A group's system counts as degenerate below this (1 − cos² of q and 1 in the H' metric). */
const DEGENERATE = 1e-9;

export interface RefitInput {
  /** (rows, cols) original weights; `dead` columns read as 0 (GPTQ's target). The fast path reads Y instead. */
  readonly weights: Float32Array;
  readonly rows: number;
  readonly cols: number;
  readonly group: number;
  /** (cols, cols) H without damping; dead columns (H_ii = 0) count with H_ii = 1. */
  readonly hessian: Float64Array;
  readonly dead: Uint8Array;
  /** Damping added to the diagonal (the factor's λ·mean diag). */
  readonly shift: number;
  /** (rows, cols) the codes GPTQ chose; unchanged by the refit. */
  readonly codes: Uint8Array;
  /** (rows, cols / group) f16-valued parameters: ŵ = scale·(q − zero). */
  readonly scales: Float32Array;
  readonly zeros: Float32Array;
}

export interface RefitResult {
  readonly scales: Float32Array;
  readonly zeros: Float32Array;
  /** Rows whose refit lowered their error and was kept. */
  readonly kept: number;
  /** (rows) each row's damped output error eᵀH'e with the parameters returned (what the guard kept). */
  readonly errors: Float64Array;
}

/** Diagonal blocks of H' in group order: (groups, group, group), their row sums H'_gg·1 and totals 1ᵀH'_gg·1. */
interface GroupBlocks {
  readonly blocks: Float64Array;
  readonly sums: Float64Array;
  readonly totals: Float64Array;
}

function checkRefitInput(input: RefitInput): void {
  const { weights, rows, cols, group, hessian, dead, codes, scales, zeros } = input;
  const params = (rows * cols) / group;
  if (weights.length !== rows * cols || codes.length !== rows * cols || hessian.length !== cols * cols || dead.length !== cols || cols % group !== 0 || scales.length !== params || zeros.length !== params) {
    throw new ShapeError("gptq refit", `${rows}x${cols} weights and codes, a ${cols}x${cols} Hessian, ${params} scales and zeros`, `${weights.length}, ${codes.length}, ${hessian.length}, ${scales.length}, ${zeros.length}`);
  }
}

function groupBlocks(input: RefitInput): GroupBlocks {
  const { cols, group, hessian, dead, shift } = input;
  const groups = cols / group;
  const blocks = new Float64Array(groups * group * group);
  const sums = new Float64Array(cols);
  const totals = new Float64Array(groups);
  for (let g = 0; g < groups; g++) {
    const base = g * group;
    for (let i = 0; i < group; i++) {
      let sum = 0;
      for (let j = 0; j < group; j++) {
        const c = base + i;
        const v = j === i ? (dead[c] ? 1 : hessian[c * cols + c]) + shift : hessian[c * cols + base + j];
        blocks[(base + i) * group + j] = v;
        sum += v;
      }
      sums[base + i] = sum;
      totals[g] += sum;
    }
  }
  return { blocks, sums, totals };
}

/**
 * One row's Jacobi step: new (d, z) of every group of row r into `scales` / `zeros` (which hold
 * the old ones on entry) from he = (H'e) of the row in the original column order.
 */
function solveRow(r: number, he: Float64Array, input: RefitInput, hb: GroupBlocks, scales: Float32Array, zeros: Float32Array): void {
  const { cols, group, codes } = input;
  const groups = cols / group;
  const { blocks, sums, totals } = hb;
  const row = r * cols;
  const q = new Float64Array(group);
  for (let g = 0; g < groups; g++) {
    const base = g * group;
    for (let i = 0; i < group; i++) q[i] = codes[row + base + i];
    let m00 = 0, m01 = 0, v0 = 0, v1 = 0;
    for (let i = 0; i < group; i++) {
      const qi = q[i];
      const at = (base + i) * group;
      let hq = 0;
      for (let j = 0; j < group; j++) hq += blocks[at + j] * q[j];
      m00 += qi * hq;
      m01 += qi * sums[base + i];
      v0 += qi * he[base + i];
      v1 += he[base + i];
    }
    const m11 = totals[g];
    const det = m00 * m11 - m01 * m01;
    if (!(det > DEGENERATE * m00 * m11)) continue;
    const k = r * groups + g;
    const a = scales[k] + (v0 * m11 - m01 * v1) / det;
    const b = -scales[k] * zeros[k] + (m00 * v1 - m01 * v0) / det;
    if (!(a > 0)) continue;
    const d = roundToF16(a);
    if (!(d > 0) || !Number.isFinite(d)) continue;
    const z = roundToF16(-b / d);
    if (!Number.isFinite(z)) continue;
    scales[k] = d;
    zeros[k] = z;
  }
}

/** out[c] = ŵ'_c − ŵ_c over row r (original order): new parameters against input's, both as float32 weights. */
function rowChange(r: number, input: RefitInput, scales: Float32Array, zeros: Float32Array, out: Float64Array): void {
  const { cols, group, codes } = input;
  const groups = cols / group;
  for (let g = 0; g < groups; g++) {
    const k = r * groups + g;
    const d = scales[k], z = zeros[k], d0 = input.scales[k], z0 = input.zeros[k];
    for (let c = g * group; c < (g + 1) * group; c++) {
      const q = codes[r * cols + c];
      out[c] = Math.fround(d * (q - z)) - Math.fround(d0 * (q - z0));
    }
  }
}

/**
 * Keeps the refit of the rows whose error went down; the others get their old parameters back.
 * `after` ends up holding each row's error with the parameters it keeps.
 */
function guard(input: RefitInput, scales: Float32Array, zeros: Float32Array, before: Float64Array, after: Float64Array): number {
  const groups = input.cols / input.group;
  let kept = 0;
  for (let r = 0; r < input.rows; r++) {
    if (after[r] < before[r]) {
      kept++;
      continue;
    }
    after[r] = before[r];
    for (let g = r * groups; g < (r + 1) * groups; g++) {
      scales[g] = input.scales[g];
      zeros[g] = input.zeros[g];
    }
  }
  return kept;
}

/** The float64 twin: H'e, the errors before and after from H' itself, row by row. */
export function refitGroupsReference(input: RefitInput): RefitResult {
  checkRefitInput(input);
  const { weights, rows, cols, hessian, dead, shift } = input;
  const hb = groupBlocks(input);
  const scales = Float32Array.from(input.scales);
  const zeros = Float32Array.from(input.zeros);
  const e = new Float64Array(cols);
  const he = new Float64Array(cols);
  const delta = new Float64Array(cols);
  const before = new Float64Array(rows);
  const after = new Float64Array(rows);
  const product = (): number => {
    let err = 0;
    for (let i = 0; i < cols; i++) {
      let acc = dead[i] ? e[i] : 0;
      for (let j = 0; j < cols; j++) acc += hessian[i * cols + j] * e[j];
      he[i] = acc + shift * e[i];
      err += e[i] * he[i];
    }
    return err;
  };
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const k = r * (cols / input.group) + Math.floor(c / input.group);
      e[c] = (dead[c] ? 0 : weights[r * cols + c]) - Math.fround(input.scales[k] * (input.codes[r * cols + c] - input.zeros[k]));
    }
    before[r] = product();
    solveRow(r, he, input, hb, scales, zeros);
    rowChange(r, input, scales, zeros, delta);
    for (let c = 0; c < cols; c++) e[c] -= delta[c];
    after[r] = product();
  }
  const kept = guard(input, scales, zeros, before, after);
  return { scales, zeros, kept, errors: after };
}

/**
 * The fast path: `scaledErrorPtr` holds Y = D·R (rows, cols) in visiting order in the engine's
 * memory (gptq-sweep.ts); `order` is the factor's permutation. Y is left in place.
 */
export function refitGroups(input: RefitInput, factor: GptqFactor, order: readonly number[], scaledErrorPtr: number, engine: DenseEngine): RefitResult {
  checkRefitInput(input);
  const { rows, cols } = input;
  if (factor.n !== cols || order.length !== cols) throw new ShapeError("gptq refit", `a factor of order ${cols}`, `${factor.n}`);
  const hb = groupBlocks(input);
  const scales = Float32Array.from(input.scales);
  const zeros = Float32Array.from(input.zeros);
  const before = new Float64Array(rows);
  const after = new Float64Array(rows);
  const mark = engine.mark();
  try {
    // (rows, cols) in visiting order: H'e = R·Y, then overwritten row by row with Δ = ŵ' − ŵ.
    const workPtr = engine.alloc(rows * cols);
    multiplyRY(factor, scaledErrorPtr, workPtr, rows, engine);
    // Engine views are copied a row at a time: element access to views of the shared,
    // growable memory is slower in JavaScriptCore than to ordinary arrays.
    const he = new Float64Array(cols);
    const delta = new Float64Array(cols);
    const yRow = new Float32Array(cols);
    const workRow = new Float32Array(cols);
    const y = engine.floats(scaledErrorPtr, rows * cols);
    const work = engine.floats(workPtr, rows * cols);
    for (let r = 0; r < rows; r++) {
      const row = r * cols;
      yRow.set(y.subarray(row, row + cols));
      workRow.set(work.subarray(row, row + cols));
      let err = 0;
      for (let p = 0; p < cols; p++) {
        he[order[p]] = workRow[p];
        err += yRow[p] * yRow[p];
      }
      before[r] = err;
      solveRow(r, he, input, hb, scales, zeros);
      rowChange(r, input, scales, zeros, delta);
      for (let p = 0; p < cols; p++) workRow[p] = -delta[order[p]];
      work.set(workRow, row);
    }
    errorsAfter(factor, scaledErrorPtr, workPtr, rows, engine, after);
  } finally {
    engine.release(mark);
  }
  const kept = guard(input, scales, zeros, before, after);
  return { scales, zeros, kept, errors: after };
}

/** out (rows, cols) = Y·Rᵀ, i.e. R·y per row: block row J of R against Y[:, start_J:]. */
function multiplyRY(factor: GptqFactor, yPtr: number, outPtr: number, rows: number, engine: DenseEngine): void {
  const { n, blocks } = factor;
  const scratch = new Float32Array(blocks.reduce((m, b) => Math.max(m, b.size), 0) * n);
  for (const { start, size } of blocks) {
    const width = n - start;
    const mark = engine.mark();
    try {
      const rPtr = engine.alloc(size * width); // (size, width): rows start.. of R from column start on
      engine.floats(rPtr, size * width).set(rowsOfR(factor, start, size, scratch));
      const product = { w: rPtr, x: yPtr + 4 * start, xStride: n, m: rows, rows: size, cols: width, out: outPtr + 4 * start, outStride: n };
      engine.gemm(tiledGemmCalls(product, BAND_ROWS, SUB_COLS));
    } finally {
      engine.release(mark);
    }
  }
}

/** (size, n − start) R[start + a, start + c] (zero below the diagonal), float32, at the start of `scratch`. */
function rowsOfR(factor: GptqFactor, start: number, size: number, scratch: Float32Array): Float32Array {
  const width = factor.n - start;
  const out = scratch.subarray(0, size * width);
  out.fill(0);
  for (const block of factor.blocks) {
    if (block.start < start) continue;
    const offset = block.start - start;
    if (block.start === start) {
      for (let c = 0; c < size; c++) for (let a = 0; a <= c; a++) out[a * width + c] = block.diagT[c * size + a];
      continue;
    }
    for (let b = 0; b < block.size; b++) {
      const src = b * block.start + start;
      for (let a = 0; a < size; a++) out[a * width + offset + b] = block.aboveT[src + a];
    }
  }
  return out;
}

/** after[r] = ‖y_r + (Δ·R)_r‖² with Δ at `deltaPtr` holding ŵ − ŵ' (so that e' = e + ŵ − ŵ'). */
function errorsAfter(factor: GptqFactor, yPtr: number, deltaPtr: number, rows: number, engine: DenseEngine, after: Float64Array): void {
  const { n, blocks } = factor;
  const scratch = new Float32Array(blocks.reduce((m, b) => Math.max(m, b.size), 0) * n);
  for (const { start, size, diagT, aboveT } of blocks) {
    const end = start + size;
    const mark = engine.mark();
    try {
      const rPtr = engine.alloc(size * end);
      const outPtr = engine.alloc(rows * size);
      const cols = scratch.subarray(0, size * end); // (size, end): column start + i of R, rows 0..end
      cols.fill(0);
      for (let i = 0; i < size; i++) {
        cols.set(aboveT.subarray(i * start, (i + 1) * start), i * end);
        for (let k = 0; k <= i; k++) cols[i * end + start + k] = diagT[i * size + k];
      }
      engine.floats(rPtr, size * end).set(cols);
      engine.gemm(tiledGemmCalls({ w: rPtr, x: deltaPtr, xStride: n, m: rows, rows: size, cols: end, out: outPtr, outStride: size }, BAND_ROWS, SUB_COLS));
      const out = engine.floats(outPtr, rows * size).slice();
      const y = engine.floats(yPtr, rows * n);
      const yBlock = new Float32Array(size);
      for (let r = 0; r < rows; r++) {
        yBlock.set(y.subarray(r * n + start, r * n + start + size));
        let err = 0;
        for (let i = 0; i < size; i++) {
          const v = yBlock[i] + out[r * size + i];
          err += v * v;
        }
        after[r] += err;
      }
    } finally {
      engine.release(mark);
    }
  }
}
