/**
 * The kernel binary is linked against an imported *shared* memory (one copy of the weights
 * for every pool worker). A runtime without shared WebAssembly memory cannot instantiate it
 * as is, so this rewrites the one limits byte of the `env.memory` import from "shared, with
 * maximum" (0x03) to "with maximum" (0x01). Nothing else changes: the threads proposal lets
 * atomic instructions run on an unshared memory, and the kernels never wait on one.
 * Binary format: WebAssembly core spec §5.5.5 (import section), §5.3.7 (limits).
 */
import { KernelError } from "../errors.ts";

const IMPORT_SECTION = 2;
const MEMORY_IMPORT = 2;
const SHARED_WITH_MAX = 0x03;
const WITH_MAX = 0x01;

/** A copy of `binary` whose memory import is unshared. Throws KernelError when there is none. */
export function unsharedMemoryBinary(binary: Uint8Array): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(binary);
  const at = memoryLimitsOffset(bytes);
  if (at === undefined) throw new KernelError("kernel binary has no shared env.memory import; rebuild it with 'npm run build:kernels'");
  bytes[at] = WITH_MAX;
  return bytes;
}

/** Byte offset of the limits flag of the first shared memory import, if any. */
function memoryLimitsOffset(bytes: Uint8Array): number | undefined {
  let p = 8; // magic + version
  const u32 = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (p >= bytes.length) throw new KernelError("kernel binary is truncated; rebuild it with 'npm run build:kernels'");
      const b = bytes[p++];
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
    }
  };
  const skipName = () => {
    const length = u32();
    p += length;
  };
  while (p < bytes.length) {
    const id = bytes[p++];
    const size = u32();
    const end = p + size;
    if (id === IMPORT_SECTION) {
      const count = u32();
      for (let i = 0; i < count; i++) {
        skipName();
        skipName();
        const kind = bytes[p++];
        if (kind === MEMORY_IMPORT) {
          if (bytes[p] === SHARED_WITH_MAX) return p;
          const flags = bytes[p++];
          u32();
          if (flags & 1) u32();
        } else if (kind === 0) u32(); // function: type index
        else if (kind === 1) { // table: reftype + limits
          p++;
          const flags = bytes[p++];
          u32();
          if (flags & 1) u32();
        } else if (kind === 3) p += 2; // global: valtype + mutability
        else return undefined;
      }
      return undefined;
    }
    p = end;
  }
  return undefined;
}
