/**
 * Argument checks shared by the kernel wrappers: the kernels trust their arguments, so every
 * wrapper checks counts (ShapeError) and that each region is aligned, inside the memory and
 * not partly overlapping another (KernelError) before calling the export.
 */
import { KernelError, ShapeError } from "../errors.ts";
import type { KernelInstance } from "./wasm.ts";

/** A region of the shared memory a kernel reads or writes. */
export interface Region {
  name: string;
  ptr: number;
  bytes: number;
}

export function checkCount(op: string, name: string, value: number, min = 1): void {
  if (!Number.isInteger(value) || value < min || value > 0xffff_ffff) {
    throw new ShapeError(op, `${name} an integer ≥ ${min}`, String(value));
  }
}

/** Checks that [ptr, ptr+bytes) lies in the memory, is `align`-aligned and not null. */
export function checkRegion(kern: KernelInstance, op: string, region: Region, align: number): Region {
  const { name, ptr, bytes } = region;
  const size = kern.memory.buffer.byteLength;
  if (!Number.isInteger(ptr) || ptr <= 0) {
    throw new KernelError(`${op}: ${name} pointer ${ptr} is not a positive byte offset; allocate it with the kernel arena`);
  }
  if (ptr % align !== 0) {
    throw new KernelError(`${op}: ${name} pointer ${ptr} is not ${align}-byte aligned; allocate it with the kernel arena`);
  }
  if (ptr + bytes > size) {
    throw new KernelError(
      `${op}: ${name} spans bytes ${ptr}..${ptr + bytes}, beyond the ${size}-byte kernel memory; allocate ${bytes} bytes from the arena`,
    );
  }
  return region;
}

/** Outputs may equal an input exactly (in-place) but must not partly overlap any other region. */
export function checkOverlap(op: string, outputs: Region[], inputs: Region[], allowInPlace: boolean): void {
  for (const out of outputs) {
    for (const other of [...inputs, ...outputs]) {
      if (other === out || other.bytes === 0 || out.bytes === 0) continue;
      const disjoint = out.ptr + out.bytes <= other.ptr || other.ptr + other.bytes <= out.ptr;
      const same = out.ptr === other.ptr && out.bytes === other.bytes && inputs.includes(other);
      if (!disjoint && !(same && allowInPlace)) {
        throw new KernelError(
          `${op}: ${out.name} (${out.ptr}..${out.ptr + out.bytes}) overlaps ${other.name} (${other.ptr}..${other.ptr + other.bytes}); use separate buffers${allowInPlace ? " or exactly the same one" : ""}`,
        );
      }
    }
  }
}

export function f32Region(kern: KernelInstance, op: string, name: string, ptr: number, floats: number): Region {
  return checkRegion(kern, op, { name, ptr, bytes: floats * 4 }, 4);
}

/** Calls an export, turning a WASM trap into a KernelError. */
export function call(kern: KernelInstance, name: string, args: number[]): void {
  try {
    kern.exports[name](...args);
  } catch (cause) {
    throw new KernelError(`kernel ${name} trapped (${String(cause)}); its arguments passed validation, so this is a crumb bug`, {
      cause,
    });
  }
}
