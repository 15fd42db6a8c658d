/**
 * The benchmark's kernel binary (kernels-wasm/pkg/crumb_kernels_bench.wasm, `npm run
 * build:kernels`): the relaxed-SIMD build of the runtime's kernels plus the baselines of
 * ./baseline.rs, so one instance runs the real kernels and their measuring sticks on the same
 * packed matrices. Over its own shared memory; a pool created with these kernels runs them too.
 */
import { readFileSync } from "node:fs";
import { KernelError } from "../../runtime/errors.ts";
import { Arena, instantiateKernels, type Kernels, WASM_MAX_BYTES } from "../../runtime/kernels/wasm.ts";

const BINARY = new URL("../../kernels-wasm/pkg/crumb_kernels_bench.wasm", import.meta.url);
let loaded: Kernels | undefined;

/** The process-wide benchmark kernels (the relaxed-SIMD build with the baselines). */
export function loadBenchKernels(): Kernels {
  if (loaded !== undefined) return loaded;
  const binary = new Uint8Array(readFileSync(BINARY));
  if (!WebAssembly.validate(binary)) {
    throw new KernelError(`${BINARY.pathname} does not validate here: the benchmark's baselines need relaxed SIMD`);
  }
  const memory = new WebAssembly.Memory({ initial: 32, maximum: WASM_MAX_BYTES / 65536, shared: true });
  const instance = instantiateKernels(memory, undefined, new WebAssembly.Module(binary));
  loaded = { ...instance, arena: new Arena(memory, Number(instance.exports.__heap_base.value)) };
  return loaded;
}
