/**
 * Command-line parsing shared by crumb's CLIs: node:util parseArgs (Bun, Deno and Node all
 * ship it) with typed numeric options, turning every mistake into an InvalidArgumentError
 * that names the flag and the accepted values.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { CrumbError, InvalidArgumentError } from "../errors.ts";

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

/** Thrown for --help / -h: the CLI prints `usage` on stdout and exits 0. */
export class HelpRequested extends CrumbError {
  constructor(readonly usage: string) {
    super("help", usage);
  }
}

export function parseCommandLine(argv: string[], options: OptionSpec, usage: string) {
  if (argv.includes("--help") || (argv.includes("-h") && options.h === undefined && !Object.values(options).some((o) => o.short === "h"))) {
    throw new HelpRequested(usage);
  }
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new InvalidArgumentError("argv", `${message}\n${usage}`, { cause });
  }
}

export function numberOption(
  value: string | boolean | undefined | (string | boolean)[],
  flag: string,
  { min = -Infinity, max = Infinity, integer = false }: { min?: number; max?: number; integer?: boolean } = {},
): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value);
  const parsed = Number(text);
  if (text.trim() === "" || !Number.isFinite(parsed) || (integer && !Number.isInteger(parsed)) || parsed < min || parsed > max) {
    const kind = integer ? "an integer" : "a number";
    const range = max === Infinity ? `>= ${min}` : `between ${min} and ${max}`;
    throw new InvalidArgumentError(flag, `${flag} must be ${kind} ${range}, got "${text}"`);
  }
  return parsed;
}
