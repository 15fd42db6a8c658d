/**
 * The fixed 64-byte preamble of a crumb checkpoint (magic, version, flags, section lengths,
 * header + table checksum) and the JSON header that follows it (config, tokenizer, chat
 * templates, generation defaults, quantisation recipe, quality report, extra). FORMAT.md
 * next to this file is the byte-level spec; this module is its single implementation.
 */

import { FormatError, InvalidArgumentError } from "../errors.ts";

/** 0x89 "CRUMB" CR LF: the high byte catches 7-bit transfers, CR LF catches text-mode line-ending rewrites. */
export const MAGIC = Uint8Array.of(0x89, 0x43, 0x52, 0x55, 0x4d, 0x42, 0x0d, 0x0a);
export const FORMAT_VERSION = 2;
export const PREAMBLE_SIZE = 64;
/** Every tensor's data starts at an absolute file offset that is a multiple of this. */
export const TENSOR_ALIGNMENT = 64;
/** Flag bits a version-1 reader understands (none yet); any other set bit is rejected. */
export const KNOWN_FLAGS = 0;

/** Byte offsets of the preamble fields. */
export const PREAMBLE = {
  magic: 0,
  version: 8,
  flags: 12,
  headerLength: 16,
  tableLength: 24,
  dataOffset: 32,
  fileLength: 40,
  tensorCount: 48,
  reserved: 52,
  metaChecksum: 60,
} as const;

/** tokenizer.json and tokenizer_config.json contents (same shape as models/types.ts TokenizerFiles). */
export interface CheckpointTokenizer {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

/** The JSON header. Key order in the file is the order of this interface. */
export interface CheckpointHeader {
  /** Hugging Face style config.json (model_type, hidden_size, ...). */
  config: Record<string, unknown>;
  /** Tokenizer files, or null when the model ships without one. */
  tokenizer: CheckpointTokenizer | null;
  /** Named chat templates, "default" first; {} when none. */
  chatTemplates: Record<string, string>;
  /** generation_config.json contents, or {}. */
  generationConfig: Record<string, unknown>;
  /** The quantisation recipe that produced the file. */
  quantization: Record<string, unknown>;
  /** The quality report (KL divergence, top-1 agreement, perplexity ...). */
  report: Record<string, unknown>;
  /** Free-form additions (e.g. XQuant SVD info) that need no format change. */
  extra: Record<string, unknown>;
}

export const HEADER_KEYS = [
  "config",
  "tokenizer",
  "chatTemplates",
  "generationConfig",
  "quantization",
  "report",
  "extra",
] as const;

/** The decoded preamble; lengths and offsets are plain numbers (checked to be safe integers). */
export interface Preamble {
  version: number;
  flags: number;
  headerLength: number;
  tableLength: number;
  dataOffset: number;
  fileLength: number;
  tensorCount: number;
  metaChecksum: number;
}

export function alignUp(value: number, alignment = TENSOR_ALIGNMENT): number {
  return Math.ceil(value / alignment) * alignment;
}

/** Serialises the preamble; metaChecksum is written as given (the writer patches it in last). */
export function encodePreamble(p: Preamble): Uint8Array {
  const bytes = new Uint8Array(PREAMBLE_SIZE);
  const view = new DataView(bytes.buffer);
  bytes.set(MAGIC, PREAMBLE.magic);
  view.setUint32(PREAMBLE.version, p.version, true);
  view.setUint32(PREAMBLE.flags, p.flags, true);
  view.setBigUint64(PREAMBLE.headerLength, BigInt(p.headerLength), true);
  view.setBigUint64(PREAMBLE.tableLength, BigInt(p.tableLength), true);
  view.setBigUint64(PREAMBLE.dataOffset, BigInt(p.dataOffset), true);
  view.setBigUint64(PREAMBLE.fileLength, BigInt(p.fileLength), true);
  view.setUint32(PREAMBLE.tensorCount, p.tensorCount, true);
  view.setUint32(PREAMBLE.metaChecksum, p.metaChecksum, true);
  return bytes;
}

/** Explains a magic mismatch: text-mode damage, a known foreign format, or simply not a checkpoint. */
export function describeBadMagic(magic: Uint8Array): string {
  const ascii = String.fromCharCode(...magic);
  const hex = Array.from(magic, (b) => b.toString(16).padStart(2, "0")).join(" ");
  if (ascii.includes("CRUMB")) {
    return `damaged crumb checkpoint magic [${hex}]: the file went through a text-mode or 7-bit transfer ` +
      `(line endings or the high bit were rewritten); copy it again in binary mode`;
  }
  if (ascii.startsWith("GGUF")) {
    return "this is a GGUF file, not a crumb checkpoint; convert it with `crumb quantize <file.gguf> -o <out>`";
  }
  if (magic[0] === 0x50 && magic[1] === 0x4b) {
    return "this is a zip archive (a PyTorch .bin/.pt?), not a crumb checkpoint; convert the model with `crumb quantize`";
  }
  if (magic[0] === 0x7b || (magic.length >= 8 && magic[7] === 0 && magic[6] === 0 && magic[5] === 0)) {
    return "this looks like a safetensors or JSON file, not a crumb checkpoint; convert the model with `crumb quantize`";
  }
  return `not a crumb checkpoint: magic [${hex}], expected [89 43 52 55 4d 42 0d 0a]; produce one with \`crumb quantize\``;
}

function readU64(view: DataView, at: number, field: string, file?: string): number {
  const value = view.getBigUint64(at, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new FormatError(`preamble field ${field} holds ${value}, larger than any file; the file is corrupt`, {
      file,
      offset: at,
    });
  }
  return Number(value);
}

/**
 * Decodes and checks the preamble against the real file size. Checks, in order: enough
 * bytes, magic, version, flags, reserved bytes, section lengths against the file size.
 * The meta checksum and the exact file length are checked by the reader once the header
 * and table are in hand (it can then name the tensor a truncation cuts through).
 */
export function decodePreamble(bytes: Uint8Array, fileSize: number, file?: string): Preamble {
  if (bytes.length < MAGIC.length || fileSize < MAGIC.length) {
    throw new FormatError(
      `file is ${fileSize} bytes, too short to be a crumb checkpoint (truncated in the 8-byte magic)`,
      { file, offset: Math.min(fileSize, bytes.length) },
    );
  }
  const magic = bytes.subarray(0, MAGIC.length);
  if (!magic.every((b, i) => b === MAGIC[i])) {
    throw new FormatError(describeBadMagic(magic), { file, offset: 0 });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length >= PREAMBLE.flags) {
    const version = view.getUint32(PREAMBLE.version, true);
    if (version > FORMAT_VERSION) {
      throw new FormatError(`file version ${version} is newer than this crumb (${FORMAT_VERSION}): upgrade crumb`, {
        file,
        offset: PREAMBLE.version,
      });
    }
    if (version < 1) {
      throw new FormatError(`file version ${version} does not exist (versions start at 1); the file is corrupt`, {
        file,
        offset: PREAMBLE.version,
      });
    }
  }
  if (bytes.length < PREAMBLE_SIZE || fileSize < PREAMBLE_SIZE) {
    const end = Math.min(fileSize, bytes.length);
    throw new FormatError(
      `file is truncated inside the ${PREAMBLE_SIZE}-byte preamble: it ends at byte ${end}; re-download or re-quantize it`,
      { file, offset: end },
    );
  }
  const flags = view.getUint32(PREAMBLE.flags, true);
  if ((flags & ~KNOWN_FLAGS) !== 0) {
    throw new FormatError(
      `unknown flags 0x${flags.toString(16)} in a version ${FORMAT_VERSION} file: written by a newer crumb ` +
        `or corrupt; upgrade crumb or re-quantize`,
      { file, offset: PREAMBLE.flags },
    );
  }
  for (let at = PREAMBLE.reserved; at < PREAMBLE.metaChecksum; at++) {
    if (bytes[at] !== 0) {
      throw new FormatError(`reserved preamble byte ${at} is 0x${bytes[at].toString(16)}, must be 0; the file is corrupt`, {
        file,
        offset: at,
      });
    }
  }
  const p: Preamble = {
    version: view.getUint32(PREAMBLE.version, true),
    flags,
    headerLength: readU64(view, PREAMBLE.headerLength, "headerLength", file),
    tableLength: readU64(view, PREAMBLE.tableLength, "tableLength", file),
    dataOffset: readU64(view, PREAMBLE.dataOffset, "dataOffset", file),
    fileLength: readU64(view, PREAMBLE.fileLength, "fileLength", file),
    tensorCount: view.getUint32(PREAMBLE.tensorCount, true),
    metaChecksum: view.getUint32(PREAMBLE.metaChecksum, true),
  };
  const metaEnd = PREAMBLE_SIZE + p.headerLength + p.tableLength;
  if (metaEnd > fileSize) {
    const section = PREAMBLE_SIZE + p.headerLength > fileSize ? "JSON header" : "tensor table";
    throw new FormatError(
      `file ends at byte ${fileSize}, inside the ${section} (header ${p.headerLength} + table ${p.tableLength} bytes ` +
        `run to byte ${metaEnd}): the file is truncated or its length fields are corrupt; re-download or re-quantize it`,
      { file, offset: fileSize },
    );
  }
  if (p.dataOffset !== alignUp(metaEnd)) {
    throw new FormatError(
      `data section starts at byte ${p.dataOffset}, expected ${alignUp(metaEnd)} (the end of the tensor table ` +
        `rounded up to ${TENSOR_ALIGNMENT}); the file is corrupt`,
      { file, offset: PREAMBLE.dataOffset },
    );
  }
  if (p.fileLength < p.dataOffset) {
    throw new FormatError(`file length field ${p.fileLength} is before the data section (${p.dataOffset}); the file is corrupt`, {
      file,
      offset: PREAMBLE.fileLength,
    });
  }
  return p;
}

/** Rejects values JSON cannot carry faithfully (NaN, Infinity, BigInt) instead of silently writing null. */
function jsonReplacer(this: unknown, key: string, value: unknown): unknown {
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new InvalidArgumentError("header", `header value "${key}" is ${value}, which JSON cannot hold; store null or a string`);
  }
  if (typeof value === "bigint") {
    throw new InvalidArgumentError("header", `header value "${key}" is a BigInt (${value}), which JSON cannot hold; store it as a number or string`);
  }
  return value;
}

/** The header as UTF-8 JSON: top-level keys in HEADER_KEYS order, nested objects in their insertion order. */
export function encodeHeader(header: CheckpointHeader): Uint8Array {
  validateHeader(header, (what) => new InvalidArgumentError("header", `checkpoint header ${what}`));
  const ordered: Record<string, unknown> = {};
  for (const key of HEADER_KEYS) ordered[key] = header[key];
  return new TextEncoder().encode(JSON.stringify(ordered, jsonReplacer));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Checks the header's shape; `error` builds the exception (writer input vs. file contents). */
function validateHeader(value: unknown, error: (what: string) => Error): asserts value is CheckpointHeader {
  const fail = (what: string): never => {
    throw error(what);
  };
  if (!isPlainObject(value)) fail("is not an object");
  const h = value as Record<string, unknown>;
  for (const key of ["config", "chatTemplates", "generationConfig", "quantization", "report", "extra"]) {
    if (!isPlainObject(h[key])) fail(`key "${key}" must be an object, got ${JSON.stringify(h[key]) ?? "undefined"}`);
  }
  for (const [name, template] of Object.entries(h.chatTemplates as Record<string, unknown>)) {
    if (typeof template !== "string") fail(`chat template "${name}" must be a string`);
  }
  if (h.tokenizer !== null) {
    if (!isPlainObject(h.tokenizer)) fail(`key "tokenizer" must be null or {tokenizerJson, tokenizerConfig}`);
    const t = h.tokenizer as Record<string, unknown>;
    if (!isPlainObject(t.tokenizerJson) || !isPlainObject(t.tokenizerConfig)) {
      fail(`key "tokenizer" must hold objects tokenizerJson and tokenizerConfig`);
    }
  }
}

/** Decodes and validates the JSON header section (bytes already checksum-verified). */
export function decodeHeader(bytes: Uint8Array, file?: string, offset = PREAMBLE_SIZE): CheckpointHeader {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new FormatError("JSON header is not valid UTF-8; the file is corrupt", { file, offset, cause });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new FormatError(`JSON header does not parse (${(cause as Error).message}); the file is corrupt`, {
      file,
      offset,
      cause,
    });
  }
  validateHeader(parsed, (what) => new FormatError(`JSON header ${what}; the file is corrupt`, { file, offset }));
  const out = {} as Record<string, unknown>;
  for (const key of HEADER_KEYS) out[key] = (parsed as unknown as Record<string, unknown>)[key];
  return out as unknown as CheckpointHeader;
}
