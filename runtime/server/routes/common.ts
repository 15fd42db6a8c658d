/**
 * Pieces every OpenAI route shares: parsing the JSON body, ids and timestamps, usage and
 * logprob objects in OpenAI's shapes, and a per-request signal that fires when the client
 * goes away (the request's own signal, or the response stream being cancelled).
 */
import type { Context } from "hono";
import type { TokenLogprob, Usage } from "../../engine/types.ts";
import { bodyBytes, parseJsonBody } from "../read-body.ts";
import type { JsonObject } from "../schema.ts";

/** The request body (already read under the size and time limits) parsed as a JSON object. */
export function readJson(c: Context): JsonObject {
  return parseJsonBody(bodyBytes(c));
}

export function newId(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().replace(/-/g, "").slice(0, 24)}`;
}

export const unixTime = () => Math.floor(Date.now() / 1000);

export function usageBody(usage: Usage) {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
  };
}

const encoder = new TextEncoder();
const bytes = (text: string) => [...encoder.encode(text)];

/** One entry of chat `logprobs.content`. */
export function chatLogprob(lp: TokenLogprob) {
  return {
    token: lp.token,
    logprob: lp.logprob,
    bytes: bytes(lp.token),
    top_logprobs: lp.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: bytes(t.token) })),
  };
}

/** Legacy completions `logprobs` for a run of tokens whose text starts at `offset`. */
export function completionLogprobs(list: readonly TokenLogprob[], offset: number) {
  const textOffset: number[] = [];
  let at = offset;
  for (const lp of list) {
    textOffset.push(at);
    at += lp.token.length;
  }
  return {
    tokens: list.map((lp) => lp.token),
    token_logprobs: list.map((lp) => lp.logprob),
    top_logprobs: list.map((lp) => Object.fromEntries(lp.top.map((t) => [t.token, t.logprob]))),
    text_offset: textOffset,
  };
}

/** A controller aborted when the request's signal fires; the SSE writer aborts it on cancel. */
export function clientGone(c: Context): AbortController {
  const gone = new AbortController();
  const signal = c.req.raw.signal;
  if (signal.aborted) gone.abort();
  else signal.addEventListener("abort", () => gone.abort(), { once: true });
  return gone;
}
