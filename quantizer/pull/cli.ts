/**
 * `crumb pull <org/repo>[:<quant>] [--include <glob>]... [--revision <rev>] [--cache-dir <dir>]
 * [--quiet]`: downloads a Hugging Face model repository (what crumb needs), one GGUF of a
 * GGUF repository (`:Q4_K_M`, the llama.cpp `-hf` / Ollama `hf.co/...` convention), or the
 * files a glob matches, into crumb's cache. stdout gets the path to run: the model file for a
 * GGUF or llama2.c pull, else the snapshot directory (so `crumb quantize $(crumb pull
 * org/repo) ...` works); progress and notes go to stderr. Environment: HF_ENDPOINT, HF_TOKEN,
 * CRUMB_CACHE, HF_HUB_OFFLINE. Ctrl-C keeps the partial files; running the same command again
 * resumes them. Usage errors exit 2, failed pulls 1, an interrupted one 130.
 */
import process from "node:process";
import { UsageError } from "../../runtime/errors.ts";
import { type CommandSpec, parseCommand } from "../../runtime/cli/command-line.ts";
import { pathValue } from "../../runtime/cli/flag-values.ts";
import { createProgress, silentProgress } from "./progress.ts";
import { pullModel } from "./pull.ts";

export const PULL_COMMAND: CommandSpec = {
  name: "pull",
  summary: "download a model from the Hugging Face hub into crumb's cache; prints its path",
  arguments: [{
    name: "repo",
    description: "org/repo (a Transformers repository), org/repo:Q4_K_M (one GGUF; also hf.co/org/repo:Q4_K_M and https://huggingface.co/org/repo)",
  }],
  flags: [
    { flags: "--include <glob>", description: "exactly the files that match (repeatable; huggingface-cli semantics); a llama2.c .bin brings its tokenizer", multiple: true },
    { flags: "-r, --revision <rev>", description: "branch, tag or commit", defaultLabel: "main" },
    { flags: "--cache-dir <dir>", description: "where models are stored", defaultLabel: "$CRUMB_CACHE, else ~/.cache/crumb/models", parse: pathValue },
    { flags: "-q, --quiet", description: "no progress on stderr" },
  ],
  examples: [
    "crumb pull HuggingFaceTB/SmolLM2-135M-Instruct",
    "crumb pull bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
    "crumb pull karpathy/tinyllamas --include 'stories260K/*'",
  ],
  notes: "Environment: HF_ENDPOINT (mirror), HF_TOKEN (gated or private repositories), CRUMB_CACHE (cache directory), HF_HUB_OFFLINE=1 (cache only).",
};

/** Runs `crumb pull`; resolves with the exit code (130 when Ctrl-C stopped it). */
export async function pullMain(argv: readonly string[]): Promise<number> {
  const { options, args } = parseCommand(PULL_COMMAND, argv);
  if (args.length !== 1) throw new UsageError("argv", `expected one repository, got ${args.length} (see crumb pull --help)`);
  const controller = new AbortController();
  const onInterrupt = () => controller.abort(new Error("interrupted"));
  process.once("SIGINT", onInterrupt);
  try {
    const result = await pullModel(args[0], {
      revision: options.revision as string | undefined,
      include: options.include as string[],
      cacheDir: options.cacheDir as string | undefined,
      progress: options.quiet === true ? silentProgress : createProgress(process.stderr),
      signal: controller.signal,
    });
    process.stdout.write(`${result.primary ?? result.dir}\n`);
    return 0;
  } catch (error) {
    if (controller.signal.aborted) {
      process.stderr.write(`crumb pull: interrupted; run the same command again to resume\n`);
      return 130;
    }
    throw error;
  } finally {
    process.off("SIGINT", onInterrupt);
  }
}

// Run directly, it is `crumb pull` (not awaited: the dispatcher imports this module back).
if (import.meta.main) void import("../../runtime/cli/main.ts").then(({ runCliMain }) => runCliMain(["pull", ...process.argv.slice(2)]));
