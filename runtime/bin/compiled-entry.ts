/**
 * Entry point of the single-file executable (`npm run build:binary`): embeds the kernel
 * binary as a Bun file asset, hands it to the loader, then runs the ordinary CLI.
 * Bun only (import attributes of type "file" are a Bun bundler feature).
 */
import wasmPath from "../../kernels-wasm/pkg/crumb_kernels.wasm" with { type: "file" };
import { readFileSync } from "node:fs";
import { useEmbeddedKernelBinary } from "../kernels/wasm.ts";
import { usePoolWorkerUrl } from "../kernels/pool.ts";

useEmbeddedKernelBinary(new Uint8Array(readFileSync(wasmPath)));
// build.ts bundles pool-worker.ts as a second entry point; inside the executable it sits
// next to this entry under the bundle root (runtime/).
usePoolWorkerUrl(new URL("./kernels/pool-worker.ts", import.meta.url));
await import("../cli.ts");
