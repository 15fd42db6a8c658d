/**
 * POST /v1/chat/completions: renders the conversation with the model's chat template
 * (tools included), generates under the requested constraint (JSON mode, JSON schema, or a
 * forced tool call), and answers in OpenAI's `chat.completion` shape or as a stream of
 * `chat.completion.chunk` events. Tool calls in the output become `tool_calls` with
 * finish_reason "tool_calls".
 */
import type { Hono } from "hono";
import type { AppEnv, ServerContext } from "../context.ts";
import { HttpError } from "../errors.ts";
import { parseChatRequest } from "../schema.ts";
import { sseResponse } from "../sse.ts";
import { createToolStream, detectToolFormat, forcedToolCall, type ParsedToolCall, parseToolCalls, type ToolFormat } from "../tool-calls.ts";
import { checkFits } from "../token-bounds.ts";
import { chatLogprob, clientGone, newId, readJson, unixTime, usageBody } from "./common.ts";
import { type GenerationSpec, prepareGeneration, type RunEvent } from "./generation.ts";
import { CHATML_STOP } from "../../tokenizer/chat-template.ts";

function toolCallsBody(calls: readonly ParsedToolCall[], withIndex: boolean) {
  return calls.map((call, index) => ({
    ...(withIndex ? { index } : {}),
    id: `call_${crypto.randomUUID().replace(/-/g, "").slice(0, 24)}`,
    type: "function" as const,
    function: { name: call.name, arguments: call.arguments },
  }));
}

export function registerChat(app: Hono<AppEnv>, ctx: ServerContext): void {
  app.post("/v1/chat/completions", async (c) => {
    const engine = ctx.engine();
    const request = parseChatRequest(readJson(c));
    const useTools = request.tools.length > 0 && request.toolChoice !== "none";
    const prompt = engine.applyChatTemplate(request.messages, {
      tools: useTools ? request.rawTools : undefined,
      chatTemplate: request.options.chatTemplate,
    });
    checkFits(engine.tokenizer, prompt, engine.contextLength, "messages", "the context length");
    const ids = engine.tokenizer.encode(prompt, { addSpecialTokens: false });
    const format: ToolFormat | undefined = useTools ? detectToolFormat(prompt) : undefined;
    let constraint: GenerationSpec["constraint"];
    let constraintParam: string | undefined;
    if (format !== undefined && (request.toolChoice === "required" || typeof request.toolChoice === "object")) {
      constraint = forcedToolCall(format, request.tools, request.toolChoice);
      constraintParam = "tools";
    } else if (request.responseFormat.type === "json_object") constraint = { objectOnly: true };
    else if (request.responseFormat.type === "json_schema") constraint = { schema: request.responseFormat.schema };

    const gone = clientGone(c);
    // Under the ChatML fallback a model may spell <|im_end|> as text: it ends the turn too.
    const options = engine.chatTemplateFallback === "chatml"
      ? { ...request.options, stop: [...(request.options.stop ?? []), CHATML_STOP] }
      : request.options;
    const prepared = prepareGeneration(
      ctx,
      { prompt: ids, options, constraint, constraintParam, promptTokens: ids.length },
      gone.signal,
    );
    const id = newId("chatcmpl");
    const created = unixTime();
    const model = engine.modelId;

    if (!request.stream) {
      const logprobs: ReturnType<typeof chatLogprob>[] = [];
      let done: Extract<RunEvent, { type: "done" }> | undefined;
      for await (const event of prepared.run(gone.signal)) {
        if (event.type === "done") done = event;
        else if (event.logprob !== undefined) logprobs.push(chatLogprob(event.logprob));
      }
      if (done === undefined) throw new HttpError(500, "internal_error", "the generation ended without a result");
      const parsed = format === undefined ? { content: done.text, calls: [] } : parseToolCalls(done.text, format);
      const hasCalls = parsed.calls.length > 0;
      return c.json({
        id,
        object: "chat.completion",
        created,
        model,
        system_fingerprint: null,
        choices: [{
          index: 0,
          message: {
            role: "assistant",
            content: hasCalls ? parsed.content : done.text,
            refusal: null,
            ...(hasCalls ? { tool_calls: toolCallsBody(parsed.calls, false) } : {}),
          },
          logprobs: request.logprobs ? { content: logprobs, refusal: null } : null,
          finish_reason: hasCalls ? "tool_calls" : done.finishReason,
        }],
        usage: usageBody(done.usage),
      });
    }

    const chunk = (delta: Record<string, unknown>, finishReason: string | null, logprobs: unknown[] | null = null) => ({
      id,
      object: "chat.completion.chunk",
      created,
      model,
      system_fingerprint: null,
      choices: [{
        index: 0,
        delta,
        logprobs: logprobs === null ? null : { content: logprobs, refusal: null },
        finish_reason: finishReason,
      }],
      ...(request.includeUsage ? { usage: null } : {}),
    });
    return sseResponse(async (writer, signal) => {
      const tools = format === undefined ? undefined : createToolStream(format);
      let started = false;
      const start = () => {
        if (!started) writer.send(chunk({ role: "assistant", content: "" }, null));
        started = true;
      };
      for await (const event of prepared.run(signal)) {
        start();
        if (event.type === "text") {
          const content = tools === undefined ? event.text : tools.push(event.text);
          const logprobs = request.logprobs && event.logprob !== undefined ? [chatLogprob(event.logprob)] : null;
          if (content !== "" || logprobs !== null) writer.send(chunk({ content }, null, logprobs));
          continue;
        }
        const finished = tools?.finish();
        if (finished !== undefined && finished.content !== "") writer.send(chunk({ content: finished.content }, null));
        if (finished !== undefined && finished.calls.length > 0) {
          writer.send(chunk({ tool_calls: toolCallsBody(finished.calls, true) }, null));
          writer.send(chunk({}, "tool_calls"));
        } else writer.send(chunk({}, event.finishReason));
        if (request.includeUsage) {
          writer.send({
            id,
            object: "chat.completion.chunk",
            created,
            model,
            system_fingerprint: null,
            choices: [],
            usage: usageBody(event.usage),
          });
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
