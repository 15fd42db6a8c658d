/**
 * Typed wrappers over the row kernels of the run state (kernels-wasm/src/rows.rs): a bias added
 * to every row of a matmul output, and one row of a q8 matrix to f32 (embedding lookups).
 * `*CallArgs` validates and returns the export's argument list, so a call plan can check once
 * and run many times (runtime/ops/wasm-ops.ts); the plain wrappers check and call. Twins:
 * ./reference/rows.ts.
 */
import { ShapeError } from "../errors.ts";
import { call, checkCount, checkOverlap, checkRegion, f32Region } from "./regions.ts";
import type { KernelInstance } from "./wasm.ts";

export interface AddRowsArgs {
  x: number; // (rows, n) f32
  bias: number; // (n) f32
  out: number; // (rows, n) f32, may be x
  rows: number;
  n: number;
}

/** Validates add_rows_f32's arguments and returns its argument list. */
export function addRowsCallArgs(kern: KernelInstance, a: AddRowsArgs): number[] {
  const op = "add_rows_f32";
  checkCount(op, "rows", a.rows);
  checkCount(op, "n", a.n);
  const x = f32Region(kern, op, "x", a.x, a.rows * a.n);
  const bias = f32Region(kern, op, "bias", a.bias, a.n);
  const out = f32Region(kern, op, "out", a.out, a.rows * a.n);
  checkOverlap(op, [out], [x, bias], true);
  return [a.x, a.bias, a.out, a.rows, a.n];
}

/** out = x + bias on every row (a linear layer's bias). */
export function addRowsF32(kern: KernelInstance, a: AddRowsArgs): void {
  call(kern, "add_rows_f32", addRowsCallArgs(kern, a));
}

export interface Q8RowArgs {
  codes: number; // (n) int8
  scales: number; // (ceil(n/group)) f16
  group: number;
  n: number;
  out: number; // (n) f32
}

/** Validates q8_row_f32's arguments and returns its argument list. */
export function q8RowCallArgs(kern: KernelInstance, a: Q8RowArgs): number[] {
  const op = "q8_row_f32";
  checkCount(op, "n", a.n);
  checkCount(op, "group", a.group);
  if (a.group > 65536) throw new ShapeError(op, "group ≤ 65536", String(a.group));
  const codes = checkRegion(kern, op, { name: "codes", ptr: a.codes, bytes: a.n }, 1);
  const scales = checkRegion(kern, op, { name: "scales", ptr: a.scales, bytes: 2 * Math.ceil(a.n / a.group) }, 2);
  const out = f32Region(kern, op, "out", a.out, a.n);
  checkOverlap(op, [out], [codes, scales], false);
  return [a.codes, a.scales, a.group, a.n, a.out];
}

/** out = one q8 row (int8 codes times their group's f16 scale) as f32. */
export function q8RowF32(kern: KernelInstance, a: Q8RowArgs): void {
  call(kern, "q8_row_f32", q8RowCallArgs(kern, a));
}
