/**
 * `crumb info <file> [--json]`: what a model file holds, read from its header alone (no
 * weights loaded, nothing measured): architecture and sizes, the encoding of every tensor,
 * and for a packed crumb file the recipe, the quality report stored when it was quantised
 * and the chat templates; for a GGUF its metadata, tensor types and chat template.
 */
import { statSync } from "node:fs";
import { UsageError } from "../errors.ts";
import { resolveModel } from "../models/registry.ts";
import { encodingName } from "../format/encoding.ts";
import { openCheckpoint } from "../format/file.ts";
import { readGguf } from "../import/gguf.ts";
import { type CommandSpec, parseCommand } from "./command-line.ts";
import type { CliIo } from "./io.ts";
import { checkModelPath, formatSize, modelKind } from "./load-model.ts";
import { qualityWarning } from "./quality-warning.ts";
import { userPath } from "./user-path.ts";

export const INFO_COMMAND: CommandSpec = {
  name: "info",
  summary: "show a model file: architecture, sizes, encodings per tensor, recipe, stored quality report, chat template",
  arguments: [{ name: "file", description: "a packed crumb file (model.q4) or a .gguf" }],
  flags: [{ flags: "--json", description: "one JSON object on stdout" }],
  examples: ["crumb info smol.q4", "crumb info smol.q4 --json | jq .report"],
};

interface TensorLine {
  readonly name: string;
  readonly shape: readonly number[];
  readonly encoding: string;
  readonly bytes: number;
}

function architectureLines(config: Record<string, unknown>): string[] {
  try {
    const { args } = resolveModel(config);
    return [
      `architecture  ${args.modelType}: ${args.numLayers} layers, hidden ${args.hiddenSize}, heads ${args.numHeads} (kv ${args.numKvHeads}), ` +
      `head dim ${args.headDim}, vocab ${args.vocabSize}, trained context ${args.maxPositions}`,
    ];
  } catch (error) {
    return [`architecture  ${String(config.model_type ?? "unknown")} (${(error as Error).message})`];
  }
}

function encodingSummary(tensors: readonly TensorLine[]): string {
  const counts = new Map<string, { n: number; bytes: number }>();
  for (const t of tensors) {
    const entry = counts.get(t.encoding) ?? { n: 0, bytes: 0 };
    counts.set(t.encoding, { n: entry.n + 1, bytes: entry.bytes + t.bytes });
  }
  return [...counts].map(([encoding, { n, bytes }]) => `${encoding} ×${n} (${formatSize(bytes)})`).join(", ");
}

function tensorTable(tensors: readonly TensorLine[]): string[] {
  const width = Math.max(...tensors.map((t) => t.name.length));
  return tensors.map((t) => `  ${t.name.padEnd(width)}  ${t.shape.join("x").padEnd(12)} ${t.encoding.padEnd(10)} ${formatSize(t.bytes).padStart(10)}`);
}

function templateLine(templates: Readonly<Record<string, string>>): string {
  const names = Object.keys(templates);
  if (names.length === 0) return "chat template none (chat and serve fall back to ChatML; --chat-template gives one)";
  return `chat template ${names.map((n) => `${n} (${templates[n].length} characters)`).join(", ")}`;
}

async function packedInfo(path: string, json: boolean, io: CliIo): Promise<void> {
  const file = await openCheckpoint(path);
  const { header } = file;
  await file.close();
  const tensors: TensorLine[] = file.tensors.map((t) => ({ name: t.name, shape: t.shape, encoding: encodingName(t.encoding), bytes: t.byteLength }));
  if (json) {
    io.stdout(JSON.stringify({
      file: path,
      bytes: statSync(path).size,
      format_version: file.version,
      config: header.config,
      quantization: header.quantization,
      report: header.report,
      chat_templates: header.chatTemplates,
      generation_config: header.generationConfig,
      tokenizer: header.tokenizer !== null,
      tensors,
    }) + "\n");
    return;
  }
  const recipe = Object.entries(header.quantization)
    .filter(([key, value]) => key !== "encodings" && value !== null && !(Array.isArray(value) && value.length === 0))
    .map(([key, value]) => {
      if (key === "notes" && typeof value === "object") {
        const notes = Object.values(value as Record<string, string>);
        return `notes: ${[...new Set(notes)].map((n) => `${n} (${notes.filter((m) => m === n).length}x)`).join(", ")}`;
      }
      return `${key} ${typeof value === "object" ? JSON.stringify(value) : String(value)}`;
    });
  const { formatReport } = await import("../../quantizer/report.ts"); // the quantizer's report format, loaded for `crumb info` only
  const report = header.report as unknown as Parameters<typeof formatReport>[0];
  const lines = [
    `file          ${path} (${formatSize(statSync(path).size)}, crumb format version ${file.version})`,
    ...architectureLines(header.config),
    `tokenizer     ${header.tokenizer === null ? "none (pass --tokenizer when running it)" : "included"}`,
    templateLine(header.chatTemplates),
    `recipe        ${recipe.length === 0 ? "none recorded" : recipe.join("; ")}`,
    `encodings     ${encodingSummary(tensors)}`,
    "quality report (stored when the file was quantised):",
    ...(typeof report.bpw === "number" ? formatReport(report).split("\n").map((l) => `  ${l}`) : ["  none stored"]),
  ];
  const poor = qualityWarning(header.report);
  if (poor !== undefined) lines.push(`warning: ${poor}`);
  lines.push(`tensors (${tensors.length}):`, ...tensorTable(tensors));
  io.stdout(lines.join("\n") + "\n");
}

function ggufInfo(path: string, json: boolean, io: CliIo): void {
  const gguf = readGguf(path);
  const tensors: TensorLine[] = gguf.tensorInfos.map((t) => ({ name: t.name, shape: t.shape, encoding: t.type.name, bytes: t.byteLength }));
  const metadata = Object.fromEntries(
    [...gguf.metadata].filter(([key]) => !key.startsWith("tokenizer.ggml.")).map(([key, value]) => [key, typeof value === "bigint" ? Number(value) : value]),
  );
  if (json) {
    io.stdout(JSON.stringify({ file: path, bytes: statSync(path).size, metadata, tensors }) + "\n");
    return;
  }
  const arch = String(gguf.metadata.get("general.architecture") ?? "unknown");
  const get = (key: string) => gguf.metadata.get(`${arch}.${key}`);
  const template = gguf.metadata.get("tokenizer.chat_template");
  const lines = [
    `file          ${path} (${formatSize(statSync(path).size)}, GGUF)`,
    `architecture  ${arch}: ${get("block_count")} layers, hidden ${get("embedding_length")}, heads ${get("attention.head_count")} ` +
    `(kv ${get("attention.head_count_kv") ?? get("attention.head_count")}), trained context ${get("context_length")}`,
    `name          ${String(gguf.metadata.get("general.name") ?? "-")}`,
    `chat template ${typeof template === "string" ? `${template.length} characters` : "none (chat and serve fall back to ChatML)"}`,
    `encodings     ${encodingSummary(tensors)}`,
    "quality report none: a GGUF stores none (crumb quantize measures one)",
    `tensors (${tensors.length}):`,
    ...tensorTable(tensors),
  ];
  io.stdout(lines.join("\n") + "\n");
}

export async function runInfo(argv: readonly string[], io: CliIo): Promise<number> {
  const { options, args } = parseCommand(INFO_COMMAND, argv);
  if (args.length !== 1) throw new UsageError("argv", "give one file: crumb info <model.q4 | model.gguf> (see crumb info --help)");
  const path = userPath(args[0]);
  checkModelPath(path);
  const json = options.json === true;
  const kind = modelKind(path);
  if (kind === "packed") await packedInfo(path, json, io);
  else if (kind === "gguf") ggufInfo(path, json, io);
  else {
    throw new UsageError("file", `${path} is not a packed crumb file or a GGUF; info reads those (crumb quantize makes a packed file from a source checkpoint)`);
  }
  return 0;
}
