/**
 * Typed wrappers over the compressed-cache dequantisers (kernels-wasm/src/kv_dequant.rs): rows
 * of b-bit codes (b ∈ {2, 3, 4, 8}, packed least significant bits first) with f16 (min, step)
 * pairs per group of a row ("token") or per channel of a block ("channel") to f32. Twins: the
 * dequantisers of runtime/engine/kv-cache/kv-quant.ts, which the outputs equal bit for bit.
 */
import { ShapeError } from "../errors.ts";
import { call, checkCount, checkOverlap, checkRegion, f32Region } from "./regions.ts";
import type { KernelInstance } from "./wasm.ts";

const BITS = [2, 3, 4, 8];

interface DequantArgs {
  codes: number; // (rows, ceil(width·bits/8)) u8
  params: number; // f16 pairs (min, step): see below
  out: number; // (rows, width) f32
  rows: number;
  width: number;
  bits: number;
}

function checkArgs(kern: KernelInstance, op: string, a: DequantArgs, paramPairs: number) {
  checkCount(op, "rows", a.rows);
  checkCount(op, "width", a.width);
  if (!BITS.includes(a.bits)) throw new ShapeError(op, `bits one of ${BITS.join(", ")}`, String(a.bits));
  const codes = checkRegion(kern, op, { name: "codes", ptr: a.codes, bytes: a.rows * Math.ceil((a.width * a.bits) / 8) }, 1);
  const params = checkRegion(kern, op, { name: "params", ptr: a.params, bytes: paramPairs * 4 }, 2);
  const out = f32Region(kern, op, "out", a.out, a.rows * a.width);
  checkOverlap(op, [out], [codes, params], false);
}

/** Validates a per-token call and returns kv_dequant_token's arguments (for a worker pool task). */
export function kvDequantTokenCallArgs(kern: KernelInstance, a: DequantArgs & { group: number }): number[] {
  const op = "kv_dequant_token";
  checkCount(op, "group", a.group);
  checkArgs(kern, op, a, a.rows * Math.ceil(a.width / a.group));
  return [a.codes, a.params, a.out, a.rows, a.width, a.group, a.bits];
}

/** Per token: params (rows, ceil(width/group), 2) f16. */
export function kvDequantToken(kern: KernelInstance, a: DequantArgs & { group: number }): void {
  call(kern, "kv_dequant_token", kvDequantTokenCallArgs(kern, a));
}

/** Validates a per-channel call and returns kv_dequant_channel's arguments (for a worker pool task). */
export function kvDequantChannelCallArgs(kern: KernelInstance, a: DequantArgs & { block: number }): number[] {
  const op = "kv_dequant_channel";
  checkCount(op, "block", a.block);
  checkArgs(kern, op, a, Math.ceil(a.rows / a.block) * a.width);
  return [a.codes, a.params, a.out, a.rows, a.width, a.bits, a.block];
}

/** Per channel: params (ceil(rows/block), width, 2) f16, one set per block of `block` rows. */
export function kvDequantChannel(kern: KernelInstance, a: DequantArgs & { block: number }): void {
  call(kern, "kv_dequant_channel", kvDequantChannelCallArgs(kern, a));
}
