/**
 * The kernel binary is linked against an imported *shared* memory (one copy of the weights
 * for every pool worker). A runtime without shared WebAssembly memory cannot instantiate it
 * as is, so this rewrites the one limits byte of the `env.memory` import from "shared, with
 * maximum" (0x03) to "with maximum" (0x01). Nothing else changes: the threads proposal lets
 * atomic instructions run on an unshared memory, and the kernels never wait on one.
 * Binary format: WebAssembly core spec §5.5.5 (import section), §5.3.7 (limits).
 */
import { KernelError } from "../errors.ts";
import { Reader } from "./wasm-binary.ts";

const IMPORT_SECTION = 2;
const FUNCTION_IMPORT = 0;
const TABLE_IMPORT = 1;
const MEMORY_IMPORT = 2;
const GLOBAL_IMPORT = 3;
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
  const r = new Reader(bytes);
  r.skip(8); // magic + version
  while (r.p < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    const end = r.p + size;
    if (id === IMPORT_SECTION) {
      const count = r.u32();
      for (let i = 0; i < count; i++) {
        r.name(); // module
        r.name(); // field
        const kind = r.byte();
        if (kind === MEMORY_IMPORT || kind === TABLE_IMPORT) {
          if (kind === TABLE_IMPORT) r.byte(); // reference type
          else if (bytes[r.p] === SHARED_WITH_MAX) return r.p;
          const flags = r.byte();
          r.u32();
          if (flags & 1) r.u32();
        } else if (kind === FUNCTION_IMPORT) r.u32(); // type index
        else if (kind === GLOBAL_IMPORT) r.skip(2); // value type + mutability
        else return undefined;
      }
      return undefined;
    }
    r.p = end;
  }
  return undefined;
}
