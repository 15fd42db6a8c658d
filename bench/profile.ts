/**
 * Where one crumb decode step spends its time: `bun bench/profile.ts --shape 1.1B --encoding q2
 * --threads 1 --ctx 128`. Fills the cache through the WASM ops, then runs decode steps through
 * the architecture's forward pass with timed wrappers around `linear` (LUT tables + matmul,
 * split into the layers' matrices and lm_head) and the attention state's `attend` (cache store
 * + attention); the rest is norms, RoPE, activations, embedding and JS glue. `--threads N`
 * runs the matmuls and the attention on one N-thread pool, as the engine does (q/k/v and
 * gate/up as one pool batch each, so q_proj's time includes k_proj and v_proj). Also reports
 * the weight bytes streamed per token, the bandwidth the matmuls reach and the pool batches
 * per token (each one a wait for every thread).
 */
import { fileURLToPath } from "node:url";
import { loadPackedModel } from "../runtime/engine/packed-model.ts";
import { createKvCache } from "../runtime/engine/kv-cache/create-kv-cache.ts";
import { KV_MODES, type KvMode } from "../runtime/engine/kv-cache/types.ts";
import { createLatentCodec } from "../runtime/engine/kv-cache/xquant-svd.ts";
import { InvalidArgumentError } from "../runtime/errors.ts";
import { createPool, disposePool, type Pool } from "../runtime/threads/pool.ts";
import { resolveModel } from "../runtime/models/registry.ts";
import { ropeInverseFrequencies } from "../runtime/models/rope-frequencies.ts";
import { createWasmOps, MAX_TOKENS_PER_CALL, packedWeightStore, type WasmMatrix } from "../runtime/ops/wasm-ops.ts";
import type { ForwardContext } from "../runtime/ops/types.ts";
import { argmax, ENCODING_NAMES, type EncodingName, promptIds, SHAPES } from "./config.ts";
import { prepareModels } from "./models.ts";

export interface DecodeProfile {
  /** The prompt's prefill (ctx − steps − 8 tokens, in MAX_TOKENS_PER_CALL chunks), per prompt token. */
  readonly prefill: { readonly tokens: number; readonly msPerToken: number; readonly linearMs: number; readonly attentionMs: number; readonly batchesPerToken: number };
  readonly msPerToken: number;
  readonly linearMs: number;
  readonly lmHeadMs: number;
  readonly attentionMs: number;
  readonly otherMs: number;
  readonly weightBytesPerToken: number;
  readonly matmulGBps: number;
  readonly batchesPerToken: number;
}

export async function profileDecode(modelPath: string, options: { threads: number; ctx: number; kv: string; steps: number; seed: number }): Promise<DecodeProfile> {
  if (!(KV_MODES as readonly string[]).includes(options.kv)) {
    throw new InvalidArgumentError("kv", `--kv ${options.kv}: choose one of ${KV_MODES.join(", ")}`);
  }
  const model = await loadPackedModel(modelPath);
  const { arch, args } = resolveModel(model.header.config);
  // One pool, as the engine has: the matmuls and the attention share it.
  const pool = options.threads > 1 ? await createPool({ threads: options.threads, kernels: model.kernels }) : undefined;
  let batches = 0;
  const countingPool: Pool | undefined = pool === undefined ? undefined : { ...pool, runTasks: (tasks) => (batches++, pool.runTasks(tasks)) };
  try {
    const ops = createWasmOps(model.kernels, countingPool, { matrices: model.matrices });
    const weights = packedWeightStore(model.matrices, model.vectors, model.path);
    const cache = createKvCache(options.kv as KvMode, {
      kernels: model.kernels,
      pool: countingPool,
      shape: { ...args, contextLength: options.ctx },
      hidden: args.hiddenSize,
      invFreq: ropeInverseFrequencies(args.headDim, args.ropeTheta, args.ropeScaling),
      projector: (layer, x, n, startPos) => arch.projectKv(args, { ops, weights }, layer, x, n, startPos),
      latent: () => createLatentCodec(model.kernels, ops, weights, args, arch.projectKv),
    });
    let linearMs = 0;
    let lmHeadMs = 0;
    let attentionMs = 0;
    let bytes = 0;
    const timedOps = {
      ...ops,
      linear(x: Float32Array, n: number, w: WasmMatrix, bias?: Float32Array) {
        const t = performance.now();
        const out = ops.linear(x, n, w, bias);
        const dt = performance.now() - t;
        if (w.name === "lm_head.weight") lmHeadMs += dt;
        else linearMs += dt;
        bytes += w.layout.byteLength;
        return out;
      },
    };
    const timedCache = Object.create(cache);
    timedCache.attend = (input: Parameters<typeof cache.attend>[0]) => {
      const t = performance.now();
      const out = cache.attend(input);
      attentionMs += performance.now() - t;
      return out;
    };
    const ctx = { ops: timedOps, weights, attention: timedCache } as unknown as ForwardContext;
    const prompt = promptIds(options.ctx - options.steps - 8, options.seed, args.vocabSize);
    let logits = new Float32Array(0);
    const p0 = performance.now();
    for (let i = 0; i < prompt.length; i += MAX_TOKENS_PER_CALL) logits = arch.forward(args, ctx, prompt.slice(i, i + MAX_TOKENS_PER_CALL), i);
    const perPrompt = (v: number) => v / prompt.length;
    const prefill = {
      tokens: prompt.length,
      msPerToken: perPrompt(performance.now() - p0),
      linearMs: perPrompt(linearMs + lmHeadMs),
      attentionMs: perPrompt(attentionMs),
      batchesPerToken: perPrompt(batches),
    };
    let token = argmax(logits);
    for (let i = 0; i < 8; i++) token = argmax(arch.forward(args, ctx, [token], cache.length()));
    linearMs = lmHeadMs = attentionMs = bytes = batches = 0;
    const t0 = performance.now();
    for (let i = 0; i < options.steps; i++) token = argmax(arch.forward(args, ctx, [token], cache.length()));
    const total = performance.now() - t0;
    const per = (v: number) => v / options.steps;
    return {
      prefill,
      msPerToken: per(total),
      linearMs: per(linearMs),
      lmHeadMs: per(lmHeadMs),
      attentionMs: per(attentionMs),
      otherMs: per(total - linearMs - lmHeadMs - attentionMs),
      weightBytesPerToken: per(bytes),
      matmulGBps: bytes / ((linearMs + lmHeadMs) * 1e6),
      batchesPerToken: per(batches),
    };
  } finally {
    if (pool !== undefined) await disposePool(pool);
  }
}

async function main(): Promise<void> {
  const flags = new Map<string, string>();
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) flags.set(argv[i].replace(/^--/, ""), argv[i + 1]);
  const shape = SHAPES[flags.get("shape") ?? "1.1B"];
  const encoding = (flags.get("encoding") ?? "q2") as EncodingName;
  if (shape === undefined || !ENCODING_NAMES.includes(encoding)) {
    console.error(`usage: bun bench/profile.ts --shape ${Object.keys(SHAPES).join("|")} --encoding ${ENCODING_NAMES.join("|")} [--threads N] [--ctx N] [--kv f16] [--steps N]`);
    process.exit(2);
  }
  const vocabGguf = fileURLToPath(new URL("../../shared/models/gguf-vocab/ggml-vocab-llama-spm.gguf", import.meta.url));
  const files = await prepareModels(shape, [encoding], [], { seed: 0, vocabGguf, log: (m) => console.error(m) });
  const p = await profileDecode(files.packed[encoding]!, {
    threads: Number(flags.get("threads") ?? 1),
    ctx: Number(flags.get("ctx") ?? 128),
    kv: flags.get("kv") ?? "f16",
    steps: Number(flags.get("steps") ?? 16),
    seed: 0,
  });
  const pct = (v: number) => `${((100 * v) / p.msPerToken).toFixed(0)}%`;
  console.log(`${shape.name} ${encoding}: ${p.msPerToken.toFixed(2)} ms/token (${(1000 / p.msPerToken).toFixed(1)} tok/s)`);
  console.log(`  layer matmuls (LUT build + GEMV) ${p.linearMs.toFixed(2)} ms ${pct(p.linearMs)}`);
  console.log(`  lm_head                          ${p.lmHeadMs.toFixed(2)} ms ${pct(p.lmHeadMs)}`);
  console.log(`  attention (store + attend)       ${p.attentionMs.toFixed(2)} ms ${pct(p.attentionMs)}`);
  console.log(`  other (norms, RoPE, SiLU, JS)    ${p.otherMs.toFixed(2)} ms ${pct(p.otherMs)}`);
  console.log(`  weights streamed ${(p.weightBytesPerToken / 1e6).toFixed(1)} MB/token, matmuls at ${p.matmulGBps.toFixed(1)} GB/s`);
  if (p.batchesPerToken > 0) console.log(`  pool batches (matmuls, attention) ${p.batchesPerToken.toFixed(0)} per token`);
  const f = p.prefill;
  const share = (v: number) => `${((100 * v) / f.msPerToken).toFixed(0)}%`;
  console.log(`prefill of ${f.tokens} tokens: ${f.msPerToken.toFixed(2)} ms/token (${(1000 / f.msPerToken).toFixed(1)} tok/s)`);
  console.log(`  matmuls (incl. lm_head)          ${f.linearMs.toFixed(2)} ms ${share(f.linearMs)}`);
  console.log(`  attention (store + attend)       ${f.attentionMs.toFixed(2)} ms ${share(f.attentionMs)}`);
  if (f.batchesPerToken > 0) console.log(`  pool batches ${f.batchesPerToken.toFixed(1)} per prompt token`);
}

if (import.meta.main) {
  main().catch((error) => {
    console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
    process.exit(1);
  });
}
