/**
 * Maps a Hugging Face model_type to the file that implements it. Variants that differ only
 * in config are aliases (mistral → llama), not files.
 */
import { ConfigError, FormatError, UnsupportedModelError } from "../errors.ts";
import type { Activation, ForwardContext, ForwardOptions, StateLayout } from "../ops/types.ts";
import type { RawConfig } from "./types.ts";
import type { DecoderArgs, DecoderBuffer } from "./llama.ts";
import * as llama from "./llama.ts";
import * as qwen2 from "./qwen2.ts";
import * as qwen3 from "./qwen3.ts";

export type ModelArgs = DecoderArgs;

export interface Architecture {
  readonly modelType: string;
  normalizeConfig(raw: RawConfig): ModelArgs;
  expectedTensors(args: ModelArgs): string[];
  /** The run state the forward pass needs (buffer name → floats per row). */
  stateLayout(args: ModelArgs): StateLayout<StateBuffer>;
  forward(args: ModelArgs, ctx: ForwardContext, tokens: readonly number[], startPos: number, options?: ForwardOptions): Float32Array;
  /** One decoder block on x (n rows of the state's x width) in place (what `forward` runs per layer). */
  decoderLayer(args: ModelArgs, ctx: ForwardContext, layer: number, x: Activation, n: number, startPos: number): void;
  /** Keys and values of one layer from its (normed) inputs into k and v; XQuant caches rematerialise with it. */
  projectKv(
    args: ModelArgs,
    ctx: Pick<ForwardContext, "ops" | "weights">,
    layer: number,
    x: Activation,
    n: number,
    startPos: number,
    k: Activation,
    v: Activation,
  ): void;
}

/** Names of the run-state buffers. */
export type StateBuffer = DecoderBuffer;

const ARCHITECTURES: Record<string, Architecture> = {
  llama: { modelType: "llama", ...llama },
  qwen2: { modelType: "qwen2", ...qwen2 },
  qwen3: { modelType: "qwen3", ...qwen3 },
};

/** Config-only variants of an implemented architecture. */
const ALIASES: Record<string, string> = {
  mistral: "llama",
};

export const SUPPORTED_MODEL_TYPES: readonly string[] = [...Object.keys(ARCHITECTURES), ...Object.keys(ALIASES)];

export function architectureFor(modelType: unknown): Architecture {
  if (typeof modelType !== "string" || modelType.length === 0) {
    throw new ConfigError(`config has no "model_type"; add it to config.json (e.g. "llama")`, { key: "model_type" });
  }
  const resolved = ALIASES[modelType] ?? modelType;
  const arch = ARCHITECTURES[resolved];
  if (arch === undefined) throw new UnsupportedModelError(`model_type "${modelType}" is not supported`, SUPPORTED_MODEL_TYPES);
  return arch;
}

/** Normalises a raw config and returns it with its architecture. */
export function resolveModel(raw: RawConfig): { arch: Architecture; args: ModelArgs } {
  const arch = architectureFor(raw.model_type);
  return { arch, args: arch.normalizeConfig(raw) };
}

/** Throws FormatError naming the first tensor the forward pass needs that the checkpoint lacks. */
export function checkTensors(arch: Architecture, args: ModelArgs, has: (name: string) => boolean, source: string): void {
  for (const name of arch.expectedTensors(args)) {
    if (!has(name)) {
      throw new FormatError(`checkpoint is missing tensor "${name}" required by model_type ${args.modelType}`, {
        file: source,
        tensor: name,
      });
    }
  }
}
