/**
 * Reading and writing the LEB128 integers of the WebAssembly binary format (core spec §5.2.2),
 * for the loader's rewrite of the kernel binary (./unshared-binary.ts) and bench/relaxed-rewrite.ts.
 */
import { KernelError } from "../errors.ts";

/** A cursor over a module's bytes. */
export class Reader {
  p = 0;
  constructor(readonly bytes: Uint8Array) {}
  byte(): number {
    if (this.p >= this.bytes.length) throw new KernelError("kernel binary is truncated; rebuild it with 'npm run build:kernels'");
    return this.bytes[this.p++];
  }
  /** An unsigned LEB128. */
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
    }
  }
  /** Skips a signed LEB128 (i32/i64 constants, block types). */
  sleb(): void {
    while (this.byte() & 0x80);
  }
  /** Skips a name (length-prefixed bytes). */
  name(): void {
    this.skip(this.u32());
  }
  skip(n: number): void {
    this.p += n;
  }
}

/** The unsigned LEB128 encoding of n. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}
