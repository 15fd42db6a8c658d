/**
 * Adjustments applied to raw logits before sampling: repetition penalty (CTRL / llama.cpp:
 * divide positive logits, multiply negative ones), OpenAI presence and frequency penalties,
 * and masks from constrained decoding. Also log-softmax for reported logprobs.
 */
import { InvalidArgumentError } from "../errors.ts";

export interface PenaltyOptions {
  readonly repetitionPenalty?: number;
  readonly presencePenalty?: number;
  readonly frequencyPenalty?: number;
}

export function checkPenalties(options: PenaltyOptions): void {
  const check = (name: string, value: number | undefined, min: number, max: number) => {
    if (value !== undefined && (!Number.isFinite(value) || value < min || value > max)) {
      throw new InvalidArgumentError(name, `${name} must be between ${min} and ${max}, got ${value}`);
    }
  };
  check("repetition_penalty", options.repetitionPenalty, 0.01, 10);
  check("presence_penalty", options.presencePenalty, -2, 2);
  check("frequency_penalty", options.frequencyPenalty, -2, 2);
}

/** Applies the penalties in place, given how often each token id occurred so far. */
export function applyPenalties(logits: Float32Array, counts: ReadonlyMap<number, number>, options: PenaltyOptions): void {
  const repetition = options.repetitionPenalty ?? 1;
  const presence = options.presencePenalty ?? 0;
  const frequency = options.frequencyPenalty ?? 0;
  if (repetition === 1 && presence === 0 && frequency === 0) return;
  for (const [id, count] of counts) {
    if (id < 0 || id >= logits.length) continue;
    let logit = logits[id];
    if (repetition !== 1) logit = logit > 0 ? logit / repetition : logit * repetition;
    logit -= presence + frequency * count;
    logits[id] = logit;
  }
}

/** Sets every disallowed id's logit to -Infinity; throws when nothing is allowed. */
export function applyMask(logits: Float32Array, allowed: (id: number) => boolean): void {
  let any = false;
  for (let id = 0; id < logits.length; id++) {
    if (allowed(id)) any = true;
    else logits[id] = -Infinity;
  }
  if (!any) throw new InvalidArgumentError("response_format", "the output constraint allows no next token");
}

/** log(softmax(logits)) in float64. */
export function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const logit of logits) if (logit > max) max = logit;
  let total = 0;
  for (const logit of logits) total += Math.exp(logit - max);
  const logZ = max + Math.log(total);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - logZ;
  return out;
}

/** The k largest entries, best first (ties by lower id); none for k = 0 (logprobs without alternatives). */
export function topEntries(values: Float64Array, k: number): { id: number; value: number }[] {
  const best: { id: number; value: number }[] = [];
  if (k <= 0) return best;
  for (let id = 0; id < values.length; id++) {
    const value = values[id];
    if (best.length === k && value <= best[k - 1].value) continue;
    let at = best.length;
    while (at > 0 && best[at - 1].value < value) at--;
    best.splice(at, 0, { id, value });
    if (best.length > k) best.pop();
  }
  return best;
}
