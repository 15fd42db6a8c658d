/**
 * POST /v1/completions: OpenAI's legacy text completion on a raw prompt (string or token
 * ids), with echo, legacy logprobs, stop strings, JSON mode, streaming and usage.
 */
import type { Hono } from "hono";
import type { TokenLogprob } from "../../engine/types.ts";
import type { AppEnv, ServerContext } from "../context.ts";
import { HttpError } from "../errors.ts";
import { parseCompletionRequest } from "../schema.ts";
import { sseResponse } from "../sse.ts";
import { checkFits } from "../token-bounds.ts";
import { clientGone, completionLogprobs, newId, readJson, unixTime, usageBody } from "./common.ts";
import { type GenerationSpec, prepareGeneration, type RunEvent } from "./generation.ts";

export function registerCompletions(app: Hono<AppEnv>, ctx: ServerContext): void {
  app.post("/v1/completions", async (c) => {
    const engine = ctx.engine();
    const request = parseCompletionRequest(readJson(c));
    const { prompt } = request;
    let constraint: GenerationSpec["constraint"];
    if (request.responseFormat.type === "json_object") constraint = { objectOnly: true };
    else if (request.responseFormat.type === "json_schema") constraint = { schema: request.responseFormat.schema };
    if (typeof prompt === "string") checkFits(engine.tokenizer, prompt, engine.contextLength, "prompt", "the context length");
    const promptTokens = typeof prompt === "string"
      ? Math.max(engine.tokenizer.encode(prompt, { addSpecialTokens: true }).length, 1)
      : prompt.length;
    const gone = clientGone(c);
    const prepared = prepareGeneration(ctx, { prompt, options: request.options, constraint, promptTokens }, gone.signal);
    const echo = request.echo ? (typeof prompt === "string" ? prompt : engine.tokenizer.decode(prompt)) : "";
    const id = newId("cmpl");
    const created = unixTime();
    const model = engine.modelId;
    const wantLogprobs = request.logprobs !== undefined;

    if (!request.stream) {
      const logprobs: TokenLogprob[] = [];
      let done: Extract<RunEvent, { type: "done" }> | undefined;
      for await (const event of prepared.run(gone.signal)) {
        if (event.type === "done") done = event;
        else if (event.logprob !== undefined) logprobs.push(event.logprob);
      }
      if (done === undefined) throw new HttpError(500, "internal_error", "the generation ended without a result");
      return c.json({
        id,
        object: "text_completion",
        created,
        model,
        system_fingerprint: null,
        choices: [{
          index: 0,
          text: echo + done.text,
          logprobs: wantLogprobs ? completionLogprobs(logprobs, echo.length) : null,
          finish_reason: done.finishReason,
        }],
        usage: usageBody(done.usage),
      });
    }

    const chunk = (text: string, finishReason: string | null, logprobs: unknown = null) => ({
      id,
      object: "text_completion",
      created,
      model,
      system_fingerprint: null,
      choices: [{ index: 0, text, logprobs, finish_reason: finishReason }],
      ...(request.includeUsage ? { usage: null } : {}),
    });
    return sseResponse(async (writer, signal) => {
      let offset = echo.length;
      if (echo !== "") writer.send(chunk(echo, null));
      for await (const event of prepared.run(signal)) {
        if (event.type === "text") {
          const logprobs = wantLogprobs && event.logprob !== undefined ? completionLogprobs([event.logprob], offset) : null;
          offset += event.text.length;
          if (event.text !== "" || logprobs !== null) writer.send(chunk(event.text, null, logprobs));
          continue;
        }
        writer.send(chunk("", event.finishReason));
        if (request.includeUsage) {
          writer.send({ id, object: "text_completion", created, model, choices: [], usage: usageBody(event.usage) });
        }
        writer.send("[DONE]");
      }
    }, {
      keepAliveMs: ctx.keepAliveMs,
      signal: gone.signal,
      onCancel: () => gone.abort(),
      onError: (error) => ctx.log(`stream error ${id}: ${(error as Error)?.message}`),
    });
  });
}
