/**
 * One crumb measurement, run inside a fresh process: load the packed file into WASM memory,
 * build the WASM backend, warm it up with one token and WARMUP_DECODE_STEPS decode steps (then
 * reset), then time the prompt (ctx - N tokens,
 * prefill in GEMM tiles, up to the first greedy token = time to first token) and N greedy
 * decode steps. Uses the backend's forward pass directly, as the llama.cpp side uses its
 * evaluate loop: no sampler beyond an argmax, no detokenisation.
 */
import { loadPackedModel } from "../runtime/engine/packed-model.ts";
import { createWasmBackend, KV_TYPES, type KvType } from "../runtime/engine/wasm-backend.ts";
import { resolveModel } from "../runtime/models/registry.ts";
import { InvalidArgumentError } from "../runtime/errors.ts";
import { argmax, peakRssMb, promptIds, type RunResult, type RunSpec, WARMUP_DECODE_STEPS } from "./config.ts";

/** KV cache types the WASM backend accepts in this build. */
export function supportedKvTypes(): readonly string[] {
  return KV_TYPES;
}

export async function measureCrumb(spec: RunSpec): Promise<RunResult> {
  if (!(KV_TYPES as readonly string[]).includes(spec.kv)) {
    throw new InvalidArgumentError("kv", `--kv ${spec.kv} is not supported by this backend; choose one of ${KV_TYPES.join(", ")}`);
  }
  const kv = spec.kv as KvType;
  const prefillTokens = spec.ctx - spec.decodeTokens;
  if (prefillTokens < 1) throw new InvalidArgumentError("ctx", `ctx ${spec.ctx} leaves no prompt before ${spec.decodeTokens} decode tokens`);
  // Fit check only (nothing is allocated from it): an fp32 cache of keys and values, or of
  // the layer inputs, whichever is larger, bounds every KV mode; plus scratch.
  const args = await loadArgs(spec.model);
  const rowFloats = Math.max(2 * args.numKvHeads * args.headDim, args.hiddenSize);
  const reserveBytes = args.numLayers * spec.ctx * rowFloats * 4 + 64 * 1024 * 1024;
  const model = await loadPackedModel(spec.model, { reserveBytes });
  const backend = await createWasmBackend(model, { threads: spec.threads, kv, contextLength: spec.ctx });
  try {
    const vocab = spec.vocab;
    let warm = argmax(backend.forward([promptIds(1, spec.seed + 1, vocab)[0]]));
    for (let i = 0; i < WARMUP_DECODE_STEPS; i++) warm = argmax(backend.forward([warm]));
    backend.reset();

    const prompt = promptIds(prefillTokens, spec.seed, vocab);
    const t0 = performance.now();
    let token = argmax(backend.forward(prompt));
    const ttft = performance.now() - t0;
    const ids = [token];
    const t1 = performance.now();
    for (let i = 0; i < spec.decodeTokens; i++) {
      token = argmax(backend.forward([token]));
      ids.push(token);
    }
    const decodeMs = performance.now() - t1;
    return {
      decode_tps: (spec.decodeTokens * 1000) / decodeMs,
      prefill_tps: (prefillTokens * 1000) / ttft,
      ttft_ms: ttft,
      rss_mb: await peakRssMb(),
      kv_bytes_per_token: backend.cache.bytesPerToken,
      prefill_tokens: prefillTokens,
      decode_tokens: spec.decodeTokens,
      ids,
    };
  } finally {
    await backend.dispose();
  }
}

async function loadArgs(path: string) {
  const { openCheckpoint } = await import("../runtime/format/file.ts");
  const file = await openCheckpoint(path);
  try {
    const { args } = resolveModel(file.header.config);
    return args;
  } finally {
    await file.close();
  }
}
