#!/usr/bin/env bun
/**
 * `bun run export <model.q4 | hf-dir | model.gguf | model.bin> -o model.gguf [--type T]
 * [--output-type T] [--embedding-type T] [--tokenizer <file>] [--name <name>] [--quiet]`:
 * writes a GGUF llama.cpp loads (gguf-export.ts). One line per tensor on stderr says what it
 * became (exact, grid kept, requantised, with the error); stdout gets the output path. The
 * file is written through a temporary file and a rename, removed on an error or Ctrl-C.
 * Usage errors exit 2, other errors 1, Ctrl-C 130.
 */
import { existsSync, rmSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import process from "node:process";
import { CrumbError, InvalidArgumentError } from "../../runtime/errors.ts";
import { HelpRequested, parseCommandLine } from "../../runtime/cli/args.ts";
import { importModel } from "../import/index.ts";
import { formatBytes } from "../progress.ts";
import { exportGguf, GGUF_EXPORT_TYPES, type GgufExportType } from "./gguf-export.ts";
import { temporaryPath } from "./gguf-stream.ts";

export const EXPORT_USAGE =
  "usage: bun run export <model.q4 | hf-dir | model.gguf | model.bin> -o <model.gguf> [--type <T>] [--output-type <T>] " +
  "[--embedding-type <T>] [--tokenizer <file>] [--name <name>] [--quiet]\n" +
  `  T: ${GGUF_EXPORT_TYPES.join(", ")}\n` +
  "  --type T            every matrix in T, the head in Q6_K (Q8_0 / float types: the same T), as llama-quantize does\n" +
  "  (no --type)         each tensor keeps what it stores where GGUF holds it: f16 F16, q8 groups Q8_0, q1-q4 zero-point\n" +
  "                      groups Q4_1, ternary Q4_0, f32 checkpoints F16, others Q8_0; the head Q6_K when matrices are below 6 bits\n" +
  "  --output-type T     the output head (or the tied embedding); --embedding-type T untied token embeddings\n" +
  "  --tokenizer FILE    for a llama2.c .bin (or to replace the model's tokenizer)";

export interface ExportCliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

function typeOption(value: unknown, flag: string): GgufExportType | undefined {
  if (value === undefined) return undefined;
  const found = GGUF_EXPORT_TYPES.find((t) => t.toLowerCase() === String(value).toLowerCase());
  if (found === undefined) throw new InvalidArgumentError(flag, `${flag} ${value} is not a type crumb writes; choose one of ${GGUF_EXPORT_TYPES.join(", ")}`);
  return found;
}

function checkOutput(path: string): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir)) throw new InvalidArgumentError("-o", `output directory ${dir} does not exist; create it or choose another -o path`);
  if (existsSync(path) && statSync(path).isDirectory()) throw new InvalidArgumentError("-o", `output ${path} is a directory; give a file name such as model.gguf`);
}

export async function runExport(argv: string[], io: ExportCliIo): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, {
    output: { type: "string", short: "o" },
    type: { type: "string" },
    "output-type": { type: "string" },
    "embedding-type": { type: "string" },
    tokenizer: { type: "string" },
    name: { type: "string" },
    quiet: { type: "boolean", short: "q", default: false },
  }, EXPORT_USAGE);
  if (positionals.length !== 1) throw new InvalidArgumentError("argv", `expected one model to export, got ${positionals.length}\n${EXPORT_USAGE}`);
  const output = values.output as string | undefined;
  if (output === undefined) throw new InvalidArgumentError("-o", `-o <model.gguf> is required\n${EXPORT_USAGE}`);
  checkOutput(output);
  const options = {
    type: typeOption(values.type, "--type"),
    outputType: typeOption(values["output-type"], "--output-type"),
    embeddingType: typeOption(values["embedding-type"], "--embedding-type"),
    name: values.name as string | undefined,
  };
  const source = await importModel(positionals[0]!, { tokenizer: values.tokenizer as string | undefined });
  const log = (line: string) => void (values.quiet ? undefined : io.stderr.write(`${line}\n`));
  const started = performance.now();
  const tensors = exportGguf(source, output, { ...options, log });
  const exact = tensors.filter((t) => t.exact).length;
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  log(`wrote ${output}: ${formatBytes(statSync(output).size)}, ${tensors.length} tensors (${exact} exact, ${tensors.length - exact} rounded) in ${seconds} s`);
  io.stdout.write(`${output}\n`);
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const flag = argv.findIndex((a) => a === "-o" || a === "--output");
  const output = flag >= 0 ? argv[flag + 1] : undefined;
  process.once("SIGINT", () => {
    if (output !== undefined) rmSync(temporaryPath(output), { force: true });
    process.stderr.write("\ninterrupted: no output file was written\n");
    process.exit(130);
  });
  try {
    await runExport(argv, { stdout: process.stdout, stderr: process.stderr });
    return 0;
  } catch (error) {
    if (error instanceof HelpRequested) {
      process.stdout.write(`${error.usage}\n`);
      return 0;
    }
    if (!(error instanceof CrumbError)) throw error;
    process.stderr.write(`crumb export: ${error.message}\n`);
    return error instanceof InvalidArgumentError && (error.argument === "argv" || error.argument.startsWith("-")) ? 2 : 1;
  }
}

if (import.meta.main) process.exitCode = await main();
