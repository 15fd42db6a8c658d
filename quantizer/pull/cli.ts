#!/usr/bin/env bun
/**
 * `bun run pull <org/repo> [--revision <rev>] [--cache-dir <dir>] [--quiet]`: downloads a
 * Hugging Face model repository into crumb's cache and prints the snapshot directory on
 * stdout (so `bun run quantize $(bun run pull org/repo) ...` works); progress goes to
 * stderr. Environment: HF_ENDPOINT, HF_TOKEN, CRUMB_CACHE, HF_HUB_OFFLINE. Ctrl-C keeps
 * the partial files; running the same command again resumes them.
 */
import process from "node:process";
import { CrumbError, InvalidArgumentError } from "../../runtime/errors.ts";
import { HelpRequested, parseCommandLine } from "../../runtime/cli/args.ts";
import { createProgress, silentProgress } from "./progress.ts";
import { pullModel } from "./pull.ts";

const USAGE = "usage: bun run pull <org/repo> [--revision <branch|tag|commit>] [--cache-dir <dir>] [--quiet]\n" +
  "environment: HF_ENDPOINT (mirror), HF_TOKEN (gated or private repositories), CRUMB_CACHE (cache directory, " +
  "default ~/.cache/crumb/models), HF_HUB_OFFLINE=1 (cache only)";

async function main(argv: string[], signal: AbortSignal): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, {
    revision: { type: "string", short: "r" },
    "cache-dir": { type: "string" },
    quiet: { type: "boolean", short: "q", default: false },
    help: { type: "boolean", short: "h", default: false },
  }, USAGE);
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (positionals.length !== 1) {
    throw new InvalidArgumentError("repo", `expected one repository id, got ${positionals.length}\n${USAGE}`);
  }
  const result = await pullModel(positionals[0]!, {
    revision: values.revision as string | undefined,
    cacheDir: values["cache-dir"] as string | undefined,
    progress: values.quiet ? silentProgress : createProgress(process.stderr),
    signal,
  });
  process.stdout.write(`${result.dir}\n`);
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
    process.exitCode = controller.signal.aborted ? 130 : 1;
  }
}
