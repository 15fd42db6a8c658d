/**
 * The small routes: GET /v1/models and /v1/models/:id, GET /health (503 until the model is
 * loaded), GET /metrics (Prometheus text), and llama-server's POST /tokenize
 * ({content, add_special, with_pieces} → {tokens}) and POST /detokenize ({tokens} → {content}),
 * each capped in size (MAX_TOKENIZE_CHARS, MAX_DETOKENIZE_TOKENS).
 */
import type { Hono } from "hono";
import { InvalidArgumentError } from "../../errors.ts";
import type { AppEnv, ServerContext } from "../context.ts";
import { HttpError } from "../errors.ts";
import { checkFields, optionalBoolean } from "../schema.ts";
import { readJson } from "./common.ts";

/**
 * Tokenizing runs on the event loop in one piece (about 1 µs a character with a SentencePiece
 * vocabulary on the test machine), so one request's text is capped to keep it near 60 ms.
 */
export const MAX_TOKENIZE_CHARS = 65_536;
export const MAX_DETOKENIZE_TOKENS = 65_536;

export function registerMisc(app: Hono<AppEnv>, ctx: ServerContext): void {
  const started = Math.floor(Date.now() / 1000);
  const modelCard = () => {
    const engine = ctx.engine();
    return {
      id: engine.modelId,
      object: "model",
      created: started,
      owned_by: "crumb",
      meta: {
        context_length: engine.contextLength,
        vocab_size: engine.tokenizer.vocabSize,
        // Which chat template /v1/chat/completions renders with: the model's own, or ChatML standing in.
        chat_template: engine.chatTemplateFallback === "chatml" ? "chatml (fallback: the model ships none)" : "model",
      },
    };
  };

  app.get("/health", (c) => {
    ctx.engine();
    return c.json({ status: "ok" });
  });

  app.get("/metrics", (c) => {
    const text = ctx.metrics.render({ running: ctx.queue.running, waiting: ctx.queue.waiting, loaded: ctx.loaded, open: ctx.openRequests });
    return c.body(text, 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
  });

  app.get("/v1/models", (c) => c.json({ object: "list", data: [modelCard()] }));

  app.get("/v1/models/:id{.+}", (c) => {
    const card = modelCard();
    const wanted = c.req.param("id");
    if (wanted !== card.id) {
      throw new HttpError(404, "model_not_found", `The model '${wanted}' does not exist; this server serves '${card.id}'`, {
        param: "model",
      });
    }
    return c.json(card);
  });

  app.post("/tokenize", async (c) => {
    const engine = ctx.engine();
    const body = readJson(c);
    checkFields(body, ["content", "add_special", "with_pieces", "parse_special"]);
    if (typeof body.content !== "string") throw new InvalidArgumentError("content", "content must be a string");
    if (body.content.length > MAX_TOKENIZE_CHARS) {
      throw new InvalidArgumentError(
        "content",
        `content is ${body.content.length} characters; /tokenize takes at most ${MAX_TOKENIZE_CHARS} per request (tokenizing holds the server); split it`,
      );
    }
    const tokens = engine.tokenizer.encode(body.content, { addSpecialTokens: optionalBoolean(body, "add_special") ?? false });
    if (optionalBoolean(body, "with_pieces")) {
      return c.json({ tokens: tokens.map((id) => ({ id, piece: engine.tokenizer.decode([id]) })) });
    }
    return c.json({ tokens });
  });

  app.post("/detokenize", async (c) => {
    const engine = ctx.engine();
    const body = readJson(c);
    checkFields(body, ["tokens"]);
    const tokens = body.tokens;
    const vocab = engine.tokenizer.vocabSize;
    if (!Array.isArray(tokens) || !tokens.every((id) => typeof id === "number" && Number.isInteger(id) && id >= 0 && id < vocab)) {
      throw new InvalidArgumentError("tokens", `tokens must be an array of token ids in [0, ${vocab})`);
    }
    if (tokens.length > MAX_DETOKENIZE_TOKENS) {
      throw new InvalidArgumentError(
        "tokens",
        `tokens holds ${tokens.length} ids; /detokenize takes at most ${MAX_DETOKENIZE_TOKENS} per request; split it`,
      );
    }
    return c.json({ content: engine.tokenizer.decode(tokens as number[]) });
  });
}
