// The admission queue (FIFO order, 503 when full, waiting clients leaving, shutdown) and SSE
// keep-alive comments sent while a streamed request waits for its slot.
import { describe, expect, test } from "bun:test";
import { createApp } from "../../runtime/server/app.ts";
import { HttpError } from "../../runtime/server/errors.ts";
import { createRequestQueue } from "../../runtime/server/queue.ts";
import { haveFiles } from "../shared-data.ts";
import { storiesEngine } from "./helpers.ts";

describe("request queue", () => {
  test("slots are granted in FIFO order; a full line answers 503 at once", async () => {
    const queue = createRequestQueue({ parallel: 1, depth: 2, retryAfter: 3 });
    const first = await queue.enter();
    const order: number[] = [];
    const second = queue.enter().then((slot) => (order.push(2), slot));
    const third = queue.enter().then((slot) => (order.push(3), slot));
    expect(queue.waiting).toBe(2);
    let refused: unknown;
    try {
      queue.enter();
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(HttpError);
    expect((refused as HttpError).status).toBe(503);
    expect((refused as HttpError).retryAfter).toBe(3);
    first.release();
    first.release();
    (await second).release();
    (await third).release();
    expect(order).toEqual([2, 3]);
    expect(queue.running).toBe(0);
  });

  test("a waiting client that leaves gives up its place", async () => {
    const queue = createRequestQueue({ parallel: 1, depth: 1 });
    const held = await queue.enter();
    const controller = new AbortController();
    const waiting = queue.enter(controller.signal);
    controller.abort();
    await expect(waiting).rejects.toBeInstanceOf(HttpError);
    expect(queue.waiting).toBe(0);
    const next = queue.enter();
    held.release();
    (await next).release();
  });

  test("close refuses new and waiting work; drain cancels running work after the grace period", async () => {
    const queue = createRequestQueue({ parallel: 1, depth: 4 });
    const running = await queue.enter();
    const waiting = queue.enter();
    queue.close();
    await expect(waiting).rejects.toMatchObject({ status: 503, code: "server_shutting_down" });
    expect(() => queue.enter()).toThrow(HttpError);
    const drained = queue.drain(0);
    await new Promise<void>((resolve) => running.signal.addEventListener("abort", () => resolve()));
    running.release();
    await drained;
    expect(queue.running).toBe(0);
  });
});

const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin");

describe.skipIf(!available)("SSE keep-alive", () => {
  test("a queued stream receives keep-alive comments, then its chunks and [DONE]", async () => {
    const queue = createRequestQueue({ parallel: 1, depth: 4 });
    const app = createApp(await storiesEngine(), { queue, keepAliveMs: 5, log: () => {} });
    const held = await queue.enter();
    const response = await app.fetch(
      new Request("http://x/v1/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "Once", max_tokens: 3, stream: true }),
      }),
    );
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    for (let i = 0; i < 1000 && !text.includes(": keep-alive"); i++) text += decoder.decode((await reader.read()).value);
    expect(text).toContain(": keep-alive\n\n");
    expect(text).not.toContain("data:");
    held.release();
    for (let i = 0; i < 1000; i++) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);
  });
});
