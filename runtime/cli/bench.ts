/**
 * `crumb bench [flags]`: runs the benchmark (bench/run.ts, which keeps its own flags: see
 * `crumb bench --help`) in a Bun process. Its llama.cpp rows need node-llama-cpp, which the
 * default install leaves out: on first use it is installed into a cache (bench/setup-llamacpp.ts),
 * unless --no-llamacpp is given.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { CrumbError } from "../errors.ts";
import { HelpRequested } from "./command-line.ts";
import type { CliIo } from "./io.ts";
import { CRUMB_VERSION } from "./version.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const RUN = join(ROOT, "bench", "run.ts");

export const BENCH_SUMMARY = "crumb against llama.cpp on random models of real shapes (tokens/s, memory); flags: crumb bench --help";

/** The Bun that runs the benchmark: this process when it is Bun, else the one npm installed. */
function bunPath(): string {
  if ("Bun" in globalThis) return process.execPath;
  return join(ROOT, "node_modules", ".bin", "bun");
}

export async function runBench(argv: readonly string[], io: CliIo): Promise<number> {
  if (argv.includes("--version")) throw new HelpRequested(`crumb ${CRUMB_VERSION}`);
  if (!existsSync(RUN)) throw new CrumbError("bench_missing", `the benchmark (${RUN}) is not in this installation; run crumb bench from a checkout of the repository`);
  if (argv.includes("--help") || argv.includes("-h")) {
    const help = spawnSync(bunPath(), [RUN, "--help"], { encoding: "utf8" });
    throw new HelpRequested(`crumb bench: ${BENCH_SUMMARY.split(";")[0]}\n\n${(help.stderr + help.stdout).trim().replace(/^usage: bun bench\/run\.ts/, "Usage: crumb bench")}`);
  }
  if (!argv.includes("--no-llamacpp") && !argv.includes("--prepare")) {
    const setup = await import("../../bench/setup-llamacpp.ts");
    if (!setup.llamaCppInstalled()) {
      io.stderr(`crumb bench: the llama.cpp rows need node-llama-cpp@${setup.NODE_LLAMA_CPP_VERSION} (CPU build, about 85 MB), installed once; --no-llamacpp skips them\n`);
      try {
        setup.installLlamaCpp((line) => io.stderr(`crumb bench: ${line}\n`));
      } catch (cause) {
        throw new CrumbError("setup_failed", `${(cause as Error).message}; install it with ${setup.SETUP_COMMAND}, or run crumb bench --no-llamacpp`, { cause });
      }
    }
  }
  const child = spawn(bunPath(), [RUN, ...argv], { stdio: "inherit" });
  // Ctrl-C reaches the benchmark through the terminal; this process only waits for it.
  const ignore = () => {};
  process.on("SIGINT", ignore);
  try {
    return await new Promise<number>((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal === "SIGINT" ? 130 : 1))));
  } finally {
    process.off("SIGINT", ignore);
  }
}
