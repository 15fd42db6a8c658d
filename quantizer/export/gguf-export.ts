/**
 * Exports any crumb ModelSource (a packed .q2/.q4 file, a Hugging Face directory, a GGUF, a
 * llama2.c .bin) as a GGUF v3 file llama.cpp loads (ggml/docs/gguf.md): the architecture
 * metadata (gguf-metadata.ts), the model's own tokenizer and chat templates
 * (gguf-tokenizer.ts), and the tensors the forward pass reads under llama.cpp's names, each in
 * the type type-plan.ts picks, transcoded exactly where the source's storage allows and
 * rounded to nearest otherwise (tensor-codec.ts), with one line per tensor saying which.
 * For llama-architecture files the q_proj/k_proj rows (and biases) are permuted from Hugging
 * Face's rotate-half RoPE order to the interleaved order llama.cpp's llama graph rotates, as
 * convert_hf_to_gguf.py does (import/rope-permute.ts); qwen2/qwen3 use llama.cpp's NeoX RoPE,
 * which is rotate-half, so they are written as they are. Streams one tensor at a time.
 */
import { InvalidArgumentError } from "../../runtime/errors.ts";
import { resolveModel } from "../../runtime/models/registry.ts";
import type { ModelSource } from "../../runtime/models/types.ts";
import { hfToGgufName } from "../../runtime/import/gguf-names.ts";
import { permuteHfToMeta } from "../../runtime/import/rope-permute.ts";
import { ggufArchitecture, modelMetadata, ropeFreqFactors } from "./gguf-metadata.ts";
import { type GgufMeta, type GgufStreamTensor, writeGgufStream } from "./gguf-stream.ts";
import { tokenizerMetadata, vocabGgufMetadata } from "./gguf-tokenizer.ts";
import { CODECS, describeEncoding, encodeTensor, GGUF_EXPORT_TYPES, type GgufExportType, isExportType } from "./tensor-codec.ts";
import { isLowBit, planType, type PlannedType, roleOf, type TypeOptions } from "./type-plan.ts";

export { GGUF_EXPORT_TYPES, type GgufExportType };

export interface GgufExportOptions extends TypeOptions {
  /** tokenizer.* copied from a llama.cpp vocab-only GGUF, for sources without a tokenizer. */
  readonly vocabGguf?: string;
  /** general.name; default: the source path. */
  readonly name?: string;
  /** Receives one line per tensor (what it became and how exactly) and notes. */
  readonly log?: (line: string) => void;
}

export interface ExportedTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly storage: string;
  readonly type: GgufExportType;
  /** Filled in as the tensor is written. */
  line?: string;
  exact?: boolean;
}

interface Planned {
  readonly hfName: string;
  readonly name: string;
  readonly shape: readonly number[];
  readonly storage: string;
  readonly plan: PlannedType;
  readonly heads: number;
}

function checkType(flag: string, value: string | undefined): void {
  if (value !== undefined && !isExportType(value)) {
    throw new InvalidArgumentError(flag, `${flag} ${value} is not a type crumb writes; choose one of ${GGUF_EXPORT_TYPES.join(", ")}`);
  }
}

/** Writes `source` to `path` as a GGUF; returns what each tensor became. */
export function exportGguf(source: ModelSource, path: string, options: GgufExportOptions = {}): ExportedTensor[] {
  checkType("--type", options.type);
  checkType("--output-type", options.outputType);
  checkType("--embedding-type", options.embeddingType);
  const log = options.log ?? (() => undefined);
  const { arch, args } = resolveModel(source.config);
  const ggufArch = ggufArchitecture(args);
  const wanted = new Set(arch.expectedTensors(args));
  const hasOutput = wanted.has("lm_head.weight");
  const notes: string[] = [];
  const entries = [...source.tensors.values()];
  const unread = entries.filter((t) => !wanted.has(t.name)).map((t) => t.name);
  if (unread.length > 0) {
    const shown = unread.length > 4 ? `${unread.slice(0, 4).join(", ")}, ...` : unread.join(", ");
    notes.push(`skipped ${unread.length} tensors the forward pass does not read (llama.cpp has no place for them): ${shown}`);
  }
  const layout = entries.filter((t) => wanted.has(t.name)).map((t) => {
    const name = hfToGgufName(t.name);
    if (name === undefined) throw new InvalidArgumentError("source", `tensor ${t.name} has no llama.cpp name`);
    const role = roleOf(name, t.shape, hasOutput);
    const rotary = ggufArch === "llama" && /\.attn_[qk]\.(weight|bias)$/.test(name);
    const heads = !rotary ? 0 : name.includes("attn_q") ? args.numHeads : args.numKvHeads;
    return { t, name, role, heads };
  });
  const missing = [...wanted].filter((n) => !source.tensors.has(n));
  if (missing.length > 0) throw new InvalidArgumentError("source", `${source.path} lacks ${missing.join(", ")}, which ${args.modelType} needs`);

  const cols = (shape: readonly number[]) => shape[shape.length - 1]!;
  const matrixTypes = layout.filter((l) => l.role === "matrix").map((l) => planType("matrix", l.t.dtype, cols(l.t.shape), options, false).type);
  const lowBit = isLowBit(matrixTypes);
  const planned: Planned[] = layout.map(({ t, name, role, heads }) => ({
    hfName: t.name,
    name,
    shape: t.shape,
    storage: t.dtype,
    plan: planType(role, t.dtype, cols(t.shape), options, lowBit),
    heads,
  }));

  const counts = new Map<string, number>();
  for (const type of matrixTypes) counts.set(type, (counts.get(type) ?? 0) + 1);
  const fileType = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? "F32";
  const quantized = planned.some((p) => !["F32", "F16", "BF16"].includes(p.plan.type));
  const { entries: modelKeys, notes: modelNotes } = modelMetadata({ args, name: options.name ?? source.path, fileType, quantized });
  notes.push(...modelNotes);
  const metadata = new Map<string, GgufMeta>([...modelKeys, ...tokenizerKeys(source, args.vocabSize, options.vocabGguf)]);

  const exported: ExportedTensor[] = [];
  const tensors: GgufStreamTensor[] = planned.map((p) => {
    const record: ExportedTensor = { name: p.name, shape: p.shape, storage: p.storage, type: p.plan.type };
    exported.push(record);
    return {
      name: p.name,
      shape: p.shape,
      type: p.plan.type,
      encode: () => {
        const raw = source.tensors.get(p.hfName)!.read();
        const values = p.heads > 0 ? permuteHfToMeta(raw, p.heads, p.shape.length > 1 ? cols(p.shape) : 1) : raw;
        const result = encodeTensor(values, p.storage, p.plan.type);
        record.exact = result.exactValues === result.values;
        record.line = describeEncoding(p.name, p.storage, p.plan.type, result, p.plan.fallback);
        log(record.line);
        return result.bytes;
      },
    };
  });
  const factors = ropeFreqFactors(args);
  if (factors !== undefined) {
    tensors.push({ name: "rope_freqs.weight", shape: [factors.length], type: "F32", encode: () => CODECS.F32.quantize(factors) });
    notes.push(`llama3 rope scaling written as rope_freqs.weight (${factors.length} frequency factors)`);
  }
  for (const note of notes) log(note);
  writeGgufStream(path, metadata, tensors);
  return exported;
}

function tokenizerKeys(source: ModelSource, vocabSize: number, vocabGguf: string | undefined): Map<string, GgufMeta> {
  if (source.tokenizer !== undefined) return tokenizerMetadata(source.tokenizer, vocabSize, source.chatTemplates);
  if (vocabGguf !== undefined) return vocabGgufMetadata(vocabGguf, vocabSize);
  throw new InvalidArgumentError(
    "tokenizer",
    `${source.path} carries no tokenizer, and llama.cpp needs one in the GGUF; pass --tokenizer <tokenizer.json|tokenizer.model|tokenizer.bin>`,
  );
}
