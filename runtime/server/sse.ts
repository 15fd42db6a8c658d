/**
 * Server-sent events for streamed completions: `data: <json>\n\n` frames, `: keep-alive`
 * comments while nothing else is sent (long prefills and queue waits on slow devices, and
 * proxies that cut silent connections), `data: [DONE]` at the end, and an error raised after
 * the headers went out sent as `data: {"error":{...}}` (the OpenAI body). The producer gets an
 * AbortSignal that fires when the client goes away, so generation stops with it.
 */
import { mapError } from "./errors.ts";

export interface SseWriter {
  /** Sends one `data:` frame holding `value` as JSON (or the literal `[DONE]`). */
  send(value: unknown): void;
  readonly closed: boolean;
}

export interface SseOptions {
  /** Milliseconds of silence before a `: keep-alive` comment (default 10 000). */
  readonly keepAliveMs?: number;
  /** The request's signal: aborts when the client disconnects. */
  readonly signal?: AbortSignal;
  readonly headers?: Record<string, string>;
  /** Called when the client cancels the stream (disconnects). */
  readonly onCancel?: () => void;
  /** Called once with the error when the producer failed after the stream started. */
  readonly onError?: (error: unknown) => void;
}

const encoder = new TextEncoder();

/** Starts `produce` and streams what it sends; `produce` must stop when its signal aborts. */
export function sseResponse(produce: (writer: SseWriter, signal: AbortSignal) => Promise<void>, options: SseOptions = {}): Response {
  const disconnected = new AbortController();
  const onRequestAbort = () => disconnected.abort();
  options.signal?.addEventListener("abort", onRequestAbort, { once: true });
  let closed = false;
  let sentSinceTick = false;
  let timer: ReturnType<typeof setInterval> | undefined;

  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      const write = (text: string) => {
        if (closed) return;
        try {
          controller.enqueue(encoder.encode(text));
        } catch {
          close();
        }
      };
      const close = () => {
        if (closed) return;
        closed = true;
        clearInterval(timer);
        options.signal?.removeEventListener("abort", onRequestAbort);
        try {
          controller.close();
        } catch {
          // Already closed or cancelled by the client.
        }
      };
      const writer: SseWriter = {
        send(value) {
          sentSinceTick = true;
          write(`data: ${value === "[DONE]" ? value : JSON.stringify(value)}\n\n`);
        },
        get closed() {
          return closed;
        },
      };
      timer = setInterval(() => {
        if (!sentSinceTick) write(": keep-alive\n\n");
        sentSinceTick = false;
      }, options.keepAliveMs ?? 10_000);
      // Send something at once so clients and proxies see the stream open.
      write(": stream open\n\n");
      produce(writer, disconnected.signal)
        .catch((error) => {
          options.onError?.(error);
          if (!disconnected.signal.aborted) writer.send(mapError(error).body);
        })
        .finally(close);
    },
    cancel() {
      closed = true;
      clearInterval(timer);
      disconnected.abort();
      options.onCancel?.();
    },
  });
  return new Response(body, {
    status: 200,
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
      ...options.headers,
    },
  });
}
