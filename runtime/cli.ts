#!/usr/bin/env bun
/**
 * crumb's command line: `generate` and `serve` (`pull` and `quantize` have their own entry
 * points under quantizer/). Errors print one clear line (the CrumbError message) and exit non-zero.
 */
import process from "node:process";
import { CrumbError } from "./errors.ts";
import { runGenerate } from "./cli/generate.ts";
import { HelpRequested } from "./cli/args.ts";

const COMMANDS: Record<string, (argv: string[]) => Promise<void>> = {
  generate: (argv) =>
    runGenerate(argv, {
      stdout: (text) => void process.stdout.write(text),
      stderr: (text) => void process.stderr.write(text),
    }),
  serve: (argv) => import("./cli/serve.ts").then(({ runServe }) => runServe(argv)),
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const run = command === undefined ? undefined : COMMANDS[command];
  if (run === undefined) {
    process.stderr.write(`usage: crumb <${Object.keys(COMMANDS).join(" | ")}> ...\n`);
    return 2;
  }
  try {
    await run(rest);
    return 0;
  } catch (error) {
    if (error instanceof HelpRequested) {
      process.stdout.write(`${error.usage}\n`);
      return 0;
    }
    if (error instanceof CrumbError) {
      process.stderr.write(`crumb ${command}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

process.exitCode = await main(process.argv.slice(2));
