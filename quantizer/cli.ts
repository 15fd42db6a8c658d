/**
 * `crumb quantize <hf-dir | file.gguf | model.bin> -o model.q2 [flags]` and
 * `crumb quantize --report <model.q2> --reference <source>`: quantises a checkpoint into one
 * packed file with its recipe and measured quality report (warning when the report says the
 * file is poor), or re-measures an existing file. Progress goes to stdout (stderr with --json,
 * whose stdout is one JSON object). The output is written through a temp file and a rename, its
 * packed tensors spooled to a temporary data file meanwhile (output-file.ts); Ctrl-C, SIGTERM
 * and SIGHUP remove both. Errors print one line and exit 1 (2 for usage errors); no output or
 * temporary file is left behind.
 */
import { accessSync, constants, existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import process from "node:process";
import { InvalidArgumentError, UsageError } from "../runtime/errors.ts";
import { pathProblem } from "../runtime/format/path-problem.ts";
import { type CommandSpec, parseCommand } from "../runtime/cli/command-line.ts";
import { choiceValue, integerValue, pathValue } from "../runtime/cli/flag-values.ts";
import { qualityWarning } from "../runtime/cli/quality-warning.ts";
import { userPath } from "../runtime/cli/user-path.ts";
import { evaluateCheckpoint } from "./evaluate.ts";
import { importModel } from "../runtime/import/index.ts";
import { METHOD_NAMES, type MethodName } from "./methods/index.ts";
import { createProgress, formatBytes, type ProgressStream } from "./progress.ts";
import { quantizeTempPaths, quantizeToFile } from "./output-file.ts";
import { type Bits, type HeadSpec, parseHead, parseKeepRule } from "./recipe.ts";
import { formatReport, type QualityReport } from "./report.ts";

export const QUANTIZE_COMMAND: CommandSpec = {
  name: "quantize",
  summary: "quantise a Hugging Face directory, GGUF or llama2.c checkpoint into one packed file, with a quality report",
  arguments: [{ name: "source", description: "a Hugging Face directory, a .gguf file or a llama2.c .bin" }],
  flags: [
    { flags: "-o, --output <file>", description: "the packed file to write (model.q2, model.q4, ...)", parse: pathValue },
    { flags: "--bits <bits>", description: "2, 3, 4, 8 or ternary", defaultLabel: "4 (a GGUF: keep its blocks where crumb can)", parse: choiceValue(["2", "3", "4", "8", "ternary"]) },
    { flags: "--group <n>", description: "weights per scale: 32, 64, 128 or 256", defaultLabel: "the method's", parse: choiceValue(["32", "64", "128", "256"]) },
    { flags: "--method <name>", description: METHOD_NAMES.join(", "), defaultLabel: "rtn (2-4 bits), absmean (ternary)", parse: choiceValue(METHOD_NAMES) },
    { flags: "--calib <file>", description: "calibration text for imatrix and gptq", defaultLabel: "built-in", parse: pathValue },
    { flags: "--eval <file>", description: "evaluation text for the quality report", defaultLabel: "built-in", parse: pathValue },
    { flags: "--eval-tokens <n>", description: "evaluation tokens for the quality report", default: 1024, parse: integerValue({ min: 2, max: 1 << 24 }) },
    { flags: "--keep <pattern=encoding>", description: "keep matching tensors in f32, f16, q8, q1-q4, t1 or t2 (repeatable)", multiple: true },
    { flags: "--embeddings <encoding>", description: "the token embedding table: q8, f16 or f32 (a tied table too, unless --head is given)", defaultLabel: "q8", parse: choiceValue(["q8", "f16", "f32"]) },
    { flags: "--head <encoding>", description: "the output head (lm_head or the tied table): f32, f16, q8, q4 or q3, optionally with a group (q4g64)", defaultLabel: "q4g64 for 2-bit gptq, q4g32 for 2-bit imatrix, q8g128 otherwise", parse: headValue },
    { flags: "--no-refit", description: "gptq without its scale/zero refit" },
    { flags: "--gptq-rounds <n>", description: "gptq sweep-and-refit rounds, 1 to 8", defaultLabel: "2", parse: integerValue({ min: 1, max: 8 }) },
    { flags: "--no-report", description: "skip the quality measurement (bits per weight and size only)" },
    { flags: "--report <file>", description: "measure an existing packed file instead (with --reference)", parse: pathValue },
    { flags: "--reference <source>", description: "the source model --report compares against", parse: pathValue },
    { flags: "--tokenizer <file>", description: "tokenizer for a llama2.c .bin (tokenizer.bin)", parse: pathValue },
    { flags: "--json", description: "print the report as one JSON object on stdout" },
  ],
  examples: [
    "crumb quantize ./SmolLM2-135M-Instruct --bits 4 --method gptq -o smol.q4",
    "crumb quantize model-Q4_K_M.gguf -o model.q4",
    "crumb quantize stories260K.bin --tokenizer tok512.bin --bits 2 -o stories.q2",
    "crumb quantize --report smol.q4 --reference ./SmolLM2-135M-Instruct",
  ],
  notes: "crumb info <file> prints a packed file's recipe and stored report without measuring again.",
};

/** --head: parseHead's rule, reported as a usage error (exit 2). */
function headValue(text: string, flag: string): HeadSpec {
  try {
    return parseHead(text);
  } catch (e) {
    throw new UsageError(flag, (e as Error).message);
  }
}

export interface QuantizeCliIo {
  readonly stdout: ProgressStream;
  readonly stderr: ProgressStream;
}

function readText(path: string, flag: string): { text: string; label: string } {
  const problem = pathProblem(path);
  if (problem !== undefined) throw new InvalidArgumentError(flag, `${flag} file "${path}" ${problem}`);
  const text = readFileSync(path, "utf8");
  if (text.trim().length === 0) throw new InvalidArgumentError(flag, `${flag} file "${path}" is empty; give it a few KB of plain text`);
  return { text, label: basename(path) };
}

function checkOutput(path: string): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir)) throw new InvalidArgumentError("output", `output directory ${dir} does not exist; create it or choose another -o path`);
  if (existsSync(path) && statSync(path).isDirectory()) throw new InvalidArgumentError("output", `output ${path} is a directory; give a file name such as model.q2`);
  try {
    accessSync(dir, constants.W_OK);
  } catch (cause) {
    throw new InvalidArgumentError("output", `output directory ${dir} is not writable; choose another -o path`, { cause });
  }
}

function jsonReport(r: QualityReport): Record<string, unknown> {
  return { ...r };
}

/** The temp files a quantisation in progress would leave behind; the signal handlers remove them. */
let pendingTemps: readonly string[] = [];

/** Runs the quantize command; throws CrumbError on bad input (nothing is written then). */
export async function runQuantize(argv: readonly string[], io: QuantizeCliIo): Promise<void> {
  const { options: values, args: positionals } = parseCommand(QUANTIZE_COMMAND, argv);
  const json = values.json === true;
  const log = json ? io.stderr : io.stdout;
  const evaluation = values.eval === undefined ? undefined : readText(String(values.eval), "--eval");
  const evalTokens = values.evalTokens as number;

  if (typeof values.report === "string") {
    if (values.reference === undefined) throw new UsageError("--reference", "--report needs --reference <source model> (crumb info <file> prints the stored report)");
    for (const path of [values.report, String(values.reference)]) {
      const problem = pathProblem(path);
      if (problem !== undefined) throw new InvalidArgumentError("path", `${path} ${problem}`);
    }
    const reference = await importModel(String(values.reference), { tokenizer: values.tokenizer as string | undefined });
    const report = await evaluateCheckpoint(values.report, reference, { evaluation, evaluationTokens: evalTokens });
    if (json) io.stdout.write(JSON.stringify(jsonReport(report)) + "\n");
    else io.stdout.write(formatReport(report) + "\n");
    return;
  }

  if (positionals.length !== 1) throw new UsageError("argv", `give exactly one source model, got ${positionals.length} (see crumb quantize --help)`);
  if (values.output === undefined) throw new UsageError("--output", "give the output file with -o <model.q2> (see crumb quantize --help)");
  const input = userPath(positionals[0]);
  const output = String(values.output);
  const inputProblem = pathProblem(input);
  if (inputProblem !== undefined) {
    throw new InvalidArgumentError("model", `source model ${input} ${inputProblem}; pass a Hugging Face directory, a .gguf file or a llama2.c .bin`);
  }
  checkOutput(output);
  const bits = values.bits as string | undefined;
  const method = values.method as MethodName | undefined;
  const options = {
    bits: bits === undefined ? undefined : (bits === "ternary" ? "ternary" : Number(bits)) as Bits,
    group: values.group === undefined ? undefined : Number(values.group) as 32 | 64 | 128 | 256,
    method,
    embeddings: values.embeddings as "q8" | "f16" | "f32" | undefined,
    head: values.head as HeadSpec | undefined,
    keep: ((values.keep ?? []) as string[]).map(parseKeepRule),
    calibration: values.calib === undefined ? undefined : readText(String(values.calib), "--calib"),
    evaluation,
    evaluationTokens: evalTokens,
    report: values.report !== false,
    gptqRefit: values.refit === false ? false : undefined,
    gptqRounds: values.gptqRounds as number | undefined,
  };
  if (options.gptqRefit === false && options.method !== "gptq") {
    throw new UsageError("--no-refit", `--no-refit switches off gptq's scale/zero refit; it needs --method gptq, got --method ${options.method ?? "(default)"}`);
  }
  if (options.gptqRounds !== undefined && (options.method !== "gptq" || options.gptqRefit === false)) {
    throw new UsageError("--gptq-rounds", `--gptq-rounds sets gptq's sweep-and-refit rounds; it needs --method gptq without --no-refit`);
  }
  const source = await importModel(input, { tokenizer: values.tokenizer as string | undefined });
  if (source.tokenizer === undefined) {
    throw new InvalidArgumentError("tokenizer", `${input} carries no tokenizer; pass --tokenizer <tokenizer.bin> (llama2.c) so the output runs on its own`);
  }
  const started = performance.now();
  const temps = quantizeTempPaths(output);
  pendingTemps = [temps.data, temps.checkpoint];
  const result = await quantizeToFile(source, output, { ...options, onProgress: createProgress(log) }).finally(() => {
    pendingTemps = [];
  });
  const seconds = (performance.now() - started) / 1000;
  if (json) {
    io.stdout.write(JSON.stringify({ output, seconds: Number(seconds.toFixed(2)), ...jsonReport(result.report) }) + "\n");
  } else {
    log.write(`wrote ${output}: ${formatBytes(result.report.bytes)} in ${seconds.toFixed(1)} s\n${formatReport(result.report)}\n`);
  }
  const poor = qualityWarning(result.report as unknown as Record<string, unknown>);
  if (poor !== undefined) io.stderr.write(`crumb quantize: warning: ${poor}\n`);
}

/** Signals that end a quantisation, with the exit code a shell reports for each (128 + number). */
const STOP_SIGNALS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;

/** `crumb quantize` with its signal handling; resolves with the exit code (errors propagate). */
export async function quantizeMain(argv: readonly string[]): Promise<number> {
  for (const [signal, code] of Object.entries(STOP_SIGNALS)) {
    process.on(signal, () => {
      for (const path of pendingTemps) rmSync(path, { force: true });
      process.stderr.write(`\n${signal}: interrupted; no output file was written and the temporary files are removed\n`);
      process.exit(code);
    });
  }
  await runQuantize(argv, {
    stdout: { write: (t) => void process.stdout.write(t), isTTY: process.stdout.isTTY },
    stderr: { write: (t) => void process.stderr.write(t), isTTY: process.stderr.isTTY },
  });
  return 0;
}

// Run directly, it is `crumb quantize` (not awaited: the dispatcher imports this module back).
if (import.meta.main) void import("../runtime/cli/main.ts").then(({ runCliMain }) => runCliMain(["quantize", ...process.argv.slice(2)]));
