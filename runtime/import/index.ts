/**
 * Checkpoint import entry point: `importModel(path)` recognises a Hugging Face directory,
 * a GGUF file (by its "GGUF" magic), a crumb checkpoint (by its 0x89 "CRUMB" magic; tensors
 * dequantise from the packed bytes) or a llama2.c version-0 `.bin`, and returns one
 * in-memory ModelSource with Hugging Face tensor names.
 */

import { FormatError } from "../errors.ts";
import type { ModelSource } from "../models/types.ts";
import { describeBadMagic, MAGIC } from "../format/header.ts";
import { fileSource, statOrThrow } from "./byte-source.ts";
import { importCrumb } from "./crumb.ts";
import { importGguf } from "./gguf-model.ts";
import { importHfDirectory } from "./hf.ts";
import { importLlama2c, readLlama2cHeader } from "./llama2c.ts";
import { loadTokenizerFile } from "../tokenizer/load-file.ts";

export { importCrumb, packedSource } from "./crumb.ts";
export { importHfDirectory } from "./hf.ts";
export { importGguf, SUPPORTED_GGUF_ARCHITECTURES } from "./gguf-model.ts";
export { readGguf } from "./gguf.ts";
export { importLlama2c } from "./llama2c.ts";
export { readSafetensors, writeSafetensors } from "./safetensors.ts";

export interface ImportOptions {
  /**
   * A tokenizer file (tokenizer.json, SentencePiece .model, llama2.c tokenizer.bin): required
   * for llama2.c checkpoints, and replaces the tokenizer an HF directory or GGUF carries.
   */
  tokenizer?: string;
}

/** Imports a checkpoint directory or file; throws FormatError naming the path when unrecognised. */
export async function importModel(path: string, options: ImportOptions = {}): Promise<ModelSource> {
  const source = await importCheckpoint(path, options);
  if (options.tokenizer === undefined || source.format === "llama2c") return source;
  return { ...source, tokenizer: loadTokenizerFile(options.tokenizer) };
}

async function importCheckpoint(path: string, options: ImportOptions): Promise<ModelSource> {
  if (statOrThrow(path).isDirectory()) return importHfDirectory(path);
  const src = fileSource(path);
  const magic = new TextDecoder("latin1").decode(src.read(0, Math.min(4, src.size)));
  if (magic === "GGUF") return importGguf(path);
  const head = src.read(0, Math.min(MAGIC.length, src.size));
  if (head.length === MAGIC.length && head.every((b, i) => b === MAGIC[i])) return importCrumb(path);
  // A crumb file whose magic was damaged in transit, or a zip (PyTorch): say so, not "not llama2.c".
  const head8 = src.read(0, Math.min(8, src.size));
  if (String.fromCharCode(...head8).includes("CRUMB") || (head8[0] === 0x50 && head8[1] === 0x4b)) {
    throw new FormatError(describeBadMagic(head8), { file: path, offset: 0 });
  }
  if (path.endsWith(".safetensors")) {
    throw new FormatError(
      "a lone .safetensors file has no config.json; pass the model directory that holds it",
      { file: path },
    );
  }
  if (magic.startsWith("{") || path.endsWith(".json")) {
    throw new FormatError("a JSON file is not a checkpoint; pass the model directory", { file: path });
  }
  try {
    readLlama2cHeader(src);
  } catch (cause) {
    if (!(cause instanceof FormatError)) throw cause;
    throw new FormatError(
      `not a recognised checkpoint (${cause.message}); crumb imports a Hugging Face directory, a .gguf file or a llama2.c .bin`,
      { file: path, offset: cause.offset, cause },
    );
  }
  return importLlama2c(path, options);
}
