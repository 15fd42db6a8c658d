/**
 * `crumb bench [flags]`: checks the flags with the parser every command uses, then runs the
 * benchmark (bench/run.ts, given the same arguments) in a Bun process. Its llama.cpp rows need
 * node-llama-cpp, which the default install leaves out: on first use it is installed into a
 * cache (bench/setup-llamacpp.ts), unless --no-llamacpp is given.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { CrumbError } from "../errors.ts";
import { UsageError } from "../errors.ts";
import { type CommandSpec, parseCommand, type ValueParser } from "./command-line.ts";
import { integerValue, pathValue } from "./flag-values.ts";
import type { CliIo } from "./io.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const RUN = join(ROOT, "bench", "run.ts");

/** The Bun that runs the benchmark: this process when it is Bun, else the one npm installed. */
function bunPath(): string {
  if ("Bun" in globalThis) return process.execPath;
  return join(ROOT, "node_modules", ".bin", "bun");
}

/** A comma-separated list of positive integers (1024 or 1k). */
const integerList: ValueParser = (text, flag) => {
  const items = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const item of items) {
    if (!/^[1-9]\d*k?$/i.test(item)) throw new UsageError(flag, `${flag} takes positive integers separated by commas (1024 or 1k), got "${text}"`);
  }
  if (items.length === 0) throw new UsageError(flag, `${flag} needs at least one value`);
  return text;
};

const listOf = (allowed: readonly string[]): ValueParser => (text, flag) => {
  const bad = text.split(",").map((s) => s.trim()).find((s) => !allowed.includes(s));
  if (bad !== undefined) throw new UsageError(flag, `${flag} takes ${allowed.join(", ")} separated by commas, got "${bad}"`);
  return text;
};

/**
 * bench/run.ts's flags, checked here with the same parser as every command (so a mistake is one
 * line and exit 2, and --help lists them); the arguments then go to bench/run.ts unchanged.
 */
export const BENCH_COMMAND: CommandSpec = {
  name: "bench",
  summary: "crumb against llama.cpp on random models of real shapes: tokens/s, time to first token, memory",
  flags: [
    { flags: "--quick", description: "the sub-minute subset: 134M, q2 and ternary, kv f16, ctx 128, 1 and 2 threads" },
    { flags: "--json", description: "print one {\"rows\": [...]} object on stdout" },
    { flags: "--out <dir>", description: "where bench.json, bench.md and bench.svg go", defaultLabel: "bench/results" },
    { flags: "--shapes <list>", description: "model shapes: 134M, 1.1B", defaultLabel: "134M,1.1B", parse: listOf(["134M", "1.1B"]) },
    { flags: "--encodings <list>", description: "q2, q3, q4, ternary", defaultLabel: "all", parse: listOf(["q2", "q3", "q4", "ternary"]) },
    { flags: "--kv <list>", description: "cache modes", defaultLabel: "f16,q8,q4,xquant", parse: listOf(["f32", "f16", "q8", "q4", "xquant", "xquant-cl", "auto"]) },
    { flags: "--ctx <list>", description: "context lengths", defaultLabel: "128,1024,4096", parse: integerList },
    { flags: "--threads <list>", description: "thread counts", defaultLabel: "1,2", parse: integerList },
    { flags: "--runtime <list>", description: "crumb under bun, deno", defaultLabel: "bun", parse: listOf(["bun", "deno"]) },
    { flags: "--decode <n>", description: "decode steps timed", defaultLabel: "32", parse: integerList },
    { flags: "--seed <n>", description: "weights and prompt seed", defaultLabel: "0", parse: (text, flag) => String(integerValue({ min: 0, max: 2 ** 31 })(text, flag)) },
    { flags: "--repeat <n>", description: "runs per configuration, the best kept", defaultLabel: "1", parse: integerList },
    { flags: "--no-llamacpp", description: "crumb rows only (no node-llama-cpp needed)" },
    { flags: "--vocab <file>", description: "the GGUF vocabulary the llama.cpp models use", parse: pathValue },
    { flags: "--cache <dir>", description: "where generated models are kept", parse: pathValue },
    { flags: "--prepare", description: "only generate (or find) the model files" },
    { flags: "--merge", description: "add the rows to those already in --out" },
  ],
  examples: ["crumb bench --quick", "crumb bench --shapes 1.1B --kv f16 --ctx 128 --runtime bun,deno"],
};

export async function runBench(argv: readonly string[], io: CliIo): Promise<number> {
  parseCommand(BENCH_COMMAND, argv);
  if (!existsSync(RUN)) throw new CrumbError("bench_missing", `the benchmark (${RUN}) is not in this installation; run crumb bench from a checkout of the repository`);
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
