/**
 * The benchmark's model files, generated once and cached by shape, seed and encoding: random
 * weights from the fixture generator (test/fixtures/random-model.ts, same values for every
 * encoding), packed for crumb with the kernels' round-to-nearest test quantiser (the head in
 * config.ts's HEAD_ENCODINGS), and the same weights exported to GGUF for llama.cpp. Tensors are generated one at a time; the
 * first GGUF pass also feeds every missing crumb encoding, so floats are drawn once per file.
 */
import { existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeCheckpointFile } from "../runtime/format/file.ts";
import { packF32 } from "../runtime/format/pack-f16.ts";
import { quantizeRtn } from "../test/fixtures/matmul-fixtures.ts";
import type { ModelSource, TensorEntry } from "../runtime/models/types.ts";
import { exportGguf, type GgufExportType } from "../quantizer/export/gguf-export.ts";
import { headerFor, type PackedTensor } from "../test/fixtures/pack-model.ts";
import { randomModelConfig, randomTensor, tensorShapes } from "../test/fixtures/random-model.ts";
import { type BenchShape, EMBEDDING_ENCODING, EMBEDDING_GGUF_TYPE, ENCODINGS, type EncodingName, fitGroup, HEAD_ENCODINGS } from "./config.ts";

/** Bump when the generated files change, so stale caches are not reused. */
const CACHE_VERSION = 4; // 2: GGUF heads in Q6_K, TQ2_0 rounded as llama-quantize does (issue 14); 3: crumb heads in the default head encoding (issue 13); 4: ternary g256

export function defaultCacheDir(): string {
  return process.env.CRUMB_BENCH_CACHE ?? join(tmpdir(), "crumb-bench-cache");
}

export interface ModelFiles {
  readonly packed: Partial<Record<EncodingName, string>>;
  readonly gguf: Partial<Record<GgufExportType, string>>;
}

/** A ModelSource over the fixture generator that keeps no tensor after it is read. */
function streamingSource(shape: BenchShape, seed: number, onTensor?: (name: string, shape: readonly number[], data: Float32Array) => void): ModelSource {
  const config = randomModelConfig({ ...shape.spec, seed });
  const tensors = new Map<string, TensorEntry>();
  for (const [name, dims] of tensorShapes(config)) {
    tensors.set(name, {
      name,
      shape: dims,
      dtype: "F32",
      read: () => {
        const data = randomTensor(seed, name, dims);
        onTensor?.(name, dims, data);
        return data;
      },
    });
  }
  return { path: `random:${shape.name}-seed${seed}`, format: "hf", config, tensors, chatTemplates: {}, generationConfig: { bos_token_id: 1, eos_token_id: 2 } };
}

/** A tensor in crumb's encoding: the head (lm_head, or a tied embedding table) in the head's, an untied table q8. */
function packTensor(name: string, shape: readonly number[], data: Float32Array, encoding: EncodingName, tied: boolean): PackedTensor {
  if (shape.length === 1) return { name, shape, encoding: { kind: "f32" }, bytes: packF32(data) };
  const isEmbedding = name === "model.embed_tokens.weight";
  const e = name === "lm_head.weight" || (isEmbedding && tied) ? HEAD_ENCODINGS[encoding] : isEmbedding ? EMBEDDING_ENCODING : fitGroup(ENCODINGS[encoding], shape[1]);
  return { name, shape, encoding: e, bytes: quantizeRtn(e, data, shape[0], shape[1]) };
}

export interface PrepareOptions {
  readonly seed: number;
  readonly cacheDir?: string;
  readonly vocabGguf: string;
  readonly log?: (message: string) => void;
}

/** Makes sure the packed files and GGUFs exist for `shape`; returns their paths. */
export async function prepareModels(
  shape: BenchShape,
  encodings: readonly EncodingName[],
  ggufTypes: readonly GgufExportType[],
  options: PrepareOptions,
): Promise<ModelFiles> {
  const dir = join(options.cacheDir ?? defaultCacheDir(), `${shape.name}-seed${options.seed}-v${CACHE_VERSION}`);
  mkdirSync(dir, { recursive: true });
  const packed: Partial<Record<EncodingName, string>> = {};
  const gguf: Partial<Record<GgufExportType, string>> = {};
  for (const e of encodings) packed[e] = join(dir, `${e}.crumb`);
  for (const t of ggufTypes) gguf[t] = join(dir, `${t}.gguf`);
  const missingPacked = encodings.filter((e) => !existsSync(packed[e]!));
  const missingGguf = ggufTypes.filter((t) => !existsSync(gguf[t]!));
  if (missingPacked.length === 0 && missingGguf.length === 0) return { packed, gguf };

  const log = options.log ?? (() => {});
  const started = performance.now();
  const out = new Map<EncodingName, PackedTensor[]>(missingPacked.map((e) => [e, []]));
  const tied = shape.spec.tieEmbeddings === true;
  const collect = (name: string, dims: readonly number[], data: Float32Array) => {
    for (const [e, list] of out) list.push(packTensor(name, dims, data, e, tied));
  };
  const exportOne = (type: GgufExportType, source: ModelSource) => {
    log(`generating ${shape.name} ${type}.gguf${out.size > 0 ? ` and ${[...out.keys()].join(", ")} packed` : ""} ...`);
    exportGguf(source, gguf[type]!, { type, embeddingType: EMBEDDING_GGUF_TYPE, vocabGguf: options.vocabGguf, name: `crumb-bench-${shape.name}` });
  };
  if (missingGguf.length > 0) {
    exportOne(missingGguf[0], streamingSource(shape, options.seed, collect));
  } else {
    log(`generating ${shape.name} packed ${missingPacked.join(", ")} ...`);
    const source = streamingSource(shape, options.seed, collect);
    for (const entry of source.tensors.values()) entry.read();
  }
  const header = headerFor(streamingSource(shape, options.seed));
  for (const [e, tensors] of out) await writeCheckpointFile(packed[e]!, { header, tensors });
  out.clear();
  for (const type of missingGguf.slice(1)) exportOne(type, streamingSource(shape, options.seed));
  log(`generated ${shape.name} files in ${((performance.now() - started) / 1000).toFixed(1)} s (cached in ${dir})`);
  return { packed, gguf };
}
