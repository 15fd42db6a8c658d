/**
 * What the benchmark measures: the model shapes, crumb's weight encodings with the llama.cpp
 * type each is compared against, and the row format of the results (bench.json, --json).
 */
import type { Encoding } from "../runtime/format/encoding.ts";
import type { RandomModelSpec } from "../test/fixtures/random-model.ts";
import type { GgufExportType } from "../quantizer/export/gguf-export.ts";
import type { MethodName } from "../quantizer/methods/index.ts";
import { type Bits, defaultHead, type HeadSpec } from "../quantizer/recipe.ts";

export interface BenchShape {
  readonly name: string;
  readonly spec: RandomModelSpec;
}

const llama = (name: string, hidden: number, intermediate: number, layers: number, heads: number, kvHeads: number, vocab = 32000): BenchShape => ({
  name,
  spec: { arch: "llama", hidden, intermediate, layers, heads, kvHeads, vocab, maxPositions: 4096 },
});

/** Llama 3.x RoPE: theta 500000 with the llama3 frequency scaling of Llama-3.2's config. */
const LLAMA3_ROPE = {
  ropeTheta: 500000,
  ropeScaling: { rope_type: "llama3", factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
};

/** A tied-embedding shape (the head is the embedding table), head_dim 64 as in both real models. */
const tied = (name: string, spec: Omit<RandomModelSpec, "tieEmbeddings" | "headDim" | "maxPositions">): BenchShape => ({
  name,
  spec: { ...spec, headDim: 64, tieEmbeddings: true, maxPositions: 4096 },
});

export const SHAPES: Readonly<Record<string, BenchShape>> = {
  "134M": llama("134M", 768, 2048, 12, 12, 12),
  "1.1B": llama("1.1B", 2048, 5632, 22, 32, 4),
  /** Qwen2.5-0.5B: q/k/v biases, 151936-token vocabulary, tied embeddings (config.json of the HF repo). */
  "qwen2.5-0.5B": tied("qwen2.5-0.5B", { arch: "qwen2", hidden: 896, intermediate: 4864, layers: 24, heads: 14, kvHeads: 2, vocab: 151936, ropeTheta: 1000000 }),
  /** Llama-3.2-1B: 128256-token vocabulary, tied embeddings, llama3 RoPE scaling. */
  "llama3.2-1B": tied("llama3.2-1B", { arch: "llama", hidden: 2048, intermediate: 8192, layers: 16, heads: 32, kvHeads: 8, vocab: 128256, ...LLAMA3_ROPE }),
  /**
   * For the harness test: every dimension still tiles ggml's 256-weight super-blocks; the
   * vocab keeps the first 512 Llama 2 tokens (specials, bytes, first merges).
   */
  tiny: llama("tiny", 256, 512, 2, 4, 2, 512),
  /**
   * The two real shapes' kinds at test size, tied. tiny-qwen2's hidden 384 is not a multiple of
   * 256, as Qwen2.5-0.5B's 896 is not: its GGUF gets the same fallbacks (Q4_0 matrices, Q8_0 head).
   */
  "tiny-qwen2": tied("tiny-qwen2", { arch: "qwen2", hidden: 384, intermediate: 512, layers: 2, heads: 6, kvHeads: 2, vocab: 512, ropeTheta: 1000000 }),
  "tiny-llama3": tied("tiny-llama3", { arch: "llama", hidden: 256, intermediate: 512, layers: 2, heads: 4, kvHeads: 2, vocab: 512, ...LLAMA3_ROPE }),
};

export const ENCODING_NAMES = ["q2", "q3", "q4", "ternary"] as const;
export type EncodingName = typeof ENCODING_NAMES[number];

const bitplane = (bits: 2 | 3 | 4): Encoding => ({ kind: "bitplane", bits, group: 64, scales: "zero-point" });

/**
 * The decoder layers' 2-D weights. Ternary is grouped by 256 as TQ2_0 is (2.0625 bits per
 * weight in both), which is what a TQ2_0 GGUF transcodes to and loses nothing for a BitNet
 * model (one scale per tensor in training); a row narrower than a group takes the largest
 * group that divides it, as the quantizer's width policy does (Qwen2.5-0.5B's 896: 128).
 */
export const ENCODINGS: Readonly<Record<EncodingName, Encoding>> = {
  q2: bitplane(2),
  q3: bitplane(3),
  q4: bitplane(4),
  ternary: { kind: "ternary", group: 256, planes: 1 },
};

/** `e` with its group narrowed (256 → 128 → 64 → 32) until it divides `cols` (quantizer/recipe.ts's width policy). */
export function fitGroup(e: Encoding, cols: number): Encoding {
  if (!("group" in e) || e.kind === "q8") return e;
  let group = e.group;
  while (group > 32 && cols % group !== 0) group /= 2;
  if (cols % group !== 0) throw new Error(`bench: cols ${cols} is not a multiple of 32`);
  return { ...e, group } as Encoding;
}

/** The encoding of a `--head` spec (recipe.ts) as the quantizer packs it. */
function headEncoding(h: HeadSpec): Encoding {
  if (h.format === "f32" || h.format === "f16") return { kind: h.format };
  if (h.format === "q8") return { kind: "q8", group: h.group ?? 32 };
  return { kind: "bitplane", bits: h.format === "q4" ? 4 : 3, group: h.group ?? 32, scales: "zero-point" };
}

/** The quantizer method whose file each encoding stands for: the best of its width on stories260K. */
const BEST_METHOD: Readonly<Record<EncodingName, [Bits, MethodName]>> = { q2: [2, "gptq"], q3: [3, "gptq"], q4: [4, "gptq"], ternary: ["ternary", "ptqtp"] };

/**
 * crumb's output head (lm_head, or the tied embedding table, stored once): the quantizer's
 * default head for a body of that width made with its best method (recipe.ts defaultHead;
 * bench/results/quality.md, "Output head"): q4 g64 for q2 (a gptq file's), q8 g128 for the
 * others. A 2-bit rtn file would get q8 g128. llama.cpp's files carry llama-quantize's head
 * (src/llama-quant.cpp, llama_tensor_get_type_impl: the output tensor, or token_embd when the
 * file has no output.weight (has_tied_embeddings), becomes Q6_K unless the file type is Q8_0 or
 * the row does not fill the file type's blocks, then Q8_0; quantizer/export/type-plan.ts).
 */
export const HEAD_ENCODINGS: Readonly<Record<EncodingName, Encoding>> = Object.fromEntries(
  ENCODING_NAMES.map((e) => [e, headEncoding(defaultHead(...BEST_METHOD[e]))]),
) as Record<EncodingName, Encoding>;

/**
 * Untied token embeddings (looked up by row): int8 per 32 weights with an f16 scale in both
 * engines (crumb q8 g32 and ggml Q8_0 are the same format), as quantised checkpoints usually
 * keep them at 8 bits (llama-quantize would keep a Q2_K file's at Q2_K; only get_rows reads it).
 */
export const EMBEDDING_ENCODING: Encoding = { kind: "q8", group: 32 };
export const EMBEDDING_GGUF_TYPE: GgufExportType = "Q8_0";

/**
 * The llama.cpp type each crumb encoding is compared with (nearest bits per weight), for every
 * layer matrix: what `llama-quantize --pure --output-tensor-type q6_k` writes (llama-quantize's
 * own Q2_K mix would raise attn_v, attn_output and ffn_down to Q3_K/Q4_K, types crumb's exporter
 * does not write). Rows that do not fill the type's blocks fall back as llama-quantize's do
 * (Qwen2.5-0.5B's 896 columns: Q2_K → Q4_0).
 */
export const LLAMACPP_TYPE: Readonly<Record<EncodingName, GgufExportType>> = {
  q2: "Q2_K",
  q3: "Q2_K",
  q4: "Q4_0",
  ternary: "TQ2_0",
};

export interface LlamaCppResult {
  readonly type: string;
  readonly decode_tps: number;
  readonly prefill_tps: number;
  readonly ttft_ms: number;
  readonly rss_mb: number;
}

/** JavaScript runtime crumb runs under in a benchmark row. */
export type CrumbRuntime = "bun" | "deno";
export const CRUMB_RUNTIMES: readonly CrumbRuntime[] = ["bun", "deno"];

export interface BenchRow {
  readonly shape: string;
  /** Runtime of the crumb side (absent in rows measured before runtimes were compared: bun). */
  readonly runtime?: CrumbRuntime;
  readonly encoding: EncodingName;
  readonly kv: string;
  readonly ctx: number;
  readonly threads: number;
  readonly decode_tps: number;
  readonly prefill_tps: number;
  readonly ttft_ms: number;
  readonly rss_mb: number;
  readonly kv_bytes_per_token: number;
  readonly llamacpp: LlamaCppResult | null;
}

/**
 * Decode steps both engines run before the timed prompt (then their caches are cleared): the
 * steady state a server reaches after its first request. Without them crumb's first 16 decode
 * steps with a worker pool ran at about 0.75x of the later ones (the workers' decode code not
 * yet compiled by the JIT), which a 32-step measurement mostly averaged in.
 */
export const WARMUP_DECODE_STEPS = 16;

/** One timed run in a fresh process: fill the cache to ctx - decodeTokens, then decode. */
export interface RunSpec {
  readonly engine: "crumb" | "llamacpp";
  /** Runtime of the subprocess (crumb runs; llama.cpp always runs under Bun). */
  readonly runtime?: CrumbRuntime;
  readonly model: string;
  readonly threads: number;
  readonly ctx: number;
  readonly kv: string;
  readonly decodeTokens: number;
  readonly seed: number;
  /** Prompt ids are drawn below this (the model's vocab size). */
  readonly vocab: number;
}

export interface RunResult {
  readonly decode_tps: number;
  readonly prefill_tps: number;
  readonly ttft_ms: number;
  readonly rss_mb: number;
  readonly kv_bytes_per_token: number;
  readonly prefill_tokens: number;
  readonly decode_tokens: number;
  /** Decoded ids (a sanity check that both engines actually generated). */
  readonly ids: readonly number[];
}

/** Deterministic prompt ids in [3, vocab): no BOS/EOS/unk, the same for both engines. */
export function promptIds(n: number, seed: number, vocab = 32000): number[] {
  let a = (seed * 2654435761) >>> 0;
  const ids: number[] = [];
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a ^ (a >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
    ids.push(3 + (a % (vocab - 3)));
  }
  return ids;
}

/** Peak resident set of this process in MiB (Linux VmHWM; elsewhere the current RSS). */
export async function peakRssMb(): Promise<number> {
  try {
    const { readFileSync } = await import("node:fs");
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    if (match !== null) return Number(match[1]) / 1024;
  } catch {
    // not Linux: fall through to the current RSS
  }
  return process.memoryUsage().rss / (1024 * 1024);
}

/** Greedy choice over one token's logits. */
export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}
