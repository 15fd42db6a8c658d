#!/usr/bin/env bun
/**
 * `bun run pull <org/repo>[:<quant>] [--include <glob>]... [--revision <rev>] [--cache-dir <dir>]
 * [--quiet]`: downloads a Hugging Face model repository (what crumb needs), one GGUF of a
 * GGUF repository (`:Q4_K_M`, the llama.cpp `-hf` / Ollama `hf.co/...` convention), or the
 * files a glob matches, into crumb's cache. stdout gets the path to run: the model file for a
 * GGUF or llama2.c pull, else the snapshot directory (so `bun run quantize $(bun run pull
 * org/repo) ...` works); progress and notes go to stderr. Environment: HF_ENDPOINT, HF_TOKEN,
 * CRUMB_CACHE, HF_HUB_OFFLINE. Ctrl-C keeps the partial files; running the same command again
 * resumes them. Usage errors exit 2, failed pulls 1, an interrupted one 130.
 */
import process from "node:process";
import { CrumbError, InvalidArgumentError } from "../../runtime/errors.ts";
import { HelpRequested, parseCommandLine } from "../../runtime/cli/args.ts";
import { createProgress, silentProgress } from "./progress.ts";
import { pullModel } from "./pull.ts";

const USAGE = "usage: bun run pull <org/repo>[:<quant>] [--include <glob>]... [--revision <branch|tag|commit>] [--cache-dir <dir>] [--quiet]\n" +
  "  org/repo              a Transformers repository: config, tokenizer, safetensors\n" +
  "  org/repo:Q4_K_M       one GGUF of a GGUF repository (case-insensitive; split GGUFs are pulled whole);\n" +
  "                        also hf.co/org/repo:Q4_K_M and https://huggingface.co/org/repo\n" +
  "  --include '<glob>'    exactly the files that match (huggingface-cli semantics); a llama2.c .bin brings its tokenizer.bin\n" +
  "environment: HF_ENDPOINT (mirror), HF_TOKEN (gated or private repositories), CRUMB_CACHE (cache directory, " +
  "default ~/.cache/crumb/models), HF_HUB_OFFLINE=1 (cache only)";

async function main(argv: string[], signal: AbortSignal): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, {
    revision: { type: "string", short: "r" },
    include: { type: "string", multiple: true },
    "cache-dir": { type: "string" },
    quiet: { type: "boolean", short: "q", default: false },
    help: { type: "boolean", short: "h", default: false },
  }, USAGE);
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (positionals.length !== 1) {
    throw new InvalidArgumentError("argv", `expected one repository, got ${positionals.length}\n${USAGE}`);
  }
  const result = await pullModel(positionals[0]!, {
    revision: values.revision as string | undefined,
    include: (values.include as string[] | undefined) ?? [],
    cacheDir: values["cache-dir"] as string | undefined,
    progress: values.quiet ? silentProgress : createProgress(process.stderr),
    signal,
  });
  process.stdout.write(`${result.primary ?? result.dir}\n`);
}

const controller = new AbortController();
process.once("SIGINT", () => controller.abort(new Error("interrupted")));
try {
  await main(process.argv.slice(2), controller.signal);
} catch (error) {
  if (error instanceof HelpRequested) process.stdout.write(`${error.usage}\n`);
  else if (!(error instanceof CrumbError)) throw error;
  else {
    process.stderr.write(`pull: ${error.message}\n`);
    const usage = error instanceof InvalidArgumentError &&
      (error.argument === "argv" || error.argument === "repo" || error.argument === "revision" || error.argument.startsWith("-"));
    process.exitCode = controller.signal.aborted ? 130 : usage ? 2 : 1;
  }
}
