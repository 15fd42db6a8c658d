// Hostile connections against a real Bun listener on 127.0.0.1 (raw TCP where a client must
// misbehave): a body that stalls or trickles is answered 408 and closed after the read timeout
// (configured short here); open requests are capped; a client that gives up mid-body is a
// logged 499, never a 500; oversized headers get a 431; and a stream that stays silent longer
// than Bun's idle timer (held at the forward gate) is not cut.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { createApp } from "../../runtime/server/app.ts";
import { listenBun, type Listener } from "../../runtime/server/entry-bun.ts";
import { createRequestQueue } from "../../runtime/server/queue.ts";
import { haveFiles } from "../shared-data.ts";
import { sseData, until } from "../server/helpers.ts";
import { expectOpenAIError, type TimedEngine, timedStoriesEngine } from "./helpers.ts";

/** Slices of model work stretch on a loaded machine; the bounds are by counting, this limit is a backstop. */
const SLOW = 60_000;

const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin");
const READ_TIMEOUT_MS = 1000;
const MAX_CONNECTIONS = 4;
/**
 * Longer than Bun's idle timer can wait: uSockets checks timeouts every 4 s, so an idle timeout
 * of 1 s cuts a silent response after 4 to 8 s. Only the lifted limit keeps such a stream open.
 */
const KEEP_ALIVE_MS = 9000;

interface RawClient {
  readonly socket: Socket;
  /** Everything received so far. */
  received(): string;
  /** Resolves with the milliseconds from connecting until the server closed the connection. */
  readonly closed: Promise<number>;
}

/** Opens a TCP connection and writes `head` at once. */
function rawClient(url: string, head: string): Promise<RawClient> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let text = "";
    let closedAt: (ms: number) => void;
    const closed = new Promise<number>((r) => (closedAt = r));
    const socket = connect(Number(port), hostname, () => {
      socket.write(head);
      resolve({ socket, received: () => text, closed });
    });
    socket.on("data", (data) => (text += data.toString()));
    socket.on("close", () => closedAt(performance.now() - start));
    socket.on("error", reject);
  });
}

const partialPost = (path: string, declared: number, sent: string) =>
  `POST ${path} HTTP/1.1\r\nHost: crumb.test\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n${sent}`;

describe.skipIf(!available)("hostile connections to a Bun listener", () => {
  let timed: TimedEngine;
  let listener: Listener;
  const log: string[] = [];
  const queue = createRequestQueue({ parallel: 1, depth: 4 });
  beforeAll(async () => {
    timed = await timedStoriesEngine();
    const app = createApp(timed.engine, {
      queue,
      log: (line) => log.push(line),
      readTimeoutMs: READ_TIMEOUT_MS,
      maxConnections: MAX_CONNECTIONS,
      keepAliveMs: KEEP_ALIVE_MS,
    });
    listener = await listenBun(app, { hostname: "127.0.0.1", port: 0, readTimeoutSeconds: READ_TIMEOUT_MS / 1000 });
  });
  afterAll(async () => {
    await listener?.stop(true);
  });

  /** Waits until the server counts `n` open requests (its /metrics gauge): it has their headers. */
  async function openRequestsReach(n: number): Promise<void> {
    for (let i = 0; i < 1000; i++) {
      const metrics = await (await fetch(`${listener.url}/metrics`)).text();
      if (Number(/crumb_requests_open (\d+)/.exec(metrics)?.[1]) >= n) return;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    throw new Error(`the server never counted ${n} open requests`);
  }

  test("a stalled body and a trickling body are answered 408 and closed after the read timeout", async () => {
    const stalled = await rawClient(listener.url, partialPost("/v1/completions", 200, '{"prompt":'));
    const trickling = await rawClient(listener.url, partialPost("/v1/embeddings", 5000, '{"input":"'));
    const drip = setInterval(() => trickling.socket.write("a"), 100);
    try {
      const [stalledMs, tricklingMs] = await Promise.all([stalled.closed, trickling.closed]);
      for (const [client, ms] of [[stalled, stalledMs], [trickling, tricklingMs]] as const) {
        expect(client.received()).toStartWith("HTTP/1.1 408");
        expect(client.received()).toContain('"code":"request_timeout"');
        // Closed at the deadline (not before), well before a second one would pass.
        expect(ms).toBeGreaterThanOrEqual(READ_TIMEOUT_MS - 50);
        expect(ms).toBeLessThan(READ_TIMEOUT_MS * 5);
      }
    } finally {
      clearInterval(drip);
    }
    expect(log.some((line) => / POST \/v1\/completions 408 /.test(line))).toBe(true);
  }, SLOW);

  test("open requests are capped: one more gets 503 with Retry-After while /health still answers", async () => {
    const held = await Promise.all(
      Array.from({ length: MAX_CONNECTIONS }, () => rawClient(listener.url, partialPost("/tokenize", 100, "{"))),
    );
    await openRequestsReach(MAX_CONNECTIONS);
    const refused = await fetch(`${listener.url}/v1/models`);
    expect(refused.headers.get("retry-after")).toBe("1");
    await expectOpenAIError(refused, 503, "too_many_connections");
    expect((await fetch(`${listener.url}/health`)).status).toBe(200);
    expect((await fetch(`${listener.url}/metrics`)).status).toBe(200);
    await Promise.all(held.map((client) => client.closed));
    expect((await fetch(`${listener.url}/v1/models`)).status).toBe(200);
  }, SLOW);

  test("a client that gives up mid-body is logged as 499, counted as 499, and is not an error", async () => {
    const client = await rawClient(listener.url, partialPost("/v1/chat/completions", 500, '{"messages":[{"role":"user","content":"'));
    await openRequestsReach(1);
    client.socket.destroy();
    await until(() => log.some((line) => / POST \/v1\/chat\/completions 499 /.test(line)), "the 499 access-log line");
    const metrics = await (await fetch(`${listener.url}/metrics`)).text();
    expect(metrics).toContain('route="/v1/chat/completions",status="499"');
    expect(metrics).not.toContain('status="500"');
    expect(log.some((line) => line.startsWith("error "))).toBe(false);
  }, SLOW);

  test("headers over 8 KiB get the OpenAI-shaped 431; beyond Bun's own 16 KiB limit, Bun's bare 431", async () => {
    const shaped = await fetch(`${listener.url}/v1/models`, { headers: { authorization: `Bearer ${"k".repeat(12_000)}` } });
    await expectOpenAIError(shaped, 431, "request_header_fields_too_large");
    const huge = await rawClient(
      listener.url,
      `GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${"k".repeat(100_000)}\r\n\r\n`,
    );
    await huge.closed;
    expect(huge.received()).toStartWith("HTTP/1.1 431");
  }, SLOW);

  test("a stream silent for longer than Bun's idle timer is not cut, and gets its keep-alive comment", async () => {
    const gate = timed.counter.gate;
    gate.close();
    try {
      const streamed = await fetch(`${listener.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "Once", max_tokens: 3, stream: true }),
      });
      expect(streamed.status).toBe(200);
      const reader = streamed.body!.getReader();
      const decoder = new TextDecoder();
      let text = "";
      const started = performance.now();
      // Held at the prefill: nothing but the opening comment for KEEP_ALIVE_MS, then a keep-alive.
      while (!text.includes(": keep-alive")) {
        const { done, value } = await reader.read();
        if (done) throw new Error(`the stream was cut after ${(performance.now() - started).toFixed(0)} ms of silence`);
        text += decoder.decode(value);
      }
      expect(performance.now() - started).toBeGreaterThan(KEEP_ALIVE_MS - 100);
      expect(text).not.toContain("data:");
      gate.open();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value);
      }
      expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);
    } finally {
      gate.open();
    }
  }, SLOW);

  test("/health stays open while streams read their frames", async () => {
    const response = await fetch(`${listener.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: "Hi" }], max_tokens: 4, stream: true }),
    });
    const frames: string[] = [];
    for await (const frame of sseData(response.body!)) frames.push(frame);
    expect(frames.at(-1)).toBe("[DONE]");
    expect((await fetch(`${listener.url}/health`)).status).toBe(200);
  }, SLOW);
});
