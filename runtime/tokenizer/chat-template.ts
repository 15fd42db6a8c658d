/**
 * Chat templates: picks a model's template and renders a conversation to the prompt text
 * with @huggingface/jinja, passing what transformers' apply_chat_template passes (messages,
 * tools, add_generation_prompt, bos/eos tokens) plus its helpers raise_exception and
 * strftime_now.
 *
 * Templates usually write the BOS token themselves: encode the rendered prompt with
 * `addSpecialTokens: false`, as apply_chat_template(tokenize=True) does.
 */

import { Environment, Interpreter, Template } from "@huggingface/jinja";
import { InvalidArgumentError, TokenizerError } from "../errors.ts";

/** One chat message, passed to the template unchanged (tool_calls, tool_call_id, ...). */
export interface ChatMessage {
  role: string;
  content?: unknown;
  [key: string]: unknown;
}

export interface RenderChatOptions {
  messages: readonly ChatMessage[];
  addGenerationPrompt: boolean;
  /** Tool definitions (OpenAI / JSON-schema form), passed as `tools`. */
  tools?: readonly unknown[];
  bosToken?: string;
  eosToken?: string;
  /** Further template variables (enable_thinking, date_string, ...). */
  extra?: Record<string, unknown>;
  /** Clock for strftime_now; defaults to the current time. */
  now?: Date;
}

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/** Python strftime for the directives chat templates use, in the C locale (English names). */
export function strftime(date: Date, format: string): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  return format.replace(/%([a-zA-Z%])/g, (whole, directive: string) => {
    switch (directive) {
      case "Y": return String(date.getFullYear());
      case "y": return pad(date.getFullYear() % 100);
      case "m": return pad(date.getMonth() + 1);
      case "d": return pad(date.getDate());
      case "e": return String(date.getDate()).padStart(2, " ");
      case "B": return MONTHS[date.getMonth()];
      case "b": return MONTHS[date.getMonth()].slice(0, 3);
      case "A": return DAYS[date.getDay()];
      case "a": return DAYS[date.getDay()].slice(0, 3);
      case "H": return pad(date.getHours());
      case "I": return pad(((date.getHours() + 11) % 12) + 1);
      case "p": return date.getHours() < 12 ? "AM" : "PM";
      case "M": return pad(date.getMinutes());
      case "S": return pad(date.getSeconds());
      case "%": return "%";
      default: return whole;
    }
  });
}

/** Python range(): range(stop), range(start, stop), range(start, stop, step). */
function range(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error("range() step must not be zero");
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

/** Thrown by the template's raise_exception(); carries the template's own message. */
class TemplateRaised extends Error {}

const compiled = new Map<string, Template>();

function compile(source: string): Template {
  let template = compiled.get(source);
  if (template === undefined) {
    try {
      template = new Template(source);
    } catch (cause) {
      throw new TokenizerError(`chat template does not parse: ${(cause as Error).message}; pass a corrected template`, {
        cause,
      });
    }
    if (compiled.size >= 16) compiled.clear();
    compiled.set(source, template);
  }
  return template;
}

/** Renders a conversation with a Jinja chat template. */
export function renderChat(template: string, options: RenderChatOptions): string {
  if (!Array.isArray(options.messages)) {
    throw new InvalidArgumentError("messages", "messages must be an array of {role, content} objects");
  }
  const now = options.now ?? new Date();
  const context: Record<string, unknown> = {
    ...options.extra,
    messages: options.messages,
    add_generation_prompt: options.addGenerationPrompt,
    // transformers passes tools=None when there are none; templates test `tools is not none`.
    tools: options.tools ?? null,
    raise_exception: (message: unknown) => {
      throw new TemplateRaised(String(message));
    },
    strftime_now: (format: unknown) => strftime(now, String(format)),
  };
  if (options.bosToken !== undefined) context.bos_token = options.bosToken;
  if (options.eosToken !== undefined) context.eos_token = options.eosToken;
  const compiledTemplate = compile(template);
  try {
    // Template.render() would declare its own raise_exception and strftime_now (and refuses
    // redefinitions), so the environment is built here with the same globals.
    const env = new Environment();
    const globals: Record<string, unknown> = { true: true, false: false, none: null, True: true, False: false, None: null, range };
    for (const [key, value] of Object.entries({ ...globals, ...context })) env.set(key, value);
    return String(new Interpreter(env).run(compiledTemplate.parsed).value);
  } catch (cause) {
    if (cause instanceof TemplateRaised) {
      throw new InvalidArgumentError("messages", `the chat template rejected the conversation: ${cause.message}`, { cause });
    }
    throw new TokenizerError(`chat template failed to render: ${(cause as Error).message}`, { cause });
  }
}

/**
 * ChatML (`<|im_start|>role\ncontent<|im_end|>`), the format llama-server falls back to for a
 * model that ships no chat template; crumb does the same and says so. `CHATML_STOP` ends a
 * turn for models whose vocabulary has no `<|im_end|>` token.
 */
export const CHATML_TEMPLATE = "{%- for message in messages -%}" +
  "{{- '<|im_start|>' + message['role'] + '\n' + (message['content'] if message['content'] is string else '') + '<|im_end|>\n' -}}" +
  "{%- endfor -%}" +
  "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}";
export const CHATML_STOP = "<|im_end|>";

/**
 * Picks the template to use: the one named, else "tool_use" when tools are given and the
 * model has one, else "default".
 */
export function selectChatTemplate(templates: Readonly<Record<string, string>>, name?: string, hasTools = false): string {
  const names = Object.keys(templates);
  if (name !== undefined) {
    const chosen = templates[name];
    if (chosen === undefined) {
      throw new InvalidArgumentError(
        "chat_template",
        `the model has no chat template named "${name}"; available: ${names.length > 0 ? names.join(", ") : "none"}`,
      );
    }
    return chosen;
  }
  if (hasTools && templates.tool_use !== undefined) return templates.tool_use;
  if (templates.default !== undefined) return templates.default;
  throw new TokenizerError(
    names.length === 0
      ? "the model has no chat template; pass one with --chat-template <file.jinja>, or use /v1/completions with a raw prompt"
      : `the model has no default chat template (it has: ${names.join(", ")}); name one, or pass one with --chat-template <file.jinja>`,
  );
}
