// The app against the official openai SDK (requests go to app.fetch): chat and completions,
// streamed and not, embeddings with the SDK's base64 default, models, typed errors,
// tokenize/detokenize, JSON mode, forced tool calls, tool_choice "none", an aborted stream
// freeing its slot, and /health while the model loads. Real weights: stories260K.
import { beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import type { Engine } from "../../runtime/engine/types.ts";
import { createApp } from "../../runtime/server/app.ts";
import { createRequestQueue } from "../../runtime/server/queue.ts";
import { haveFiles } from "../shared-data.ts";
import { COMPACT_TOOL_TEMPLATE, sdkClient, storiesEngine } from "./helpers.ts";

const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin");
const quiet = { log: () => {} };
const user = (content: string) => [{ role: "user" as const, content }];
const WEATHER_TOOL = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "Current weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" } }, required: ["city", "days"] },
  },
};

describe.skipIf(!available)("openai SDK against createApp", () => {
  let engine: Engine;
  let client: OpenAI;
  let toolClient: OpenAI;
  beforeAll(async () => {
    engine = await storiesEngine();
    client = sdkClient(createApp(engine, quiet).fetch);
    toolClient = sdkClient(createApp(await storiesEngine({ chatTemplate: COMPACT_TOOL_TEMPLATE }), quiet).fetch);
  });

  test("chat, not streamed: OpenAI shape, usage, greedy output equals the streamed one", async () => {
    const request = { model: "any", messages: user("Tell me a story"), max_tokens: 12, temperature: 0 };
    const reply = await client.chat.completions.create(request);
    expect(reply.object).toBe("chat.completion");
    expect(reply.model).toBe("stories260K.bin");
    const choice = reply.choices[0];
    expect(choice.message.role).toBe("assistant");
    expect(typeof choice.message.content).toBe("string");
    expect(choice.message.content!.length).toBeGreaterThan(0);
    expect(choice.finish_reason).toBe("length");
    expect(reply.usage!.completion_tokens).toBe(12);
    expect(reply.usage!.total_tokens).toBe(reply.usage!.prompt_tokens + 12);

    const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
    let text = "";
    const finishes: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    let first = true;
    const ids = new Set<string>();
    for await (const chunk of stream) {
      expect(chunk.object).toBe("chat.completion.chunk");
      ids.add(chunk.id);
      if (chunk.choices.length === 0) {
        usage = chunk.usage;
        continue;
      }
      if (first) expect(chunk.choices[0].delta.role).toBe("assistant");
      first = false;
      text += chunk.choices[0].delta.content ?? "";
      finishes.push(chunk.choices[0].finish_reason);
    }
    expect(ids.size).toBe(1);
    expect(text).toBe(choice.message.content!);
    expect(finishes.at(-1)).toBe("length");
    expect(finishes.slice(0, -1).every((f) => f === null)).toBe(true);
    expect(usage).toEqual(reply.usage);
  });

  test("the SSE wire format: data frames, final finish_reason, [DONE]", async () => {
    const app = createApp(engine, quiet);
    const response = await app.fetch(
      new Request("http://x/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messages: user("Hi"), max_tokens: 3, stream: true }),
      }),
    );
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    const frames = (await response.text()).split("\n\n").filter((f) => f.startsWith("data: "));
    expect(frames.at(-1)).toBe("data: [DONE]");
    const last = JSON.parse(frames.at(-2)!.slice(6));
    expect(last.choices[0]).toEqual({ index: 0, delta: {}, logprobs: null, finish_reason: "length" });
  });

  test("chat logprobs in OpenAI's shape", async () => {
    const reply = await client.chat.completions.create({
      messages: user("Hi"),
      model: "m",
      max_tokens: 4,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
    });
    const content = reply.choices[0].logprobs!.content!;
    expect(content.length).toBe(4);
    for (const entry of content) {
      expect(entry.logprob).toBeLessThanOrEqual(0);
      expect(entry.top_logprobs.length).toBe(2);
      expect(entry.top_logprobs[0].token).toBe(entry.token);
      expect(entry.bytes).toEqual([...new TextEncoder().encode(entry.token)]);
    }
  });

  test("completions: greedy text, echo, stop, stream equals non-stream, legacy logprobs", async () => {
    const reply = await client.completions.create({ model: "m", prompt: "Once upon a time", max_tokens: 8, temperature: 0, logprobs: 2 });
    expect(reply.object).toBe("text_completion");
    expect(reply.choices[0].text.startsWith(", there was a little girl")).toBe(true);
    expect(reply.choices[0].logprobs!.tokens!.length).toBe(8);
    expect(Object.keys(reply.choices[0].logprobs!.top_logprobs![0]).length).toBe(2);
    const echoed = await client.completions.create({ model: "m", prompt: "Once upon a time", max_tokens: 8, temperature: 0, echo: true });
    expect(echoed.choices[0].text).toBe("Once upon a time" + reply.choices[0].text);
    const stopped = await client.completions.create({
      model: "m",
      prompt: "Once upon a time",
      max_tokens: 8,
      temperature: 0,
      stop: ["little"],
    });
    expect(stopped.choices[0].text).toBe(", there was a ");
    expect(stopped.choices[0].finish_reason).toBe("stop");
    let streamed = "";
    for await (
      const chunk of await client.completions.create({
        model: "m",
        prompt: "Once upon a time",
        max_tokens: 8,
        temperature: 0,
        stream: true,
      })
    ) {
      streamed += chunk.choices[0]?.text ?? "";
    }
    expect(streamed).toBe(reply.choices[0].text);
  });

  test("embeddings with the SDK's defaults (base64), float, and dimensions", async () => {
    const inputs = ["the cat sat", "a dog ran", "the cat sat"];
    const base64 = await client.embeddings.create({ model: "m", input: inputs });
    expect(base64.data.length).toBe(3);
    const width = engine.args.hiddenSize;
    const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    for (const item of base64.data) {
      expect(item.embedding.length).toBe(width);
      expect(norm(item.embedding)).toBeCloseTo(1, 4);
    }
    expect(base64.data[0].embedding).toEqual(base64.data[2].embedding);
    const float = await client.embeddings.create({ model: "m", input: inputs, encoding_format: "float" });
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < width; j++) expect(float.data[i].embedding[j]).toBeCloseTo(base64.data[i].embedding[j], 6);
    }
    const short = await client.embeddings.create({ model: "m", input: "the cat sat", dimensions: 16, encoding_format: "float" });
    expect(short.data[0].embedding.length).toBe(16);
    expect(norm(short.data[0].embedding)).toBeCloseTo(1, 5);
    expect(base64.usage.prompt_tokens).toBeGreaterThan(3);
  });

  test("models: list and retrieve; an unknown model is a typed 404", async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(["stories260K.bin"]);
    expect((await client.models.retrieve("stories260K.bin")).id).toBe("stories260K.bin");
    const error = await client.models.retrieve("gpt-9").catch((e) => e);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect(error.code).toBe("model_not_found");
  });

  test("typed SDK errors: 400 naming the param, 401, 404, 413", async () => {
    const bad = await client.chat.completions.create({ model: "m", messages: user("x"), n: 2 }).catch((e) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect(bad.param).toBe("n");
    const temp = await client.chat.completions.create({ model: "m", messages: user("x"), temperature: 7 }).catch((e) => e);
    expect(temp).toBeInstanceOf(OpenAI.BadRequestError);
    expect(temp.param).toBe("temperature");
    const long = await client.completions.create({ model: "m", prompt: "story ".repeat(400), max_tokens: 200 }).catch((e) => e);
    expect(long).toBeInstanceOf(OpenAI.BadRequestError);
    expect(long.code).toBe("context_length_exceeded");

    const locked = createApp(engine, { ...quiet, apiKey: "sk-right" });
    const wrong = await sdkClient(locked.fetch, "sk-wrong").models.list().catch((e) => e);
    expect(wrong).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(wrong.error.type).toBe("invalid_request_error");
    expect((await sdkClient(locked.fetch, "sk-right").models.list()).data.length).toBe(1);
    expect((await locked.fetch(new Request("http://x/health"))).status).toBe(200);

    const missing = await client.post("/nowhere", { body: {} }).catch((e) => e);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);

    const small = sdkClient(createApp(engine, { ...quiet, bodyLimit: 1024 }).fetch);
    const big = await small.chat.completions.create({ model: "m", messages: user("x".repeat(4096)) }).catch((e) => e);
    expect(big).toBeInstanceOf(OpenAI.APIError);
    expect(big.status).toBe(413);
    expect(big.error).toMatchObject({ type: "invalid_request_error", code: "request_too_large" });
  });

  test("tokenize and detokenize round-trip (llama-server shapes)", async () => {
    const root = new OpenAI({
      apiKey: "k",
      baseURL: "http://crumb.test",
      maxRetries: 0,
      fetch: (i, init) => Promise.resolve(createApp(engine, quiet).fetch(new Request(i, init))),
    });
    const text = "Once upon a time, Lily saw a big dog.";
    const { tokens } = await root.post<{ tokens: number[] }>("/tokenize", { body: { content: text } });
    expect(tokens).toEqual(engine.tokenizer.encode(text, { addSpecialTokens: false }));
    const { content } = await root.post<{ content: string }>("/detokenize", { body: { tokens } });
    expect(content).toBe(text);
    const withBos = await root.post<{ tokens: number[] }>("/tokenize", { body: { content: text, add_special: true } });
    expect(withBos.tokens[0]).toBe(engine.tokenizer.bosTokenId!);
  });

  test("response_format json_object and json_schema: the content parses", async () => {
    for (const seed of [1, 2]) {
      const reply = await client.chat.completions.create({
        model: "m",
        messages: user("Give me JSON"),
        max_tokens: 30,
        seed,
        response_format: { type: "json_object" },
      });
      const value = JSON.parse(reply.choices[0].message.content!);
      expect(value !== null && typeof value === "object" && !Array.isArray(value)).toBe(true);
    }
    const schema = {
      type: "object",
      properties: { name: { type: "string" }, age: { type: "integer" } },
      required: ["name", "age"],
      additionalProperties: false,
    };
    let streamed = "";
    const stream = await client.chat.completions.create({
      model: "m",
      messages: user("A person"),
      max_tokens: 40,
      seed: 3,
      stream: true,
      response_format: { type: "json_schema", json_schema: { name: "person", schema, strict: true } },
    });
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta.content ?? "";
    const person = JSON.parse(streamed);
    expect(Object.keys(person).sort()).toEqual(["age", "name"]);
    expect(Number.isInteger(person.age)).toBe(true);
  });

  test("tools: a forced call comes back as tool_calls, streamed and not", async () => {
    const reply = await toolClient.chat.completions.create({
      model: "m",
      messages: user("What is the weather in Paris?"),
      max_tokens: 120,
      seed: 5,
      tools: [WEATHER_TOOL],
      tool_choice: "required",
    });
    const choice = reply.choices[0];
    expect(choice.finish_reason).toBe("tool_calls");
    const call = choice.message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.type).toBe("function");
    expect(call.function.name).toBe("get_weather");
    const args = JSON.parse(call.function.arguments);
    expect(typeof args.city).toBe("string");
    expect(Number.isInteger(args.days)).toBe(true);

    const stream = await toolClient.chat.completions.create({
      model: "m",
      messages: user("Weather?"),
      max_tokens: 120,
      seed: 6,
      stream: true,
      tools: [WEATHER_TOOL],
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
    const calls: OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
    let finish: string | null = null;
    let content = "";
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (c === undefined) continue;
      calls.push(...(c.delta.tool_calls ?? []));
      content += c.delta.content ?? "";
      finish = c.finish_reason ?? finish;
    }
    expect(finish).toBe("tool_calls");
    expect(content).toBe("");
    expect(calls.length).toBe(1);
    expect(calls[0].function!.name).toBe("get_weather");
    expect(Object.keys(JSON.parse(calls[0].function!.arguments!)).sort()).toEqual(["city", "days"]);
  });

  test('tool_choice "none": the tools are not rendered and a reply shaped like a call stays content', async () => {
    // A JSON schema forces the reply into the shape the parser reads as a call when tools are on.
    const callShaped = {
      type: "object",
      properties: { name: { enum: ["get_weather"] }, arguments: WEATHER_TOOL.function.parameters },
      required: ["name", "arguments"],
    };
    const base = {
      model: "m",
      messages: user("Weather?"),
      max_tokens: 60,
      seed: 4,
      response_format: { type: "json_schema" as const, json_schema: { name: "call", schema: callShaped } },
    };
    const withoutTools = await toolClient.chat.completions.create(base);
    const none = await toolClient.chat.completions.create({ ...base, tools: [WEATHER_TOOL], tool_choice: "none" });
    const choice = none.choices[0];
    expect(choice.message.tool_calls).toBeUndefined();
    expect(choice.finish_reason).not.toBe("tool_calls");
    expect(JSON.parse(choice.message.content!).name).toBe("get_weather");
    // crumb leaves the tools out of the prompt under "none": the same prompt as without tools,
    // so the same seeded reply.
    expect(none.usage!.prompt_tokens).toBe(withoutTools.usage!.prompt_tokens);
    expect(choice.message.content).toBe(withoutTools.choices[0].message.content);

    let content = "";
    let finish: string | null = null;
    const stream = await toolClient.chat.completions.create({ ...base, stream: true, tools: [WEATHER_TOOL], tool_choice: "none" });
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (c === undefined) continue;
      expect(c.delta.tool_calls).toBeUndefined();
      content += c.delta.content ?? "";
      finish = c.finish_reason ?? finish;
    }
    expect(finish).toBe(choice.finish_reason);
    expect(content).toBe(choice.message.content!);

    // The same request with tool_choice "auto" renders the tools and reads the reply as a
    // call: without "none" the checks above would fail.
    const auto = await toolClient.chat.completions.create({ ...base, tools: [WEATHER_TOOL], tool_choice: "auto" });
    expect(auto.usage!.prompt_tokens).toBeGreaterThan(withoutTools.usage!.prompt_tokens);
    expect(auto.choices[0].finish_reason).toBe("tool_calls");
    expect(auto.choices[0].message.tool_calls![0]).toMatchObject({ type: "function", function: { name: "get_weather" } });
  });

  test("plain text with tools offered (tool_choice auto) stays content", async () => {
    const reply = await toolClient.chat.completions.create({
      model: "m",
      messages: user("Hi"),
      max_tokens: 6,
      temperature: 0,
      tools: [WEATHER_TOOL],
    });
    expect(reply.choices[0].finish_reason).toBe("length");
    expect(reply.choices[0].message.tool_calls).toBeUndefined();
    expect(reply.choices[0].message.content!.length).toBeGreaterThan(0);
  });

  test("an aborted stream frees its slot", async () => {
    const queue = createRequestQueue({ parallel: 1, depth: 0 });
    const app = createApp(engine, { ...quiet, queue });
    const local = sdkClient(app.fetch);
    const controller = new AbortController();
    const stream = await local.chat.completions.create(
      { model: "m", messages: user("Tell me a long story"), max_tokens: 300, stream: true },
      { signal: controller.signal },
    );
    let chunks = 0;
    // The SDK ends the iteration (or throws an abort error) once the request is aborted.
    await (async () => {
      for await (const _ of stream) if (++chunks === 3) controller.abort();
    })().catch((e) => expect(e).toBeInstanceOf(Error));
    expect(chunks).toBe(3);
    // The engine notices the abort within one token; the slot is then released.
    for (let i = 0; i < 200 && queue.running > 0; i++) await Bun.sleep(10);
    expect(queue.running).toBe(0);
    const next = await local.chat.completions.create({ model: "m", messages: user("Hi"), max_tokens: 2 });
    expect(next.choices[0].finish_reason).toBe("length");
  });

  test("/health answers 503 while the model loads, then 200; /metrics counts", async () => {
    let resolve!: (engine: Engine) => void;
    const app = createApp(new Promise<Engine>((r) => (resolve = r)), quiet);
    const loading = await app.fetch(new Request("http://x/health"));
    expect(loading.status).toBe(503);
    expect((await loading.json()).error.code).toBe("model_loading");
    expect((await app.fetch(new Request("http://x/v1/models"))).status).toBe(503);
    resolve(engine);
    await Promise.resolve();
    expect((await app.fetch(new Request("http://x/health"))).status).toBe(200);
    await sdkClient(app.fetch).completions.create({ model: "m", prompt: "Once", max_tokens: 3 });
    const metrics = await (await app.fetch(new Request("http://x/metrics"))).text();
    expect(metrics).toContain('crumb_requests_total{route="/health",status="503"} 1');
    expect(metrics).toContain("crumb_completion_tokens_total 3");
    expect(metrics).toContain("crumb_queue_depth 0");
  });
});
