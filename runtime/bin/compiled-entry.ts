/**
 * Entry point of the single-file executable (`npm run build:binary`): embeds the two kernel
 * binaries as Bun file assets, hands them to the loader, then runs the ordinary CLI.
 * Bun only (import attributes of type "file" are a Bun bundler feature).
 */
import baselinePath from "../../kernels-wasm/pkg/crumb_kernels.wasm" with { type: "file" };
import relaxedPath from "../../kernels-wasm/pkg/crumb_kernels_relaxed.wasm" with { type: "file" };
import { readFileSync } from "node:fs";
import { useEmbeddedKernelBinaries } from "../kernels/wasm.ts";
import { usePoolWorkerUrl } from "../threads/pool.ts";

useEmbeddedKernelBinaries({ relaxed: readFileSync(relaxedPath), baseline: readFileSync(baselinePath) });
// build.ts bundles pool-worker.ts as a second entry point; inside the executable it sits
// next to this entry under the bundle root (runtime/).
usePoolWorkerUrl(new URL("./threads/pool-worker.ts", import.meta.url));
await import("../cli.ts");
