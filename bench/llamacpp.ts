/**
 * One llama.cpp measurement through node-llama-cpp's prebuilt CPU binaries, inside a fresh
 * process: load the GGUF (CPU only, mmap), a context of ctx tokens with exactly `threads`
 * threads, warm up on one token and WARMUP_DECODE_STEPS greedy steps (then clear), then time the same prompt as crumb (ctx - N ids) up to the
 * first greedy token, and N greedy decode steps. Uses LlamaContextSequence.evaluate, the
 * lowest-level generating loop the package exposes (native greedy sampling, one token per
 * batch); its async-iterator hop per token is included in decode time.
 */
import { peakRssMb, promptIds, type RunResult, type RunSpec, WARMUP_DECODE_STEPS } from "./config.ts";

export async function measureLlamaCpp(spec: RunSpec): Promise<RunResult> {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const prefillTokens = spec.ctx - spec.decodeTokens;
  const llama = await getLlama({ gpu: false, build: "never", maxThreads: spec.threads, logLevel: LlamaLogLevel.error });
  try {
    const model = await llama.loadModel({ modelPath: spec.model, gpuLayers: 0 });
    // One spare cell: node-llama-cpp shifts the context (erases and re-evaluates the start)
    // when the sequence reaches contextSize, which would land inside the timed decode. The
    // measured depth is the same as crumb's: ctx - N prompt tokens plus N decode steps.
    const context = await model.createContext({
      contextSize: spec.ctx + 1,
      threads: { ideal: spec.threads, min: spec.threads },
    });
    const sequence = context.getSequence();
    const warmup = sequence.evaluate(promptIds(1, spec.seed + 1, spec.vocab) as never, { temperature: 0 });
    for (let i = 0; i <= WARMUP_DECODE_STEPS; i++) {
      if ((await warmup.next()).done) break;
    }
    await warmup.return();
    await sequence.clearHistory();

    const prompt = promptIds(prefillTokens, spec.seed, spec.vocab);
    const generator = sequence.evaluate(prompt as never, { temperature: 0 });
    const t0 = performance.now();
    const first = await generator.next();
    const ttft = performance.now() - t0;
    if (first.done) throw new Error("llama.cpp stopped before the first token");
    const ids = [first.value as number];
    const t1 = performance.now();
    for (let i = 0; i < spec.decodeTokens; i++) {
      const next = await generator.next();
      if (next.done) throw new Error(`llama.cpp stopped after ${ids.length} tokens`);
      ids.push(next.value as number);
    }
    const decodeMs = performance.now() - t1;
    await generator.return();
    const rss = await peakRssMb();
    await context.dispose();
    await model.dispose();
    return {
      decode_tps: (spec.decodeTokens * 1000) / decodeMs,
      prefill_tps: (prefillTokens * 1000) / ttft,
      ttft_ms: ttft,
      rss_mb: rss,
      kv_bytes_per_token: 0,
      prefill_tokens: prefillTokens,
      decode_tokens: spec.decodeTokens,
      ids,
    };
  } finally {
    await llama.dispose();
  }
}
