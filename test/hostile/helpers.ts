/**
 * Helpers for the hostile-client tests: stories260K on a backend whose forward calls are timed
 * (the length of one slice of model work) and counted/gated (test/counting-backend.ts), a probe
 * that keeps asking /health while a hostile request runs and records how late the worst answer
 * came, the bound that latency is held to, the OpenAI error-body check, and a seeded PRNG.
 */
import { expect } from "bun:test";
import { readFileSync } from "node:fs";
import { importModel } from "../../runtime/import/index.ts";
import { createEngineOn } from "../../runtime/engine/engine.ts";
import { createReferenceEngine } from "../../runtime/engine/reference-engine.ts";
import { PREFILL_SLICE_TOKENS } from "../../runtime/engine/generate.ts";
import type { Engine } from "../../runtime/engine/types.ts";
import { countForwards, type CountingBackend } from "../counting-backend.ts";
import { modelPath } from "../shared-data.ts";
import { QWEN_TEMPLATE_PATH } from "../server/helpers.ts";

export interface TimedEngine {
  readonly engine: Engine;
  readonly counter: CountingBackend;
  /** Each forward call: tokens fed and milliseconds taken, in order. */
  readonly forwards: { tokens: number; ms: number }[];
}

/** stories260K (reference backend, Qwen chat template) with every forward call timed and counted. */
export async function timedStoriesEngine(): Promise<TimedEngine> {
  const source = await importModel(modelPath("stories260K/stories260K.bin"), { tokenizer: modelPath("stories260K/tok512.bin") });
  const metadata = { ...source, chatTemplates: { default: readFileSync(modelPath(QWEN_TEMPLATE_PATH), "utf8") } };
  const reference = createReferenceEngine(metadata, {});
  const forwards: { tokens: number; ms: number }[] = [];
  const timed = {
    ...reference,
    name: "reference engine, fp32 (timed)",
    forward(tokens: readonly number[], options?: Parameters<typeof reference.forward>[1]) {
      const start = performance.now();
      const out = reference.forward(tokens, options);
      forwards.push({ tokens: tokens.length, ms: performance.now() - start });
      return out;
    },
  };
  const counter = countForwards(timed);
  return { engine: createEngineOn(counter.backend, metadata), counter, forwards };
}

export interface HealthProbe {
  /** Stops probing; resolves with the worst lateness of a /health answer (ms) and the number of probes. */
  stop(): Promise<{ worstMs: number; probes: number }>;
}

/**
 * Asks /health and /metrics in turn every `intervalMs` and measures, for each probe, the time
 * from when it was due (its timer's deadline) to its answer. A request that holds the event
 * loop delays the timer and the answer alike, so the worst value is what a monitor calling at
 * the worst moment would have waited. Any answer but 200 fails the test.
 */
export function startHealthProbe(fetch: (request: Request) => Response | Promise<Response>, intervalMs = 5): HealthProbe {
  let running = true;
  let worstMs = 0;
  let probes = 0;
  const loop = (async () => {
    while (running) {
      const due = performance.now() + intervalMs;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
      const response = await fetch(new Request(probes % 2 === 0 ? "http://crumb.test/health" : "http://crumb.test/metrics"));
      worstMs = Math.max(worstMs, performance.now() - due);
      probes++;
      if (response.status !== 200) throw new Error(`${response.url} answered ${response.status} while under attack`);
      await response.arrayBuffer();
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { worstMs, probes };
    },
  };
}

/**
 * The bound on the worst /health latency. The issue asks for 100 ms; a /health probe can at
 * worst arrive just as a slice of model work starts and wait for it to end, and on this shared
 * 2-core machine a slice (one prefill block of at most 64 tokens on stories260K, about 20 ms
 * when quiet) can be stretched several times by other jobs or a GC pause. So the bound is
 * 100 ms plus two of the slowest slices measured in the same run (forward calls larger than a
 * slice are left out, so a break that stops slicing cannot raise its own bound): generous on a
 * loaded machine, and still far below what an unsliced request costs (the scaled-down hostile
 * requests hold the model for over a second, which the tests check, so a break of the slicing
 * fails by a wide margin).
 */
export function healthBoundMs(forwards: readonly { tokens: number; ms: number }[]): number {
  let slowest = 0;
  for (const call of forwards) if (call.tokens <= PREFILL_SLICE_TOKENS) slowest = Math.max(slowest, call.ms);
  return 100 + 2 * slowest;
}

/** Reads the body and checks the OpenAI error shape and status; returns the error object. */
export async function expectOpenAIError(response: Response, status: number, code?: string): Promise<Record<string, unknown>> {
  const text = await response.text();
  if (response.status !== status) throw new Error(`expected ${status}, got ${response.status}: ${text.slice(0, 300)}`);
  const body = JSON.parse(text) as { error: Record<string, unknown> };
  expect(Object.keys(body)).toEqual(["error"]);
  const error = body.error;
  expect(typeof error.message).toBe("string");
  expect((error.message as string).length).toBeGreaterThan(0);
  expect(typeof error.type).toBe("string");
  expect(error.param === null || typeof error.param === "string").toBe(true);
  expect(error.code === null || typeof error.code === "string").toBe(true);
  if (code !== undefined) expect(error.code).toBe(code);
  return error;
}

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A POST with a JSON body (the only kind a server without an API key accepts). */
export function jsonRequest(path: string, body: unknown, init: RequestInit = {}): Request {
  return new Request(`http://crumb.test${path}`, {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
    headers: { "content-type": "application/json", ...(init.headers as Record<string, string> | undefined) },
  });
}
