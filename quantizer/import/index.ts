/**
 * Checkpoint import entry point: `importModel(path)` recognises a Hugging Face directory,
 * a GGUF file (by its "GGUF" magic) or a llama2.c version-0 `.bin`, and returns one
 * in-memory ModelSource with Hugging Face tensor names.
 */

import { FormatError } from "../../runtime/errors.ts";
import type { ModelSource } from "../../runtime/models/types.ts";
import { fileSource, statOrThrow } from "./byte-source.ts";
import { importGguf } from "./gguf-model.ts";
import { importHfDirectory } from "./hf.ts";
import { importLlama2c, readLlama2cHeader } from "./llama2c.ts";

export { exportHfDirectory } from "./export-hf.ts";
export { importHfDirectory } from "./hf.ts";
export { importGguf, SUPPORTED_GGUF_ARCHITECTURES } from "./gguf-model.ts";
export { readGguf } from "./gguf.ts";
export { importLlama2c } from "./llama2c.ts";
export { readSafetensors, writeSafetensors } from "./safetensors.ts";

export interface ImportOptions {
  /** llama2.c only: a tokenizer.bin to convert (GGUF and HF carry their own). */
  tokenizer?: string;
}

/** Imports a checkpoint directory or file; throws FormatError naming the path when unrecognised. */
export async function importModel(path: string, options: ImportOptions = {}): Promise<ModelSource> {
  if (statOrThrow(path).isDirectory()) return importHfDirectory(path);
  const src = fileSource(path);
  const magic = new TextDecoder("latin1").decode(src.read(0, Math.min(4, src.size)));
  if (magic === "GGUF") return importGguf(path);
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
