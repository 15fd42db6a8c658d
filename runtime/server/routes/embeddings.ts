/**
 * POST /v1/embeddings: one L2-normalised vector per input, pooled over the model's final
 * hidden states (mean or last token: --pooling, else what the model declares); `dimensions` truncates and
 * renormalises (Matryoshka-style, as OpenAI's text-embedding-3 does); base64 output is the
 * little-endian float32 bytes, the openai SDK's default request.
 */
import { Buffer } from "node:buffer";
import type { Hono } from "hono";
import { InvalidArgumentError } from "../../errors.ts";
import type { ServerContext } from "../context.ts";
import { parseEmbeddingRequest } from "../schema.ts";
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

export function registerEmbeddings(app: Hono, ctx: ServerContext): void {
  app.post("/v1/embeddings", async (c) => {
    const engine = ctx.engine();
    const request = parseEmbeddingRequest(await readJson(c), (ids) => {
      const bad = ids.find((id) => id >= engine.tokenizer.vocabSize);
      if (bad !== undefined) {
        throw new InvalidArgumentError("input", `token id ${bad} is outside the vocabulary [0, ${engine.tokenizer.vocabSize})`);
      }
      return engine.tokenizer.decode(ids);
    });
    const width = engine.args.hiddenSize;
    if (request.dimensions !== undefined && request.dimensions > width) {
      throw new InvalidArgumentError(
        "dimensions",
        `dimensions must be at most the model's embedding width ${width}, got ${request.dimensions}`,
      );
    }
    const promptTokens = request.inputs.reduce((sum, text) => sum + engine.tokenizer.encode(text, { addSpecialTokens: true }).length, 0);
    const gone = clientGone(c);
    const slot = await ctx.queue.enter(gone.signal);
    let vectors: Float32Array[];
    try {
      vectors = await engine.embed(request.inputs, { pooling: ctx.pooling ?? engine.pooling });
    } finally {
      slot.release();
    }
    const data = vectors.map((vector, index) => {
      const v = request.dimensions === undefined ? vector : truncateNormalized(vector, request.dimensions);
      return { object: "embedding", index, embedding: request.encodingFormat === "base64" ? base64Float32(v) : Array.from(v) };
    });
    return c.json({ object: "list", data, model: engine.modelId, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } });
  });
}
