/**
 * Loads crumb's WASM kernels (kernels-wasm/pkg/crumb_kernels{_relaxed,}.wasm) into a shared
 * WebAssembly.Memory and hands out 64-byte aligned regions of it with a bump arena.
 * One module instance per thread: the main thread uses the instance made here; pool
 * workers instantiate the same module over the same memory, each with its own stack.
 * Runtimes without shared WebAssembly memory get the same binary over a private memory
 * (./unshared-binary.ts); the row-shard pool (./shard-pool.ts) then gives each worker its own.
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { KernelError } from "../errors.ts";
import { unsharedMemoryBinary } from "./unshared-binary.ts";

export const KERNELS_ABI_VERSION = 5;
/** wasm32 addresses 4 GiB at most; the binary is linked with this maximum. */
export const WASM_MAX_BYTES = 4 * 1024 * 1024 * 1024;
const PAGE_BYTES = 65536;
/** Stack given to each instance (main thread and every worker). */
export const STACK_BYTES = 1024 * 1024;

/** The two builds of kernels-wasm (build.sh): relaxed SIMD where the engine validates it, else SIMD128. */
export type KernelVariant = "relaxed-simd" | "simd128";
export interface KernelBinaries {
  readonly relaxed: Uint8Array;
  readonly baseline: Uint8Array;
}

const WASM_URLS: Record<KernelVariant, URL> = {
  "relaxed-simd": new URL("../../kernels-wasm/pkg/crumb_kernels_relaxed.wasm", import.meta.url),
  simd128: new URL("../../kernels-wasm/pkg/crumb_kernels.wasm", import.meta.url),
};

let cachedModule: WebAssembly.Module | undefined;
let cachedUnsharedModule: WebAssembly.Module | undefined;
let embeddedBinaries: KernelBinaries | undefined;
let chosenVariant: KernelVariant | undefined;

/**
 * For single-file executables (`bun build --compile`), where the .wasm files are embedded
 * assets rather than files next to this module: hand their bytes over before the first kernel call.
 */
export function useEmbeddedKernelBinaries(binaries: KernelBinaries): void {
  embeddedBinaries = binaries;
  cachedModule = undefined;
  cachedUnsharedModule = undefined;
  chosenVariant = undefined;
}

function readBinary(variant: KernelVariant): Uint8Array<ArrayBuffer> {
  if (embeddedBinaries !== undefined) {
    return new Uint8Array(variant === "relaxed-simd" ? embeddedBinaries.relaxed : embeddedBinaries.baseline);
  }
  try {
    return new Uint8Array(readFileSync(WASM_URLS[variant])); // a plain ArrayBuffer copy: the typings refuse Buffer's ArrayBufferLike
  } catch (cause) {
    throw new KernelError(
      `cannot read the kernel binary at ${WASM_URLS[variant].pathname}; run 'npm run build:kernels' or reinstall crumb`,
      { cause },
    );
  }
}

/**
 * The variant this process runs: relaxed SIMD when the engine validates that binary, else
 * baseline SIMD128. CRUMB_KERNELS=simd128 forces the baseline (tests run both).
 */
function kernelBinary(): Uint8Array<ArrayBuffer> {
  const forced = environmentVariable("CRUMB_KERNELS");
  if (forced !== undefined && forced !== "" && forced !== "relaxed-simd" && forced !== "simd128") {
    throw new KernelError(`CRUMB_KERNELS=${forced} is not a kernel variant; use relaxed-simd or simd128`);
  }
  if (forced !== "simd128") {
    const relaxed = readBinary("relaxed-simd");
    if (WebAssembly.validate(relaxed)) {
      chosenVariant = "relaxed-simd";
      return relaxed;
    }
    if (forced === "relaxed-simd") throw new KernelError("CRUMB_KERNELS=relaxed-simd, but this engine does not validate relaxed SIMD");
  }
  chosenVariant = "simd128";
  return readBinary("simd128");
}

/** An environment variable, or undefined where reading it is not permitted (Deno without --allow-env). */
function environmentVariable(name: string): string | undefined {
  try {
    return process.env[name];
  } catch {
    return undefined;
  }
}

/**
 * Compiles the kernel binary once per process (workers receive the compiled module).
 * `shared: false` gives the variant that imports a private, unshared memory.
 */
export function kernelModule(options: { shared?: boolean } = {}): WebAssembly.Module {
  if (options.shared === false) {
    cachedUnsharedModule ??= new WebAssembly.Module(unsharedMemoryBinary(kernelBinary()));
    return cachedUnsharedModule;
  }
  cachedModule ??= new WebAssembly.Module(kernelBinary());
  return cachedModule;
}

/** Which instruction set the loaded kernels use (benchmarks print it). */
export function kernelVariant(): KernelVariant {
  if (chosenVariant === undefined) kernelModule();
  return chosenVariant!;
}

/** True when this runtime can create a shared WebAssembly.Memory (the worker pool needs one). */
export function sharedMemorySupported(): boolean {
  try {
    return new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch {
    return false;
  }
}

/** Raw exports: every kernel takes byte offsets into the shared memory and plain numbers. */
// deno-lint-ignore no-explicit-any
export type KernelExports = Record<string, any> & {
  __stack_pointer: WebAssembly.Global;
  __heap_base: WebAssembly.Global;
  kernels_abi_version(): number;
};

export interface KernelInstance {
  readonly exports: KernelExports;
  readonly memory: WebAssembly.Memory;
  /** The compiled module (pool workers instantiate it again over the same memory). */
  readonly module: WebAssembly.Module;
}

/**
 * Instantiates the module over `memory` and points its stack at [stackBase, stackBase+STACK_BYTES).
 * The caller owns the stack region (allocated from the arena).
 */
export function instantiateKernels(
  memory: WebAssembly.Memory,
  stackTop: number | undefined,
  module: WebAssembly.Module = kernelModule(),
): KernelInstance {
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const exports = instance.exports as unknown as KernelExports;
  const version = exports.kernels_abi_version();
  if (version !== KERNELS_ABI_VERSION) {
    throw new KernelError(
      `kernel binary ABI version ${version} does not match the runtime's ${KERNELS_ABI_VERSION}; rebuild with 'npm run build:kernels'`,
    );
  }
  if (stackTop !== undefined) exports.__stack_pointer.value = stackTop;
  exports.set_lut_flavor(lutFlavor(exports));
  return { exports, memory, module };
}

/**
 * The LUT kernels' widening instruction (identical results either way): the i32 dot-add
 * (SDOT) on ARM64, the i16 dot (PMADDUBSW) elsewhere; CRUMB_LUT_FLAVOR=madd|dot overrides
 * (tests run both). The baseline binary only has the first.
 */
function lutFlavor(exports: KernelExports): number {
  const forced = environmentVariable("CRUMB_LUT_FLAVOR");
  if (forced !== undefined && forced !== "" && forced !== "madd" && forced !== "dot") {
    throw new KernelError(`CRUMB_LUT_FLAVOR=${forced} is not a LUT kernel flavour; use madd or dot`);
  }
  const want = forced === "dot" || (forced !== "madd" && process.arch === "arm64") ? 1 : 0;
  return want === 1 && exports.set_lut_flavor(1) !== 0 ? 0 : want;
}

/** Bump allocator over the shared memory; regions are 64-byte aligned and never move. */
export class Arena {
  readonly memory: WebAssembly.Memory;
  private top: number;

  constructor(memory: WebAssembly.Memory, start: number) {
    this.memory = memory;
    this.top = alignUp(start, 64);
  }

  /** Current end of allocated memory; pass to `release` to free everything allocated after. */
  mark(): number {
    return this.top;
  }

  release(mark: number): void {
    if (mark > this.top) throw new KernelError(`arena release to ${mark} beyond its top ${this.top}`);
    this.top = mark;
  }

  /** Allocates `bytes` (aligned to `align`), growing the memory when needed. */
  alloc(bytes: number, align = 64): number {
    if (!Number.isInteger(bytes) || bytes < 0) throw new KernelError(`arena alloc of ${bytes} bytes: not a byte count`);
    const offset = alignUp(this.top, align);
    this.ensure(offset + bytes);
    this.top = offset + bytes;
    return offset;
  }

  /**
   * Grows the memory once so that the next `bytes` bytes of allocations need no further growth.
   * Growing only maps address space (pages are committed when first written), and it is done
   * in one step so that views made afterwards stay valid: growing a private memory detaches
   * every view of its old buffer.
   */
  reserve(bytes: number): void {
    if (!Number.isInteger(bytes) || bytes < 0) throw new KernelError(`arena reserve of ${bytes} bytes: not a byte count`);
    this.ensure(alignUp(this.top, 64) + bytes);
  }

  private ensure(end: number): void {
    if (end > WASM_MAX_BYTES) {
      throw new KernelError(
        `WASM heap needs ${formatBytes(end)}, but wasm32 memory is capped at 4 GiB; use fewer bits per weight, a compressed KV cache (--kv q4) or a shorter context`,
      );
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE_BYTES));
  }
}

export interface Kernels extends KernelInstance {
  readonly arena: Arena;
}

let processKernels: Kernels | undefined;

/**
 * The process-wide kernel instance (main thread) with its arena: over a shared memory where
 * the runtime has one, else over a private memory.
 */
export function loadKernels(): Kernels {
  processKernels ??= createKernels({ shared: sharedMemorySupported() });
  return processKernels;
}

/**
 * A new kernel instance over a new memory with its own arena. `shared: false` runs the same
 * kernels over a private memory (what runtimes without shared WebAssembly memory get).
 */
export function createKernels(options: { shared: boolean }): Kernels {
  const module = kernelModule(options);
  const memory = new WebAssembly.Memory({ initial: 32, maximum: WASM_MAX_BYTES / PAGE_BYTES, shared: options.shared });
  // The linker places its own stack and static data below __heap_base; keep that stack.
  const instance = instantiateKernels(memory, undefined, module);
  const arena = new Arena(memory, Number(instance.exports.__heap_base.value));
  return { ...instance, arena };
}

export function alignUp(value: number, align: number): number {
  return Math.ceil(value / align) * align;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${bytes} bytes`;
}
