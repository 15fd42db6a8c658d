/**
 * The one command-line parser of every crumb command, on commander (help with a line and a
 * default per flag, --version, choices, excess-argument checks). What commander does not do is
 * added here: other spellings of a flag (llama.cpp's `--ctx-size` beside crumb's `--ctx`,
 * `-sys`), llama.cpp's GPU flags (`-ngl 99`) accepted and ignored with one warning, "did you
 * mean" over every spelling, and each mistake turned into one UsageError line (exit 2).
 */
import { Command, CommanderError, Option } from "commander";
import { CrumbError, UsageError } from "../errors.ts";
import { CRUMB_VERSION } from "./version.ts";

/** Parses one flag's text (already resolved to the canonical flag name); throws UsageError. */
export type ValueParser = (text: string, flag: string) => unknown;

export interface FlagSpec {
  /** commander's notation: "-t, --threads <n>", "--json", "--no-report". */
  readonly flags: string;
  readonly description: string;
  /** The value when the flag is absent (already parsed). */
  readonly default?: unknown;
  /** How help shows the default when it is computed ("all cores"). */
  readonly defaultLabel?: string;
  /** Other spellings, rewritten to this flag: "--ctx", "--temperature", "-sys". */
  readonly aliases?: readonly string[];
  readonly parse?: ValueParser;
  /** Repeatable; the values are collected in an array. */
  readonly multiple?: boolean;
}

export interface ArgumentSpec {
  readonly name: string;
  readonly description: string;
  readonly required?: boolean;
}

export interface CommandSpec {
  /** "generate"; help and errors say "crumb generate". */
  readonly name: string;
  /** One line for `crumb --help`. */
  readonly summary: string;
  readonly arguments?: readonly ArgumentSpec[];
  readonly flags: readonly FlagSpec[];
  /** Lines shown under "Examples:". */
  readonly examples?: readonly string[];
  /** A paragraph after the examples. */
  readonly notes?: string;
}

export interface ParsedCommandLine {
  /** Keyed by commander's attribute name: `--n-predict` is `nPredict`, `--no-report` is `report`. */
  readonly options: Record<string, unknown>;
  readonly args: readonly string[];
  /** Lines to print before running (ignored GPU flags). */
  readonly warnings: readonly string[];
}

/** `--help`: the CLI prints `text` on stdout and exits 0. */
export class HelpRequested extends CrumbError {
  constructor(readonly text: string) {
    super("help", text);
  }
}

/**
 * llama.cpp's GPU offload flags, with whether each takes a value. crumb runs on the CPU, so they
 * are accepted (scripts written for llama.cpp keep working) and ignored with one warning.
 */
const GPU_FLAGS: ReadonlyMap<string, boolean> = new Map([
  ["-ngl", true], ["--gpu-layers", true], ["--n-gpu-layers", true], ["-ngld", true], ["--gpu-layers-draft", true],
  ["-sm", true], ["--split-mode", true], ["-ts", true], ["--tensor-split", true], ["-mg", true], ["--main-gpu", true],
  ["-dev", true], ["--device", true], ["-nkvo", false], ["--no-kv-offload", false], ["--no-op-offload", false],
]);

/** The long and short names of a flag spec: "-t, --threads <n>" → ["-t", "--threads"]. */
function namesOf(spec: FlagSpec): string[] {
  return spec.flags.split(/[ ,|]+/).filter((part) => part.startsWith("-"));
}

const takesValue = (spec: FlagSpec) => /[<[]/.test(spec.flags);

/** Edit distance (Levenshtein), for "did you mean". */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length];
}

/** The candidate closest to `word` when it is close enough to be a typo, else undefined. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const prefix = candidate.startsWith(word) || word.startsWith(candidate);
    const d = prefix ? Math.min(Math.abs(candidate.length - word.length), distance(word, candidate)) : distance(word, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  const allowed = Math.max(2, Math.floor(word.replace(/^-+/, "").length / 3));
  return bestDistance <= allowed ? best : undefined;
}

/**
 * Rewrites aliases to their flag and drops GPU flags, leaving values (the text after a flag
 * that takes one) alone, and everything after `--`.
 */
function normalise(spec: CommandSpec, argv: readonly string[]): { argv: string[]; ignored: string[] } {
  const byName = new Map<string, { canonical: string; value: boolean }>();
  for (const flag of spec.flags) {
    const names = namesOf(flag);
    const canonical = names.at(-1)!;
    for (const name of [...names, ...(flag.aliases ?? [])]) byName.set(name, { canonical, value: takesValue(flag) });
  }
  const out: string[] = [];
  const ignored: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (token === "--") {
      out.push(...argv.slice(i));
      break;
    }
    const eq = token.startsWith("-") ? token.indexOf("=") : -1;
    const name = eq > 0 ? token.slice(0, eq) : token;
    const gpu = GPU_FLAGS.get(name);
    if (gpu !== undefined) {
      const withValue = gpu && eq < 0 && i + 1 < argv.length;
      ignored.push(withValue ? `${token} ${argv[i + 1]}` : token);
      if (withValue) i++;
      continue;
    }
    const known = byName.get(name);
    if (known === undefined) {
      out.push(token);
      continue;
    }
    out.push(eq > 0 ? `${known.canonical}${token.slice(eq)}` : known.canonical);
    if (known.value && eq < 0 && i + 1 < argv.length) out.push(argv[++i]);
  }
  return { argv: out, ignored };
}

function buildCommand(spec: CommandSpec, output: { text: string }): Command {
  const command = new Command(`crumb ${spec.name}`)
    .description(spec.summary)
    .exitOverride()
    .allowExcessArguments(false)
    .helpOption("-h, --help", "show this help")
    .version(`crumb ${CRUMB_VERSION}`, "--version", "print crumb's version")
    .configureOutput({ writeOut: (text) => void (output.text += text), writeErr: () => {}, outputError: () => {} });
  for (const argument of spec.arguments ?? []) {
    command.argument(argument.required === true ? `<${argument.name}>` : `[${argument.name}]`, argument.description);
  }
  for (const flag of spec.flags) {
    const aliases = flag.aliases === undefined ? "" : ` (also ${flag.aliases.join(", ")})`;
    // commander shows a default only when there is a value; a computed one is shown here.
    const computed = flag.default === undefined && flag.defaultLabel !== undefined ? ` (default: ${flag.defaultLabel})` : "";
    const option = new Option(flag.flags, flag.description + aliases + computed);
    const parse = flag.parse;
    const canonical = namesOf(flag).at(-1)!;
    if (flag.multiple === true) {
      option.argParser((text: string, previous: unknown) => [...(Array.isArray(previous) ? previous : []), parse ? parse(text, canonical) : text]);
      option.default(flag.default ?? [], flag.defaultLabel ?? "none");
    } else {
      if (parse !== undefined) option.argParser((text: string) => parse(text, canonical));
      if (flag.default !== undefined) option.default(flag.default, flag.defaultLabel ?? String(flag.default));
    }
    command.addOption(option);
  }
  const after = [
    spec.examples === undefined ? "" : `\nExamples:\n${spec.examples.map((line) => `  ${line}`).join("\n")}\n`,
    spec.notes === undefined ? "" : `\n${spec.notes}\n`,
  ].join("");
  if (after !== "") command.addHelpText("after", after);
  return command;
}

/** The full help text of a command, as `crumb <name> --help` prints it. */
export function helpText(spec: CommandSpec): string {
  const output = { text: "" };
  const command = buildCommand(spec, output);
  command.outputHelp();
  return output.text;
}

/**
 * Parses a command's arguments. Throws HelpRequested for --help and --version, UsageError
 * (one line naming the flag) for anything it cannot accept.
 */
export function parseCommand(spec: CommandSpec, argv: readonly string[]): ParsedCommandLine {
  const { argv: normalised, ignored } = normalise(spec, argv);
  const output = { text: "" };
  const command = buildCommand(spec, output);
  try {
    command.parse(normalised, { from: "user" });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    if (error.code === "commander.helpDisplayed" || error.code === "commander.version") throw new HelpRequested(output.text.trimEnd());
    throw usageError(spec, error);
  }
  const warnings = ignored.length === 0 ? [] : [
    `ignoring ${ignored.join(", ")}: crumb runs on the CPU (llama.cpp's GPU flags are accepted and have no effect)`,
  ];
  return { options: command.opts(), args: command.args, warnings };
}

/** commander's error as one UsageError line, with "did you mean" over every spelling. */
function usageError(spec: CommandSpec, error: CommanderError): UsageError {
  const message = error.message.replace(/^error: /, "").split("\n")[0];
  if (error.code === "commander.unknownOption") {
    const flag = /'([^']+)'/.exec(message)?.[1] ?? "";
    const name = flag.split("=")[0];
    const candidates = spec.flags.flatMap((f) => [...namesOf(f), ...(f.aliases ?? [])]).filter((n) => n.length > 2);
    const suggestion = closest(name, [...candidates, "--help", "--version"]);
    const hint = suggestion === undefined ? `see crumb ${spec.name} --help` : `did you mean ${suggestion}?`;
    return new UsageError(name, `unknown option ${name} (${hint})`, { cause: error });
  }
  if (error.code === "commander.excessArguments") {
    return new UsageError("argv", `${message} (see crumb ${spec.name} --help)`, { cause: error });
  }
  return new UsageError("argv", message, { cause: error });
}
