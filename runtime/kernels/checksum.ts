/**
 * XXH32 in the kernels (kernels-wasm/src/checksum.rs) over bytes that are already in kernel
 * memory: `xxh32` hashes a view in one call, `xxh32StreamAt` hashes data that arrives in
 * pieces (the loader feeds each tensor chunk by chunk as its reads complete). Twins: `xxhash32`
 * and `XxHash32` in runtime/format/checksum.ts, which the results equal exactly.
 */
import { KernelError } from "../errors.ts";
import type { KernelInstance } from "./wasm.ts";

/** A hash fed in pieces; `XxHash32` (runtime/format/checksum.ts) has the same shape. */
export interface Xxh32Stream {
  update(bytes: Uint8Array): Xxh32Stream;
  digest(): number;
}

function checkSeed(op: string, seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
    throw new KernelError(`${op}: seed ${seed} is not a u32`);
  }
}

/** Checks that `bytes` is a view of the kernel memory as it is now (after its last growth). */
function checkView(kern: KernelInstance, op: string, bytes: Uint8Array): void {
  if (bytes.buffer !== kern.memory.buffer) {
    throw new KernelError(
      `${op}: the ${bytes.length} bytes are not a view of the kernel memory's current buffer ` +
        `(a view made before memory.grow, or another array); copy them into an arena region or hash them with xxhash32 from runtime/format/checksum.ts`,
    );
  }
}

/** XXH32 of `bytes` (a view of the kernel memory) with `seed`, as an unsigned 32-bit integer. */
export function xxh32(kern: KernelInstance, bytes: Uint8Array, seed = 0): number {
  checkSeed("xxh32", seed);
  checkView(kern, "xxh32", bytes);
  return kern.exports.xxh32(bytes.byteOffset, bytes.length, seed) >>> 0;
}

/** Bytes of the state a stream keeps in kernel memory (allocate them 4-byte aligned). */
export function xxh32StateBytes(kern: KernelInstance): number {
  return kern.exports.xxh32_state_bytes();
}

/**
 * Starts a stream whose state lives at `state` (xxh32StateBytes bytes, 4-byte aligned, in the
 * kernel memory). Starting another stream at the same address ends this one: callers that
 * reuse a state region hash one input at a time.
 */
export function xxh32StreamAt(kern: KernelInstance, state: number, seed = 0): Xxh32Stream {
  const op = "xxh32_init";
  checkSeed(op, seed);
  const bytes = xxh32StateBytes(kern);
  if (!Number.isInteger(state) || state <= 0 || state % 4 !== 0 || state + bytes > kern.memory.buffer.byteLength) {
    throw new KernelError(
      `${op}: state pointer ${state} is not a 4-byte aligned region of ${bytes} bytes inside the kernel memory; allocate it with the kernel arena`,
    );
  }
  kern.exports.xxh32_init(state, seed);
  const stream: Xxh32Stream = {
    update(data) {
      checkView(kern, "xxh32_update", data);
      const end = data.byteOffset + data.length;
      if (data.length > 0 && state < end && data.byteOffset < state + bytes) {
        throw new KernelError(
          `xxh32_update: the data (${data.byteOffset}..${end}) overlaps the hash state at ${state}; use separate regions`,
        );
      }
      kern.exports.xxh32_update(state, data.byteOffset, data.length);
      return stream;
    },
    digest: () => kern.exports.xxh32_digest(state) >>> 0,
  };
  return stream;
}
