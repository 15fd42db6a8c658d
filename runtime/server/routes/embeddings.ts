/**
 * POST /v1/embeddings: one L2-normalised vector per input, pooled over the model's final
 * hidden states (mean or last token: --pooling, else what the model declares); `dimensions` truncates and
 * renormalises (Matryoshka-style, as OpenAI's text-embedding-3 does); base64 output is the
 * little-endian float32 bytes, the openai SDK's default request.
 *
 * Bounded before any model work: at most --max-embed-inputs inputs and --max-embed-tokens
 * tokens over all of them (400 naming the limit), text that cannot fit refused by its length
 * alone, the rest tokenized one input per turn of the event loop. The model work then takes a
 * place in the admission queue like a generation, runs in prefill-block slices, and stops at
 * the next slice when the client leaves.
 */
import { Buffer } from "node:buffer";
import type { Hono } from "hono";
import { CancelledError, InvalidArgumentError } from "../../errors.ts";
import { yieldToEventLoop } from "../../engine/generate.ts";
import type { AppEnv, ServerContext } from "../context.ts";
import { HttpError } from "../errors.ts";
import { parseEmbeddingRequest } from "../schema.ts";
import { checkFits, fewestTokens } from "../token-bounds.ts";
import { clientGone, readJson } from "./common.ts";

function truncateNormalized(vector: Float32Array, dimensions: number): Float32Array {
  const out = vector.slice(0, dimensions);
  let norm = 0;
  for (const x of out) norm += x * x;
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < out.length; i++) out[i] /= norm;
  return out;
}

function base64Float32(vector: Float32Array): string {
  const bytes = Buffer.alloc(vector.length * 4);
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i], i * 4);
  return bytes.toString("base64");
}

export function registerEmbeddings(app: Hono<AppEnv>, ctx: ServerContext): void {
  app.post("/v1/embeddings", async (c) => {
    const engine = ctx.engine();
    const request = parseEmbeddingRequest(readJson(c), ctx.maxEmbedInputs);
    const width = engine.args.hiddenSize;
    if (request.dimensions !== undefined && request.dimensions > width) {
      throw new InvalidArgumentError(
        "dimensions",
        `dimensions must be at most the model's embedding width ${width}, got ${request.dimensions}`,
      );
    }
    const limit = ctx.maxEmbedTokens;
    const limitName = "--max-embed-tokens";
    const perInput = Math.min(engine.contextLength, limit);
    const totalChars = request.inputs.reduce((n, input) => n + (typeof input === "string" ? input.length : 0), 0);
    if (fewestTokens(engine.tokenizer, totalChars) > limit) {
      throw new InvalidArgumentError(
        "input",
        `input is ${totalChars} characters, at least ${
          fewestTokens(engine.tokenizer, totalChars)
        } tokens, beyond this server's ${limit} tokens per request (${limitName}); split it into several requests`,
      );
    }
    const gone = clientGone(c);
    const ids: number[][] = [];
    let tokens = 0;
    for (const [i, input] of request.inputs.entries()) {
      if (typeof input === "string") {
        const where = perInput === limit ? `${limitName}` : "the context length";
        checkFits(engine.tokenizer, input, perInput, `input[${i}]`, where);
        if (i > 0) await yieldToEventLoop();
        if (gone.signal.aborted) throw new CancelledError("embeddings cancelled while tokenizing: the client left");
      }
      const encoded = typeof input === "string" ? engine.tokenizer.encode(input, { addSpecialTokens: true }) : input;
      tokens += encoded.length;
      if (tokens > limit) {
        throw new InvalidArgumentError(
          "input",
          `input holds more than ${limit} tokens (${tokens} by input ${i}), this server's limit per request (${limitName}); split it into several requests`,
        );
      }
      ids.push(encoded);
    }
    const slot = await ctx.queue.enter(gone.signal);
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    gone.signal.addEventListener("abort", onAbort, { once: true });
    slot.signal.addEventListener("abort", onAbort, { once: true });
    if (gone.signal.aborted || slot.signal.aborted) stop.abort();
    let vectors: Float32Array[];
    try {
      vectors = await engine.embed(ids, { pooling: ctx.pooling ?? engine.pooling, signal: stop.signal });
    } catch (error) {
      if (error instanceof CancelledError && slot.signal.aborted && !gone.signal.aborted) {
        throw new HttpError(503, "server_shutting_down", "the server shut down before the embeddings were computed; retry", {
          cause: error,
        });
      }
      throw error;
    } finally {
      gone.signal.removeEventListener("abort", onAbort);
      slot.signal.removeEventListener("abort", onAbort);
      slot.release();
    }
    const data = vectors.map((vector, index) => {
      const v = request.dimensions === undefined ? vector : truncateNormalized(vector, request.dimensions);
      return { object: "embedding", index, embedding: request.encodingFormat === "base64" ? base64Float32(v) : Array.from(v) };
    });
    return c.json({ object: "list", data, model: engine.modelId, usage: { prompt_tokens: tokens, total_tokens: tokens } });
  });
}
