/**
 * Next-token sampling: greedy at temperature 0, otherwise temperature-scaled softmax
 * filtered by top-k, top-p (nucleus) and min-p, drawn from a seeded generator so the same
 * seed gives the same tokens on every runtime.
 */
import { InvalidArgumentError } from "../errors.ts";

export interface SamplingOptions {
  /** 0 picks the most likely token. Default 1. */
  readonly temperature?: number;
  /** Keep only the k most likely tokens; 0 keeps all. */
  readonly topK?: number;
  /** Keep the smallest set whose probability reaches p; 1 keeps all. */
  readonly topP?: number;
  /** Drop tokens less likely than minP times the most likely one; 0 keeps all. */
  readonly minP?: number;
  /** Seed of the random stream; a fixed seed reproduces the output. */
  readonly seed?: number;
}

export interface Sampler {
  sample(logits: Float32Array): number;
}

/** A 32-bit Weyl sequence passed through the murmur3 finaliser: small, fast, seedable. */
export function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 4294967296;
  };
}

export function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

function checkRange(name: string, value: number, min: number, max: number): number {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new InvalidArgumentError(name, `${name} must be between ${min} and ${max}, got ${value}`);
  }
  return value;
}

export function createSampler(options: SamplingOptions = {}): Sampler {
  const temperature = checkRange("temperature", options.temperature ?? 1, 0, 100);
  const topK = checkRange("top_k", options.topK ?? 0, 0, Number.MAX_SAFE_INTEGER);
  const topP = checkRange("top_p", options.topP ?? 1, 0, 1);
  const minP = checkRange("min_p", options.minP ?? 0, 0, 1);
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
  if (!Number.isInteger(seed)) throw new InvalidArgumentError("seed", `seed must be an integer, got ${seed}`);
  const random = createRandom(seed);

  return {
    sample(logits) {
      if (temperature === 0) return argmax(logits);
      // Candidates sorted by probability, most likely first.
      let max = -Infinity;
      for (const logit of logits) if (logit > max) max = logit;
      const ids = Array.from({ length: logits.length }, (_, i) => i);
      const probs = new Float64Array(logits.length);
      let total = 0;
      for (let i = 0; i < logits.length; i++) {
        probs[i] = Math.exp((logits[i] - max) / temperature);
        total += probs[i];
      }
      for (let i = 0; i < probs.length; i++) probs[i] /= total;
      ids.sort((a, b) => probs[b] - probs[a] || a - b);

      let keep = topK > 0 ? Math.min(topK, ids.length) : ids.length;
      if (topP < 1) {
        let cumulative = 0;
        for (let i = 0; i < keep; i++) {
          cumulative += probs[ids[i]];
          if (cumulative >= topP) {
            keep = i + 1;
            break;
          }
        }
      }
      if (minP > 0) {
        const threshold = minP * probs[ids[0]];
        let kept = 1;
        while (kept < keep && probs[ids[kept]] >= threshold) kept++;
        keep = kept;
      }

      let mass = 0;
      for (let i = 0; i < keep; i++) mass += probs[ids[i]];
      let r = random() * mass;
      for (let i = 0; i < keep; i++) {
        r -= probs[ids[i]];
        if (r < 0) return ids[i];
      }
      return ids[keep - 1];
    },
  };
}
