/**
 * The in-memory model every importer produces and every forward pass consumes:
 * a Hugging Face style raw config plus named fp32 tensors (HF names, PyTorch row-major
 * layout: a Linear weight is (out_features, in_features)), with the tokenizer files and
 * chat templates that travel with it.
 */

/** A config.json object as Hugging Face writes it (model_type, hidden_size, ...). */
export type RawConfig = Record<string, unknown>;

/** One named tensor, dequantised to fp32 on demand so large checkpoints stream. */
export interface TensorEntry {
  readonly name: string;
  /** Row-major shape, outermost first, as PyTorch reports it. */
  readonly shape: readonly number[];
  /** Storage type in the source file ("F32", "F16", "BF16", "Q8_0", "Q4_0", ...). */
  readonly dtype: string;
  /** Reads (and dequantises) the values. Throws FormatError when the bytes are bad. */
  read(): Float32Array;
}

/** tokenizer.json and tokenizer_config.json contents, already parsed. */
export interface TokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

export type SourceFormat = "hf" | "gguf" | "llama2c" | "crumb";

/** A checkpoint imported into memory, whatever file format it came from. */
export interface ModelSource {
  /** Path it was read from (directory or file). */
  readonly path: string;
  readonly format: SourceFormat;
  /** HF-style config; runtime/models/registry.ts normalises it. */
  readonly config: RawConfig;
  /** Tensors under their Hugging Face names. */
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  /** Present when the checkpoint carries or was given a tokenizer. */
  readonly tokenizer?: TokenizerFiles;
  /** Named chat templates ("default" first); empty when the model has none. */
  readonly chatTemplates: Readonly<Record<string, string>>;
  /** generation_config.json contents (eos_token_id, temperature, ...), or {}. */
  readonly generationConfig: Readonly<Record<string, unknown>>;
  /** Embedding pooling the model declares (sentence-transformers 1_Pooling/config.json), if any. */
  readonly pooling?: "mean" | "last";
}
