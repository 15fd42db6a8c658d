/**
 * Where one crumb decode step spends its time: `bun bench/profile.ts --shape 1.1B --encoding q2
 * --threads 1 --ctx 128`. Fills the cache, then runs decode steps through the architecture's
 * forward pass twice:
 * - timed: each op runs (and, with threads, dispatches the pool) when called (flush "step"),
 *   and timers around `linear` (tables + matmul: the layers' matrices and lm_head apart) and
 *   the attention state's `attend` (cache store + attention) split the step; the rest is
 *   norms, RoPE, SwiGLU, residual adds, embedding and host glue ("outside the matmuls" is
 *   everything but the matmuls);
 * - untimed, for each flush policy (per op, per layer, per forward pass): ms per token and
 *   pool dispatches (wakes) per token, the numbers a user sees.
 * Also reports the weight bytes streamed per token and the bandwidth the matmuls reach.
 */
import { fileURLToPath } from "node:url";
import { loadPackedModel, type PackedModel } from "../runtime/engine/packed-model.ts";
import { createKvCache } from "../runtime/engine/kv-cache/create-kv-cache.ts";
import { KV_MODES, type KvMode } from "../runtime/engine/kv-cache/types.ts";
import { createLatentCodec } from "../runtime/engine/kv-cache/xquant-svd.ts";
import { InvalidArgumentError } from "../runtime/errors.ts";
import { createPool, disposePool, type Pool } from "../runtime/threads/pool.ts";
import { createKernelQueue, FLUSH_POLICIES, type FlushPolicy } from "../runtime/threads/kernel-queue.ts";
import { resolveModel } from "../runtime/models/registry.ts";
import { ropeInverseFrequencies } from "../runtime/models/rope-frequencies.ts";
import { createWasmOps, MAX_TOKENS_PER_CALL, type WasmOps } from "../runtime/ops/wasm-ops.ts";
import { createWasmWeights } from "../runtime/ops/wasm-weights.ts";
import type { AttentionInput, ForwardContext } from "../runtime/ops/types.ts";
import { argmax, ENCODING_NAMES, type EncodingName, promptIds, SHAPES } from "./config.ts";
import { prepareModels } from "./models.ts";

export interface DecodeProfile {
  /** The prompt's prefill (ctx − steps − 8 tokens, in MAX_TOKENS_PER_CALL chunks), per prompt token (flush "forward"). */
  readonly prefill: { readonly tokens: number; readonly msPerToken: number; readonly dispatchesPerToken: number };
  /** The timed run (flush "step"). */
  readonly msPerToken: number;
  readonly linearMs: number;
  readonly lmHeadMs: number;
  readonly attentionMs: number;
  readonly otherMs: number;
  readonly weightBytesPerToken: number;
  readonly matmulGBps: number;
  /** Untimed decode per flush policy: ms and pool dispatches per token. */
  readonly policies: Readonly<Record<FlushPolicy, { readonly msPerToken: number; readonly dispatchesPerToken: number }>>;
}

interface Options {
  readonly threads: number;
  readonly ctx: number;
  readonly kv: string;
  readonly steps: number;
  readonly seed: number;
}

/** The engine's pieces over a loaded model, with a given flush policy. */
function build(model: PackedModel, pool: Pool | undefined, policy: FlushPolicy, options: Options) {
  const { arch, args } = resolveModel(model.header.config);
  const ops = createWasmOps(createKernelQueue(model.kernels, pool, policy));
  const weights = createWasmWeights(model.kernels, model.matrices, model.vectors, model.path);
  const cache = createKvCache(options.kv as KvMode, {
    ops,
    shape: { ...args, contextLength: options.ctx },
    hidden: args.hiddenSize,
    invFreq: ropeInverseFrequencies(args.headDim, args.ropeTheta, args.ropeScaling),
    projector: (layer, x, n, startPos, k, v) => arch.projectKv(args, { ops, weights }, layer, x, n, startPos, k, v),
    latent: () => createLatentCodec(ops, weights, args, arch.projectKv),
  });
  const state = ops.createState(arch.stateLayout(args), MAX_TOKENS_PER_CALL, options.ctx);
  return { arch, args, ops, weights, cache, state };
}

export async function profileDecode(modelPath: string, options: Options): Promise<DecodeProfile> {
  if (!(KV_MODES as readonly string[]).includes(options.kv)) {
    throw new InvalidArgumentError("kv", `--kv ${options.kv}: choose one of ${KV_MODES.join(", ")}`);
  }
  const model = await loadPackedModel(modelPath);
  const pool = options.threads > 1 ? await createPool({ threads: options.threads, kernels: model.kernels }) : undefined;
  try {
    const { args } = resolveModel(model.header.config);
    const prompt = promptIds(options.ctx - options.steps - 8, options.seed, args.vocabSize);
    /** Prefills the prompt, then decodes 8 tokens to warm up and `steps` tokens measured. */
    const run = (ctx: ForwardContext, ops: WasmOps, forward: (tokens: number[], pos: number) => Float32Array, length: () => number) => {
      const d0 = ops.queue.dispatches;
      const p0 = performance.now();
      let logits = new Float32Array(0);
      for (let i = 0; i < prompt.length; i += MAX_TOKENS_PER_CALL) logits = forward(prompt.slice(i, i + MAX_TOKENS_PER_CALL), i);
      const prefill = { tokens: prompt.length, msPerToken: (performance.now() - p0) / prompt.length, dispatchesPerToken: (ops.queue.dispatches - d0) / prompt.length };
      const token = [argmax(logits)];
      for (let i = 0; i < 8; i++) token[0] = argmax(forward(token, length()));
      return { prefill, token, ctx };
    };
    const decode = (ops: WasmOps, forward: (tokens: number[], pos: number) => Float32Array, length: () => number, token: number[]) => {
      const d0 = ops.queue.dispatches;
      const t0 = performance.now();
      for (let i = 0; i < options.steps; i++) token[0] = argmax(forward(token, length()));
      return { ms: (performance.now() - t0) / options.steps, dispatches: (ops.queue.dispatches - d0) / options.steps };
    };

    // Timed: ops run as they are called.
    const timed = build(model, pool, "step", options);
    let linearMs = 0;
    let lmHeadMs = 0;
    let attentionMs = 0;
    let bytes = 0;
    const ops = timed.ops;
    const timedOps: WasmOps = {
      ...ops,
      linear(x, n, projections) {
        const t = performance.now();
        ops.linear(x, n, projections);
        const dt = performance.now() - t;
        const name = projections[0].weight.name;
        if (name === "lm_head.weight" || name === "model.embed_tokens.weight") lmHeadMs += dt;
        else linearMs += dt;
        for (const p of projections) bytes += p.weight.layout.byteLength;
      },
    };
    const timedCache = Object.create(timed.cache);
    timedCache.attend = (input: AttentionInput) => {
      const t = performance.now();
      timed.cache.attend(input as never);
      attentionMs += performance.now() - t;
    };
    const ctx = { ops: timedOps, weights: timed.weights, attention: timedCache, state: timed.state } as unknown as ForwardContext;
    const forwardTimed = (tokens: number[], pos: number) => timed.arch.forward(timed.args, ctx, tokens, pos);
    const warm = run(ctx, ops, forwardTimed, () => timed.cache.length());
    linearMs = lmHeadMs = attentionMs = bytes = 0;
    const timing = decode(ops, forwardTimed, () => timed.cache.length(), warm.token);
    const per = (v: number) => v / options.steps;

    // Untimed, per flush policy.
    const policies = {} as Record<FlushPolicy, { msPerToken: number; dispatchesPerToken: number }>;
    let prefill = warm.prefill;
    for (const policy of FLUSH_POLICIES) {
      const b = build(model, pool, policy, options);
      const plain = { ops: b.ops, weights: b.weights, attention: b.cache, state: b.state } as unknown as ForwardContext;
      const forward = (tokens: number[], pos: number) => b.arch.forward(b.args, plain, tokens, pos);
      const w = run(plain, b.ops, forward, () => b.cache.length());
      if (policy === "forward") prefill = w.prefill;
      const d = decode(b.ops, forward, () => b.cache.length(), w.token);
      policies[policy] = { msPerToken: d.ms, dispatchesPerToken: d.dispatches };
    }
    return {
      prefill,
      msPerToken: timing.ms,
      linearMs: per(linearMs),
      lmHeadMs: per(lmHeadMs),
      attentionMs: per(attentionMs),
      otherMs: timing.ms - per(linearMs + lmHeadMs + attentionMs),
      weightBytesPerToken: per(bytes),
      matmulGBps: bytes / ((linearMs + lmHeadMs) * 1e6),
      policies,
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
  console.log(`${shape.name} ${encoding}, timed op by op: ${p.msPerToken.toFixed(2)} ms/token`);
  console.log(`  layer matmuls (tables + GEMV)    ${p.linearMs.toFixed(2)} ms ${pct(p.linearMs)}`);
  console.log(`  lm_head                          ${p.lmHeadMs.toFixed(2)} ms ${pct(p.lmHeadMs)}`);
  console.log(`  attention (store + attend)       ${p.attentionMs.toFixed(2)} ms ${pct(p.attentionMs)}`);
  console.log(`  other (norms, RoPE, SwiGLU, adds, embedding, host) ${p.otherMs.toFixed(2)} ms ${pct(p.otherMs)}`);
  console.log(`  outside the matmuls              ${(p.attentionMs + p.otherMs).toFixed(2)} ms ${pct(p.attentionMs + p.otherMs)}`);
  console.log(`  weights streamed ${(p.weightBytesPerToken / 1e6).toFixed(1)} MB/token, matmuls at ${p.matmulGBps.toFixed(1)} GB/s`);
  for (const [policy, r] of Object.entries(p.policies)) {
    console.log(`decode, flush per ${policy.padEnd(7)}: ${r.msPerToken.toFixed(2)} ms/token (${(1000 / r.msPerToken).toFixed(1)} tok/s), pool wakes ${r.dispatchesPerToken.toFixed(1)} per token`);
  }
  const f = p.prefill;
  console.log(`prefill of ${f.tokens} tokens: ${f.msPerToken.toFixed(2)} ms/token (${(1000 / f.msPerToken).toFixed(1)} tok/s), pool wakes ${f.dispatchesPerToken.toFixed(2)} per prompt token`);
}

if (import.meta.main) {
  main().catch((error) => {
    console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
    process.exit(1);
  });
}
