/**
 * `crumb export <model.q4 | hf-dir | model.gguf | model.bin> -o model.gguf [--type T]
 * [--output-type T] [--embedding-type T] [--tokenizer <file>] [--name <name>] [--quiet]`:
 * writes a GGUF llama.cpp loads (gguf-export.ts). One line per tensor on stderr says what it
 * became (exact, grid kept, requantised, with the error); stdout gets the output path. The
 * file is written through a temporary file and a rename, removed on an error or Ctrl-C.
 * Usage errors exit 2, other errors 1, Ctrl-C 130.
 */
import { existsSync, rmSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import process from "node:process";
import { InvalidArgumentError, UsageError } from "../../runtime/errors.ts";
import { type CommandSpec, parseCommand } from "../../runtime/cli/command-line.ts";
import { choiceValue, pathValue } from "../../runtime/cli/flag-values.ts";
import { userPath } from "../../runtime/cli/user-path.ts";
import { importModel } from "../../runtime/import/index.ts";
import { formatBytes } from "../progress.ts";
import { exportGguf, GGUF_EXPORT_TYPES, type GgufExportType } from "./gguf-export.ts";
import { temporaryPath } from "./gguf-stream.ts";

const typeFlag = { parse: choiceValue(GGUF_EXPORT_TYPES, { caseless: true }) };

export const EXPORT_COMMAND: CommandSpec = {
  name: "export",
  summary: "write a GGUF that llama.cpp loads, keeping crumb's quantisation where GGUF can hold it",
  arguments: [{ name: "model", description: "model.q4, a Hugging Face directory, a .gguf or a llama2.c .bin (with --tokenizer)" }],
  flags: [
    { flags: "-o, --output <file>", description: "the GGUF to write", parse: pathValue },
    { flags: "--type <T>", description: `every matrix in T, the head in Q6_K (Q8_0 and float types: T), as llama-quantize does; T: ${GGUF_EXPORT_TYPES.join(", ")}`, defaultLabel: "what each tensor stores, where GGUF holds it", ...typeFlag },
    { flags: "--output-type <T>", description: "the output head (or the tied embedding)", ...typeFlag },
    { flags: "--embedding-type <T>", description: "untied token embeddings", ...typeFlag },
    { flags: "--tokenizer <file>", description: "for a llama2.c .bin (or to replace the model's tokenizer)", parse: pathValue },
    { flags: "--name <name>", description: "general.name in the GGUF", defaultLabel: "the file name" },
    { flags: "-q, --quiet", description: "no per-tensor lines on stderr" },
  ],
  examples: ["crumb export smol.q4 -o smol-q4.gguf", "crumb export smol.q4 -o smol-q8.gguf --type Q8_0"],
};

export interface ExportCliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

function checkOutput(path: string): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir)) throw new InvalidArgumentError("-o", `output directory ${dir} does not exist; create it or choose another -o path`);
  if (existsSync(path) && statSync(path).isDirectory()) throw new InvalidArgumentError("-o", `output ${path} is a directory; give a file name such as model.gguf`);
}

export async function runExport(argv: readonly string[], io: ExportCliIo): Promise<void> {
  const { options: values, args: positionals } = parseCommand(EXPORT_COMMAND, argv);
  if (positionals.length !== 1) throw new UsageError("argv", `expected one model to export, got ${positionals.length} (see crumb export --help)`);
  const output = values.output as string | undefined;
  if (output === undefined) throw new UsageError("--output", "-o <model.gguf> is required (see crumb export --help)");
  checkOutput(output);
  const options = {
    type: values.type as GgufExportType | undefined,
    outputType: values.outputType as GgufExportType | undefined,
    embeddingType: values.embeddingType as GgufExportType | undefined,
    name: values.name as string | undefined,
  };
  const source = await importModel(userPath(positionals[0]), { tokenizer: values.tokenizer as string | undefined });
  const log = (line: string) => void (values.quiet ? undefined : io.stderr.write(`${line}\n`));
  const started = performance.now();
  const tensors = exportGguf(source, output, { ...options, log });
  const exact = tensors.filter((t) => t.exact).length;
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  log(`wrote ${output}: ${formatBytes(statSync(output).size)}, ${tensors.length} tensors (${exact} exact, ${tensors.length - exact} rounded) in ${seconds} s`);
  io.stdout.write(`${output}\n`);
}

/** `crumb export` with its Ctrl-C handling (the temporary file is removed); resolves with the exit code. */
export async function exportMain(argv: readonly string[]): Promise<number> {
  const flag = argv.findIndex((a) => a === "-o" || a === "--output");
  const output = flag >= 0 ? argv[flag + 1] : undefined;
  process.once("SIGINT", () => {
    if (output !== undefined) rmSync(temporaryPath(userPath(output)), { force: true });
    process.stderr.write("\ninterrupted: no output file was written\n");
    process.exit(130);
  });
  await runExport(argv, { stdout: process.stdout, stderr: process.stderr });
  return 0;
}

// Run directly, it is `crumb export` (not awaited: the dispatcher imports this module back).
if (import.meta.main) void import("../../runtime/cli/main.ts").then(({ runCliMain }) => runCliMain(["export", ...process.argv.slice(2)]));
