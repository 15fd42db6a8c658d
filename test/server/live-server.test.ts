// A real Bun.serve listener on 127.0.0.1 (port 0) in front of the app: the openai SDK over
// HTTP, 200 malformed requests that each get a 4xx OpenAI error while the server keeps
// serving, a second request over a shared prefix that feeds only its new tokens, a client
// that disconnects mid-stream costing at most one token beyond the chunks it read, and 32
// concurrent streaming clients against --queue 8 with the one slot held busy: exactly 8 wait
// and complete, the other 23 get 503, and memory is back near its baseline afterwards. The
// engine's forward calls are counted and, where a test needs it, held at a gate
// (test/counting-backend.ts), so these bounds are exact and never decided by timing.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Hono } from "hono";
import OpenAI from "openai";
import type { Engine } from "../../runtime/engine/types.ts";
import { createApp } from "../../runtime/server/app.ts";
import type { AppEnv } from "../../runtime/server/context.ts";
import { listenBun, type Listener } from "../../runtime/server/entry-bun.ts";
import { createRequestQueue } from "../../runtime/server/queue.ts";
import type { CountingBackend } from "../counting-backend.ts";
import { haveFiles } from "../shared-data.ts";
import { countingStoriesEngine, sseData, until } from "./helpers.ts";

const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin");
const user = (content: string) => [{ role: "user", content }];

/** Malformed requests: [path, body bytes or text, description]. */
function malformedRequests(): { path: string; body: string | Uint8Array; method?: string; why: string }[] {
  const chat = (extra: Record<string, unknown>) => JSON.stringify({ messages: user("Hi"), max_tokens: 4, ...extra });
  const cases: { path: string; body: string | Uint8Array; method?: string; why: string }[] = [];
  const add = (path: string, body: string | Uint8Array, why: string, method?: string) => cases.push({ path, body, why, method });
  for (
    const text of [
      "{",
      '{"messages": [}',
      "nul",
      "[]",
      '"text"',
      "",
      "   ",
      "{}{}",
      '{"messages":[{"role":"user","content":"x"}]',
      "\u0000",
      "42",
      "null",
    ]
  ) {
    for (const path of ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/tokenize"]) {
      add(path, text, `bad JSON ${JSON.stringify(text)}`);
    }
  }
  const wrongTypes: Record<string, unknown>[] = [
    { messages: "Hi" },
    { messages: 5 },
    { messages: [] },
    { messages: [{ role: 5, content: "x" }] },
    { messages: [{ role: "wizard", content: "x" }] },
    { messages: [{ role: "user", content: 7 }] },
    { messages: [{ role: "user", content: [{ type: "image_url", image_url: "x" }] }] },
    { messages: [null] },
    { max_tokens: "10" },
    { temperature: "hot" },
    { stop: 5 },
    { stop: [1, 2] },
    { stream: "yes" },
    { tools: "x" },
    { tools: [{ type: "function" }] },
    { response_format: "json" },
    { response_format: { type: "xml" } },
    { n: "2" },
    { seed: 1.5 },
    { logprobs: "true" },
    { top_logprobs: 3 },
    { tool_choice: "sometimes" },
    { tool_choice: { type: "function", function: { name: "nope" } } },
    { stream_options: 3 },
    { logit_bias: { "1": 5 } },
  ];
  for (const extra of wrongTypes) add("/v1/chat/completions", chat(extra), `wrong type ${JSON.stringify(extra)}`);
  const numbers: Record<string, unknown>[] = [
    { max_tokens: 1e30 },
    { max_tokens: -1 },
    { max_tokens: 0 },
    { max_completion_tokens: -5 },
    { temperature: -1 },
    { temperature: 1e308 },
    { top_p: 2 },
    { top_p: -0.1 },
    { top_k: -5 },
    { top_k: 0.5 },
    { min_p: 3 },
    { seed: 1e300 },
    { presence_penalty: 5 },
    { frequency_penalty: -9 },
    { repetition_penalty: 0 },
    { top_logprobs: 50, logprobs: true },
    { n: 2 },
    { n: 0 },
    { max_tokens: 100000 },
  ];
  for (const extra of numbers) {
    add("/v1/chat/completions", chat(extra), `number ${JSON.stringify(extra)}`);
    add("/v1/completions", JSON.stringify({ prompt: "Once", max_tokens: 4, ...extra }), `number ${JSON.stringify(extra)}`);
  }
  add("/v1/chat/completions", '{"messages":[{"role":"user","content":"x"}],"temperature":1e400}', "1e400");
  const completionTypes: Record<string, unknown>[] = [
    { prompt: 5 },
    { prompt: null },
    { prompt: {} },
    { prompt: [[1, "a"]] },
    { prompt: [] },
    { prompt: "x", echo: "y" },
    { prompt: "x", logprobs: 10 },
    { prompt: "x", logprobs: true },
    { prompt: "x", best_of: 3 },
    { prompt: "x", stream: "no" },
    { prompt: "x", max_tokens: "10" },
    { prompt: "x", temperature: "hot" },
    { prompt: "x", stop: 5 },
    { prompt: "x", stop: [1, 2] },
    { prompt: "x", n: "2" },
    { prompt: "x", seed: 1.5 },
    { prompt: "x", stream_options: 3 },
    { prompt: "x", logit_bias: { "1": 5 } },
    { prompt: "x", stop: Array.from({ length: 20 }, () => "a") },
    { prompt: "x", response_format: { type: "json_schema" } },
  ];
  for (const body of completionTypes) add("/v1/completions", JSON.stringify(body), `completion ${JSON.stringify(body)}`);
  for (const body of [{ content: null }, { content: [] }, { content: "x", add_special: "yes" }, { content: "x", extra: 1 }]) {
    add("/tokenize", JSON.stringify(body), "tokenize");
  }
  for (const body of [{ tokens: [1.5] }, { tokens: [null] }, { tokens: {} }, {}]) add("/detokenize", JSON.stringify(body), "detokenize");
  for (
    const msg of [{ role: "assistant", tool_calls: "x" }, { role: "assistant", tool_calls: [{}] }, { role: "user", content: { text: "x" } }]
  ) {
    add("/v1/chat/completions", JSON.stringify({ messages: [...user("Hi"), msg] }), `message ${JSON.stringify(msg)}`);
  }
  for (const field of ["foo", "messages_", "Temperature", "functionz"]) {
    add("/v1/chat/completions", chat({ [field]: 1 }), `unknown field ${field}`);
    add("/v1/completions", JSON.stringify({ prompt: "x", [field]: true }), `unknown field ${field}`);
    add("/v1/embeddings", JSON.stringify({ input: "x", [field]: 0 }), `unknown field ${field}`);
  }
  add("/v1/chat/completions", chat({ stream_options: { include_usage: true, extra: 1 } }), "unknown nested field");
  const utf8 = [[0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d], [0x7b, 0x22, 0x6d, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d], [0xed, 0xa0, 0x80], [
    0xc0,
    0xaf,
  ], [0xfe, 0xff]];
  for (const bytes of utf8) {
    for (const path of ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]) add(path, new Uint8Array(bytes), "invalid UTF-8");
  }
  const huge = "x".repeat(10 * 1024 * 1024);
  add("/v1/chat/completions", JSON.stringify({ messages: user(huge) }), "10 MB chat");
  add("/v1/embeddings", JSON.stringify({ input: huge }), "10 MB embeddings");
  add("/v1/completions", JSON.stringify({ prompt: huge }), "10 MB completion");
  const long = "Once upon a time there was a story. ".repeat(200);
  add("/v1/chat/completions", JSON.stringify({ messages: user(long) }), "prompt beyond the context");
  add("/v1/completions", JSON.stringify({ prompt: long }), "prompt beyond the context");
  add("/v1/completions", JSON.stringify({ prompt: "Once", max_tokens: 600 }), "max_tokens beyond the context");
  add("/v1/chat/completions", JSON.stringify({ messages: user(long), stream: true }), "streamed prompt beyond the context");
  add("/v1/embeddings", JSON.stringify({ input: [long] }), "embedding input beyond the context");
  for (const input of [5, [], [[-1]], [[1e9]], [null], { text: "x" }]) {
    add("/v1/embeddings", JSON.stringify({ input }), `embedding input ${JSON.stringify(input)}`);
  }
  add("/v1/embeddings", JSON.stringify({ input: "x", encoding_format: "hex" }), "encoding_format");
  add("/v1/embeddings", JSON.stringify({ input: "x", dimensions: 100000 }), "dimensions too large");
  add("/v1/embeddings", JSON.stringify({ input: "x", dimensions: -3 }), "dimensions negative");
  add("/v1/completions", JSON.stringify({ prompt: ["a", "b"] }), "several prompts");
  add("/v1/completions", JSON.stringify({ prompt: [1, 2, 99999] }), "token id outside the vocabulary");
  add("/v1/completions", JSON.stringify({ prompt: "x", suffix: "y" }), "suffix");
  add("/tokenize", JSON.stringify({ content: 5 }), "tokenize content");
  add("/detokenize", JSON.stringify({ tokens: [-1] }), "detokenize negative");
  add("/detokenize", JSON.stringify({ tokens: [99999] }), "detokenize outside");
  add("/detokenize", JSON.stringify({ tokens: "abc" }), "detokenize string");
  add("/v1/chat/completions", "", "GET on a POST route", "GET");
  add("/v1/nothing", "{}", "unknown route");
  add("/v1/models/nope", "", "unknown model", "GET");
  add("/v1/chat/completions", chat({ tool_choice: "required" }), "tool_choice required without tools");
  add("/v1/chat/completions", chat({ chat_template: "nope" }), "unknown chat template name");
  add(
    "/v1/chat/completions",
    chat({ response_format: { type: "json_schema", json_schema: { name: "x", schema: [] } } }),
    "schema not an object",
  );
  return cases;
}

describe.skipIf(!available)("a real Bun server on 127.0.0.1", () => {
  let engine: Engine;
  let counter: CountingBackend;
  let listener: Listener;
  const queue = createRequestQueue({ parallel: 1, depth: 8 });
  /** Every request the listener received, to see when the server noticed a client leave. */
  const received: Request[] = [];
  beforeAll(async () => {
    ({ engine, counter } = await countingStoriesEngine());
    const app = createApp(engine, { queue, log: () => {} });
    const front = new Hono<AppEnv>().all("*", (c) => {
      received.push(c.req.raw);
      return app.fetch(c.req.raw, c.env);
    });
    listener = await listenBun(front, { hostname: "127.0.0.1", port: 0 });
  });
  afterAll(async () => {
    await listener?.stop(true);
  });

  test("the openai SDK over HTTP: streamed chat", async () => {
    const client = new OpenAI({ apiKey: "k", baseURL: `${listener.url}/v1`, maxRetries: 0, timeout: 20_000 });
    let text = "";
    let finish: string | null = null;
    for await (
      const chunk of await client.chat.completions.create({
        model: "m",
        messages: user("Hi") as never,
        max_tokens: 8,
        stream: true,
        seed: 1,
      })
    ) {
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(finish).toBe("length");
  });

  test("a second request over the first one's tokens feeds only the tokens after the cached prefix", async () => {
    const complete = async (prompt: number[]) => {
      const response = await fetch(`${listener.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt, max_tokens: 4, temperature: 0 }),
      });
      expect(response.status).toBe(200);
      return response.json();
    };
    const first = engine.tokenizer.encode("Once upon a time, there was a dog", { addSpecialTokens: true });
    await complete(first);
    const second = [...first, ...engine.tokenizer.encode(" named Max. He", { addSpecialTokens: false })];
    const mark = counter.mark();
    expect((await complete(second)).usage.completion_tokens).toBe(4);
    const [prefill, ...decode] = counter.since(mark);
    // The cache held `first` and some generated tokens; the new tokens start at or after `first`.
    expect(prefill.position).toBeGreaterThanOrEqual(first.length);
    expect(prefill.tokens).toEqual(second.slice(prefill.position));
    expect(decode.every((call) => call.tokens.length === 1)).toBe(true);
    expect(decode.length).toBe(3);
  });

  test("a client that disconnects mid-stream costs at most one token beyond the chunks it read, and frees the slot", async () => {
    const tokensTotal = async () => {
      const metrics = await (await fetch(`${listener.url}/metrics`)).text();
      return Number(/crumb_completion_tokens_total (\d+)/.exec(metrics)![1]);
    };
    const before = await tokensTotal();
    const READ = 3;
    const controller = new AbortController();
    const mark = counter.mark();
    // Forward calls wait at the gate: the server computes one token per chunk this client reads.
    counter.gate.close();
    try {
      const response = await fetch(`${listener.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        // logprobs: one chunk per token, even for a token whose text is held back.
        body: JSON.stringify({ prompt: "Once", max_tokens: 400, stream: true, temperature: 0, logprobs: 0 }),
        signal: controller.signal,
      });
      expect(response.status).toBe(200);
      const request = received.at(-1)!;
      expect(new URL(request.url).pathname).toBe("/v1/completions");
      counter.gate.allow(1); // the prefill
      const frames = sseData(response.body!);
      for (let read = 0; read < READ;) {
        const { value } = await frames.next();
        expect(JSON.parse(value!).choices[0].finish_reason).toBeNull();
        if (++read < READ) counter.gate.allow(1);
      }
      expect(queue.running).toBe(1);
      controller.abort();
      await until(() => request.signal.aborted, "the server to see the client leave");
      // The forward of the last token read may finish; the generation must then stop rather
      // than ask the gate for another token (a state, not a race: nothing else can let it on).
      counter.gate.allow(1);
      await until(() => queue.running === 0 || counter.gate.waiting > 0, "the generation to stop or ask for another forward");
      expect(counter.gate.waiting).toBe(0);
    } finally {
      counter.gate.open();
    }
    await until(() => queue.running === 0, "the slot to be freed");
    const generated = (await tokensTotal()) - before;
    expect(generated).toBeLessThanOrEqual(READ + 1);
    // Decode work: feeding back the tokens read, nothing after them.
    const decode = counter.since(mark).slice(1);
    expect(decode.length).toBeLessThanOrEqual(READ);
    expect(decode.every((call) => call.tokens.length === 1)).toBe(true);
  });

  test("200 malformed requests each get a 4xx OpenAI error, and the server keeps serving", async () => {
    const cases = malformedRequests();
    expect(cases.length).toBeGreaterThanOrEqual(200);
    for (const { path, body, method, why } of cases.slice(0, 200)) {
      const response = await fetch(listener.url + path, {
        method: method ?? "POST",
        body: method === "GET" ? undefined : body,
        headers: { "content-type": "application/json" },
        signal: AbortSignal.timeout(20_000),
      });
      const json = await response.json();
      if (response.status < 400 || response.status >= 500) throw new Error(`${why}: status ${response.status}`);
      expect(typeof json.error.message).toBe("string");
      expect(typeof json.error.type).toBe("string");
      expect("param" in json.error && "code" in json.error).toBe(true);
    }
    const ok = await fetch(`${listener.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "Once", max_tokens: 3 }),
    });
    expect(ok.status).toBe(200);
    expect((await ok.json()).choices[0].finish_reason).toBe("length");
  });

  test("a chunked 10 MB body without content-length is cut off with 413", async () => {
    const chunk = new TextEncoder().encode("x".repeat(1024 * 1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 10) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const response = await fetch(`${listener.url}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal: AbortSignal.timeout(20_000),
    });
    expect(response.status).toBe(413);
    expect((await response.json()).error.code).toBe("request_too_large");
  });

  test("32 concurrent streams against --queue 8 with the slot held: 8 wait and complete, 23 get 503 with Retry-After", async () => {
    const gc = () => (globalThis as { Bun?: { gc(full: boolean): void } }).Bun?.gc(true);
    gc();
    const baseline = process.memoryUsage().rss;
    const stream = (i: number) =>
      fetch(`${listener.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messages: user(`Story ${i}`), max_tokens: 6, stream: true, seed: i }),
        signal: AbortSignal.timeout(30_000),
      });
    const complete = async (response: Response) => {
      expect(response.status).toBe(200);
      const frames = (await response.text()).split("\n\n").filter((f) => f.startsWith("data: ")).map((f) => f.slice(6));
      expect(frames.at(-1)).toBe("[DONE]");
      const chunks = frames.slice(0, -1).map((f) => JSON.parse(f));
      expect(chunks.every((c) => c.object === "chat.completion.chunk" && c.error === undefined)).toBe(true);
      expect(chunks.at(-1).choices[0].finish_reason).toBe("length");
    };
    // The first request takes the one slot and is held at its prefill until every other has its answer.
    counter.gate.close();
    let admitted: Response[];
    try {
      const holder = stream(0);
      await until(() => queue.running === 1 && counter.gate.waiting === 1, "the first request to hold the slot");
      const others = await Promise.all(Array.from({ length: 31 }, (_, i) => stream(i + 1)));
      expect(queue.running).toBe(1);
      expect(queue.waiting).toBe(queue.depth);
      const busy = others.filter((r) => r.status === 503);
      expect(busy.length).toBe(31 - queue.depth);
      for (const response of busy) {
        expect(response.headers.get("retry-after")).toBe("1");
        expect((await response.json()).error.code).toBe("server_busy");
      }
      admitted = [await holder, ...others.filter((r) => r.status !== 503)];
    } finally {
      counter.gate.open();
    }
    expect(admitted.length).toBe(1 + queue.depth);
    await Promise.all(admitted.map(complete));
    expect(queue.running + queue.waiting).toBe(0);
    gc();
    expect(process.memoryUsage().rss).toBeLessThan(baseline + 64 * 1024 * 1024);
  });
});
