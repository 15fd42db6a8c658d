/**
 * Shared helpers for the server tests: engines on real weights (stories260K, with a chat
 * template added since the llama2.c file carries none) and an openai SDK client bound to an
 * app's fetch without a network.
 */
import { readFileSync } from "node:fs";
import OpenAI from "openai";
import { importModel } from "../../quantizer/import/index.ts";
import { createEngine } from "../../runtime/engine/engine.ts";
import type { Engine } from "../../runtime/engine/types.ts";
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
