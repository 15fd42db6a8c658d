/**
 * Helpers shared by the ggml block writers (ggml/src/ggml-common.h layouts): little-endian
 * f16 fields, f32 rounding as ggml's C code does it, and the length check that refuses a
 * row that does not tile the block.
 */
import { InvalidArgumentError } from "../../../runtime/errors.ts";
import { f16ToF32, f32ToF16 } from "../../../runtime/format/pack-f16.ts";

export const QK_K = 256;

/** Writes `value` as f16 at `at` and returns the value the file now holds. */
export function putF16(out: Uint8Array, at: number, value: number): number {
  const h = f32ToF16(value);
  out[at] = h & 0xff;
  out[at + 1] = h >> 8;
  return f16ToF32(h);
}

export function getF16(bytes: Uint8Array, at: number): number {
  return f16ToF32(bytes[at]! | (bytes[at + 1]! << 8));
}

/** Throws when `n` values do not fill whole blocks of `block`, naming the types that fit. */
export function checkBlocks(n: number, block: number, type: string): void {
  if (n % block !== 0) {
    throw new InvalidArgumentError(
      "type",
      `${type} needs rows of a multiple of ${block} values, got ${n}; use ${block === QK_K ? "Q4_0, Q8_0 or F16" : "F16"} for this tensor`,
    );
  }
}
