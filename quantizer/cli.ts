#!/usr/bin/env bun
/**
 * `bun run quantize <hf-dir | file.gguf | model.bin> -o model.q2 [--tokenizer tokenizer.bin]
 *  [--bits 2|3|4|8|ternary] [--group 32|64|128] [--method rtn|imatrix|gptq|hlq|absmean|ptqtp]
 *  [--calib <text file>] [--eval <text file>] [--keep <pattern>=<encoding>]... [--embeddings q8|f16|f32]
 *  [--no-refit] [--gptq-rounds N] [--no-report] [--json]`
 * and `bun run quantize --report <model.q2> --reference <source> [--json]`.
 * Progress goes to stdout (stderr with --json, whose stdout is one JSON object). The output
 * is written through a temp file and a rename, its packed tensors spooled to a temporary data
 * file meanwhile (output-file.ts); Ctrl-C removes both. Errors print one line and exit 1 (2
 * for usage errors); no output or temporary file is left behind.
 */
import { accessSync, constants, existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import process from "node:process";
import { CrumbError, InvalidArgumentError } from "../runtime/errors.ts";
import { HelpRequested, parseCommandLine } from "../runtime/cli/args.ts";
import { evaluateCheckpoint } from "./evaluate.ts";
import { importModel } from "../runtime/import/index.ts";
import { METHOD_NAMES, type MethodName } from "./methods/index.ts";
import { createProgress, formatBytes, type ProgressStream } from "./progress.ts";
import { quantizeTempPaths, quantizeToFile } from "./output-file.ts";
import { type Bits, parseKeepRule } from "./recipe.ts";
import { formatReport, type QualityReport } from "./report.ts";

export const QUANTIZE_USAGE =
  "usage: bun run quantize <hf-dir | file.gguf | model.bin> -o <model.q2> [--tokenizer <tokenizer.bin>] [--bits 2|3|4|8|ternary] " +
  "[--group 32|64|128] [--method " + METHOD_NAMES.join("|") + "] [--calib <text file>] [--eval <text file>] " +
  "[--keep <tensor-pattern>=<f32|f16|q8|q1-q4|t1|t2>]... [--embeddings q8|f16|f32] [--eval-tokens N] [--no-refit] [--gptq-rounds N] [--no-report] [--json]\n" +
  "       bun run quantize --report <model.q2> --reference <source> [--tokenizer <tokenizer.bin>] [--eval <text file>] [--json]";

export interface QuantizeCliIo {
  readonly stdout: ProgressStream;
  readonly stderr: ProgressStream;
}

function choice<T extends string | number>(value: unknown, flag: string, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  const found = allowed.find((a) => String(a) === String(value));
  if (found === undefined) throw new InvalidArgumentError(flag, `${flag} ${value} is not supported; choose one of ${allowed.join(", ")}`);
  return found;
}

function readText(path: string, flag: string): { text: string; label: string } {
  if (!existsSync(path)) throw new InvalidArgumentError(flag, `${flag} file "${path}" does not exist`);
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

/** The temp files a quantisation in progress would leave behind; the SIGINT handler removes them. */
let pendingTemps: readonly string[] = [];

/** Runs the quantize command; throws CrumbError on bad input (nothing is written then). */
export async function runQuantize(argv: string[], io: QuantizeCliIo): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, {
    output: { type: "string", short: "o" },
    tokenizer: { type: "string" },
    bits: { type: "string" },
    group: { type: "string" },
    method: { type: "string" },
    calib: { type: "string" },
    eval: { type: "string" },
    "eval-tokens": { type: "string" },
    keep: { type: "string", multiple: true },
    embeddings: { type: "string" },
    "no-report": { type: "boolean" },
    "no-refit": { type: "boolean" },
    "gptq-rounds": { type: "string" },
    report: { type: "string" },
    reference: { type: "string" },
    json: { type: "boolean" },
  }, QUANTIZE_USAGE);
  const json = values.json === true;
  const log = json ? io.stderr : io.stdout;
  const evaluation = values.eval === undefined ? undefined : readText(String(values.eval), "--eval");
  const evalTokens = values["eval-tokens"] === undefined ? undefined : Number(values["eval-tokens"]);
  if (evalTokens !== undefined && !(Number.isInteger(evalTokens) && evalTokens >= 2)) {
    throw new InvalidArgumentError("--eval-tokens", `--eval-tokens must be an integer >= 2, got "${values["eval-tokens"]}"`);
  }

  if (values.report !== undefined) {
    if (values.reference === undefined) throw new InvalidArgumentError("--reference", `--report needs --reference <source model>\n${QUANTIZE_USAGE}`);
    for (const path of [String(values.report), String(values.reference)]) {
      if (!existsSync(path)) throw new InvalidArgumentError("path", `"${path}" does not exist`);
    }
    const reference = await importModel(String(values.reference), { tokenizer: values.tokenizer as string | undefined });
    const report = await evaluateCheckpoint(String(values.report), reference, { evaluation, evaluationTokens: evalTokens });
    if (json) io.stdout.write(JSON.stringify(jsonReport(report)) + "\n");
    else io.stdout.write(formatReport(report) + "\n");
    return;
  }

  if (positionals.length !== 1) throw new InvalidArgumentError("model", `give exactly one source model, got ${positionals.length}\n${QUANTIZE_USAGE}`);
  if (values.output === undefined) throw new InvalidArgumentError("output", `give the output file with -o <model.q2>\n${QUANTIZE_USAGE}`);
  const input = positionals[0];
  const output = String(values.output);
  if (!existsSync(input)) throw new InvalidArgumentError("model", `source model "${input}" does not exist; pass a Hugging Face directory, a .gguf file or a llama2.c .bin`);
  checkOutput(output);
  const bitsText = values.bits === undefined ? undefined : String(values.bits);
  const bits = choice<string>(bitsText, "--bits", ["2", "3", "4", "8", "ternary"]);
  const options = {
    bits: bits === undefined ? undefined : (bits === "ternary" ? "ternary" : Number(bits)) as Bits,
    group: values.group === undefined ? undefined : Number(choice(String(values.group), "--group", ["32", "64", "128"])) as 32 | 64 | 128,
    method: choice(values.method, "--method", METHOD_NAMES) as MethodName | undefined,
    embeddings: choice(values.embeddings, "--embeddings", ["q8", "f16", "f32"] as const),
    keep: ((values.keep ?? []) as string[]).map(parseKeepRule),
    calibration: values.calib === undefined ? undefined : readText(String(values.calib), "--calib"),
    evaluation,
    evaluationTokens: evalTokens,
    report: values["no-report"] !== true,
    gptqRefit: values["no-refit"] === true ? false : undefined,
    gptqRounds: values["gptq-rounds"] === undefined ? undefined : Number(values["gptq-rounds"]),
  };
  if (options.gptqRefit === false && options.method !== "gptq") {
    throw new InvalidArgumentError("--no-refit", `--no-refit switches off gptq's scale/zero refit; it needs --method gptq, got --method ${options.method ?? "(default)"}`);
  }
  if (options.gptqRounds !== undefined) {
    const rounds = options.gptqRounds;
    if (!(Number.isInteger(rounds) && rounds >= 1 && rounds <= 8)) {
      throw new InvalidArgumentError("--gptq-rounds", `--gptq-rounds must be an integer from 1 to 8, got "${values["gptq-rounds"]}"`);
    }
    if (options.method !== "gptq" || options.gptqRefit === false) {
      throw new InvalidArgumentError("--gptq-rounds", `--gptq-rounds sets gptq's sweep-and-refit rounds; it needs --method gptq without --no-refit`);
    }
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
}

async function main(): Promise<number> {
  process.on("SIGINT", () => {
    for (const path of pendingTemps) rmSync(path, { force: true });
    process.stderr.write("\ninterrupted: no output file was written\n");
    process.exit(130);
  });
  try {
    await runQuantize(process.argv.slice(2), {
      stdout: { write: (t) => void process.stdout.write(t), isTTY: process.stdout.isTTY },
      stderr: { write: (t) => void process.stderr.write(t), isTTY: process.stderr.isTTY },
    });
    return 0;
  } catch (error) {
    if (error instanceof HelpRequested) {
      process.stdout.write(`${error.usage}\n`);
      return 0;
    }
    if (error instanceof CrumbError) {
      process.stderr.write(`crumb quantize: ${error.message}\n`);
      return error instanceof InvalidArgumentError && error.argument === "argv" ? 2 : 1;
    }
    throw error;
  }
}

if (import.meta.main) process.exitCode = await main();
