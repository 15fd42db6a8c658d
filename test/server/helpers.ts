/**
 * Shared helpers for the server tests: engines on real weights (stories260K, with a chat
 * template added since the llama2.c file carries none), one of them with its forward calls
 * counted (and held at a gate when a test says so), and an openai SDK client bound to an
 * app's fetch without a network.
 */
import { readFileSync } from "node:fs";
import OpenAI from "openai";
import { importModel } from "../../runtime/import/index.ts";
import { createEngine } from "../../runtime/engine/engine.ts";
import type { Engine } from "../../runtime/engine/types.ts";
import { type CountingBackend, countingReferenceEngine } from "../counting-backend.ts";
import { modelPath } from "../shared-data.ts";

/** A ChatML-style template in the format of Qwen's, tool definitions and <tool_call> included. */
export const QWEN_TEMPLATE_PATH = "chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja";

/**
 * A short ChatML template with Qwen's tool-call instructions (`<tool_call>` blocks), for
 * stories260K's 512-token context where the full Qwen template does not fit with tools.
 */
export const COMPACT_TOOL_TEMPLATE =
  "{%- if tools %}<|im_start|>system\nTools:{% for tool in tools %} {{ tool.function.name }}{% endfor %}. " +
  'Reply with <tool_call>{"name": ..., "arguments": ...}</tool_call><|im_end|>\n{% endif %}' +
  "{%- for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}" +
  "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

export async function storiesEngine(options: { contextLength?: number; chatTemplate?: string } = {}): Promise<Engine> {
  const source = await importModel(modelPath("stories260K/stories260K.bin"), { tokenizer: modelPath("stories260K/tok512.bin") });
  const template = options.chatTemplate ?? readFileSync(modelPath(QWEN_TEMPLATE_PATH), "utf8");
  return createEngine({ ...source, chatTemplates: { default: template } }, { contextLength: options.contextLength });
}

/** `storiesEngine` on a backend that logs, and can hold, every forward call. */
export async function countingStoriesEngine(options: { contextLength?: number } = {}): Promise<{ engine: Engine; counter: CountingBackend }> {
  const source = await importModel(modelPath("stories260K/stories260K.bin"), { tokenizer: modelPath("stories260K/tok512.bin") });
  const template = readFileSync(modelPath(QWEN_TEMPLATE_PATH), "utf8");
  return countingReferenceEngine({ ...source, chatTemplates: { default: template } }, { contextLength: options.contextLength });
}

/** The `data:` payloads of a server-sent event stream, one at a time as they arrive. */
export async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      for (let end = buffer.indexOf("\n\n"); end !== -1; end = buffer.indexOf("\n\n")) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (frame.startsWith("data: ")) yield frame.slice(6);
      }
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
    }
  } finally {
    reader.releaseLock();
  }
}

/** Resolves once `condition()` holds; throws naming `what` if it still does not after `limitMs`. */
export async function until(condition: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  for (const start = performance.now(); !condition();) {
    if (performance.now() - start > limitMs) throw new Error(`gave up waiting for ${what} after ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** An openai SDK client whose requests go straight to `fetchImpl` (an app's fetch). */
export function sdkClient(fetchImpl: (request: Request) => Response | Promise<Response>, apiKey = "sk-test"): OpenAI {
  return new OpenAI({
    apiKey,
    baseURL: "http://crumb.test/v1",
    maxRetries: 0,
    timeout: 20_000,
    fetch: (input: string | URL | Request, init?: RequestInit) => Promise.resolve(fetchImpl(new Request(input, init))),
  });
}
