/**
 * Subprocess entry of the benchmark: runs one measurement (a RunSpec as JSON in argv[2]) in
 * a fresh process, so worker threads, WASM memory and llama.cpp buffers never accumulate
 * across configurations and the peak RSS belongs to that configuration alone. Prints one
 * JSON RunResult line on stdout; errors go to stderr with a non-zero exit code.
 */
import type { RunSpec } from "./config.ts";

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? "") as RunSpec;
  const result = spec.engine === "crumb"
    ? await (await import("./crumb.ts")).measureCrumb(spec)
    : await (await import("./llamacpp.ts")).measureLlamaCpp(spec);
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
    process.exit(1);
  },
);
