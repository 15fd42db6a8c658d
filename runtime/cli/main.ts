/**
 * `crumb <command>`: the one entry point (package.json `bin`, `bun run <script>`, `deno task
 * <script>`, the single-file executable). Dispatches to the commands and turns every expected
 * failure into one line on stderr: exit 2 for usage errors (a bad flag or value), 1 for the
 * rest (a missing file, a port in use, a model that does not load). No stack traces unless
 * CRUMB_DEBUG=1; nothing printed ever holds the API key.
 */
import process from "node:process";
import { CrumbError, InvalidArgumentError, UsageError } from "../errors.ts";
import { closest, HelpRequested } from "./command-line.ts";
import { type CliIo, processIo } from "./io.ts";
import { CRUMB_VERSION } from "./version.ts";

interface Command {
  readonly name: string;
  readonly alias?: string;
  readonly summary: string;
  run(argv: readonly string[], io: CliIo): Promise<number>;
}

/** Commands load their modules when run, so `crumb --help` and `crumb info` start quickly. */
const COMMANDS: readonly Command[] = [
  {
    name: "chat",
    alias: "run",
    summary: "chat with a model in the terminal (history kept; /bye to leave)",
    run: async (argv, io) => (await import("./chat.ts")).runChat(argv, io),
  },
  {
    name: "generate",
    summary: "continue a raw prompt: text on stdout, statistics on stderr",
    run: async (argv, io) => (await import("./generate.ts")).runGenerate(argv, io),
  },
  {
    name: "serve",
    summary: "serve the OpenAI-compatible API",
    run: async (argv, io) => (await import("./serve.ts")).runServe(argv, io),
  },
  {
    name: "pull",
    summary: "download a model from the Hugging Face hub (org/repo, org/repo:Q4_K_M)",
    run: async (argv) => (await import("../../quantizer/pull/cli.ts")).pullMain(argv),
  },
  {
    name: "quantize",
    summary: "quantise a checkpoint into one packed file with a quality report",
    run: async (argv) => (await import("../../quantizer/cli.ts")).quantizeMain(argv),
  },
  {
    name: "export",
    summary: "write a GGUF for llama.cpp",
    run: async (argv) => (await import("../../quantizer/export/cli.ts")).exportMain(argv),
  },
  {
    name: "info",
    summary: "show a model file: architecture, encodings, recipe, stored quality report",
    run: async (argv, io) => (await import("./info.ts")).runInfo(argv, io),
  },
  {
    name: "bench",
    summary: "crumb against llama.cpp, tokens/s and memory",
    run: async (argv, io) => (await import("./bench.ts")).runBench(argv, io),
  },
];

export function topLevelHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length + (c.alias === undefined ? 0 : c.alias.length + 1)));
  const lines = COMMANDS.map((c) => `  ${(c.alias === undefined ? c.name : `${c.name}|${c.alias}`).padEnd(width)}  ${c.summary}`);
  return [
    `crumb ${CRUMB_VERSION}: low-bit language models on CPU edge devices, from Bun and Deno`,
    "",
    "Usage: crumb <command> [options]     crumb <command> --help for its options",
    "",
    "Commands:",
    ...lines,
    "",
    "Options:",
    "  --version  print crumb's version",
    "  -h, --help show this help",
    "",
    "Start:",
    "  crumb pull HuggingFaceTB/SmolLM2-135M-Instruct            # prints the directory it downloaded",
    "  crumb quantize <that directory> --bits 4 -o smol.q4",
    "  crumb chat smol.q4",
  ].join("\n");
}

/** Usage errors exit 2: unknown or malformed flags and values, whatever module raised them. */
function isUsageError(error: unknown): boolean {
  if (error instanceof UsageError) return true;
  if (!(error instanceof InvalidArgumentError)) return false;
  const argument = error.argument;
  return argument === "argv" || argument === "repo" || argument === "revision" || argument.startsWith("-");
}

/** Runs one command line; resolves with the exit code. Never throws. */
export async function runCli(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    io.stderr(`${topLevelHelp()}\n`);
    return 2;
  }
  if (first === "--help" || first === "-h" || (first === "help" && rest.length === 0)) {
    io.stdout(`${topLevelHelp()}\n`);
    return 0;
  }
  if (first === "--version" || first === "-v") {
    io.stdout(`crumb ${CRUMB_VERSION}\n`);
    return 0;
  }
  const wanted = first === "help" ? rest[0] : first;
  const command = COMMANDS.find((c) => c.name === wanted || c.alias === wanted);
  if (command === undefined) {
    const names = COMMANDS.flatMap((c) => (c.alias === undefined ? [c.name] : [c.name, c.alias]));
    const suggestion = closest(wanted, names);
    const hint = suggestion === undefined ? `commands: ${names.join(", ")}` : `did you mean ${suggestion}?`;
    io.stderr(`crumb: unknown command ${JSON.stringify(wanted)} (${hint})\n`);
    return 2;
  }
  const commandArgv = first === "help" ? ["--help"] : rest;
  try {
    return await command.run(commandArgv, io);
  } catch (error) {
    if (error instanceof HelpRequested) {
      io.stdout(`${error.text}\n`);
      return 0;
    }
    const debug = process.env.CRUMB_DEBUG === "1";
    if (debug && error instanceof Error) io.stderr(`${error.stack}\n`);
    const message = error instanceof Error ? error.message.trim() : String(error);
    if (isUsageError(error)) {
      io.stderr(`crumb ${command.name}: ${message}\n`);
      return 2;
    }
    if (error instanceof CrumbError || typeof (error as { code?: unknown }).code === "string") {
      // CrumbErrors, and the runtime's system errors (ENOENT, EACCES, ENOSPC) as one line.
      io.stderr(`crumb ${command.name}: ${message}\n`);
      return 1;
    }
    io.stderr(`crumb ${command.name}: unexpected error: ${message}${debug ? "" : " (CRUMB_DEBUG=1 shows where)"}\n`);
    return 1;
  }
}

/** For entry files: runs the command line and ends the process with its exit code. */
export async function runCliMain(argv: readonly string[]): Promise<void> {
  const code = await runCli(argv);
  // serve keeps listeners and timers until it exits; other commands end on their own, and
  // waiting for that lets piped stdout drain before the process goes.
  if (argv[0] === "serve") process.exit(code);
  process.exitCode = code;
}
