/**
 * Tool calls in the formats of the chat templates crumb ships with:
 *  - hermes (Qwen 2.5/3, SmolLM3): `<tool_call>\n{"name": .., "arguments": {..}}\n</tool_call>`, one block per call;
 *  - llama3 (Llama 3.1/3.2): `{"name": .., "parameters": {..}}`, optionally after `<|python_tag|>`, several joined by `;`;
 *  - mistral (Mistral/Nemo): `[TOOL_CALLS][{"name": .., "arguments": {..}}, ..]`.
 * The format is read off the rendered prompt (the template's tool instructions), parsed back
 * from generated text into OpenAI `tool_calls`, streamed by holding back text that may start
 * a call, and, for tool_choice "required" or a named tool, forced by constraining sampling to
 * the format's markers around a JSON call that follows the tool's parameter schema.
 */
import type { JsonConstraintSpec } from "./json-constraint.ts";
import type { ToolDefinition } from "./schema.ts";

export type ToolFormat = "hermes" | "llama3" | "mistral";

export interface ParsedToolCall {
  readonly name: string;
  /** The arguments as a JSON string, as OpenAI sends them. */
  readonly arguments: string;
}

/** Which format the model was told to use, judged from its rendered prompt. */
export function detectToolFormat(renderedPrompt: string): ToolFormat {
  if (renderedPrompt.includes("<tool_call>")) return "hermes";
  if (renderedPrompt.includes("[AVAILABLE_TOOLS]") || renderedPrompt.includes("[TOOL_CALLS]")) return "mistral";
  if (renderedPrompt.includes("<|start_header_id|>") || renderedPrompt.includes("<|python_tag|>")) return "llama3";
  return "hermes";
}

const MARKERS: Record<ToolFormat, string> = { hermes: "<tool_call>", llama3: "<|python_tag|>", mistral: "[TOOL_CALLS]" };

/** Top-level JSON objects/arrays in `text`, in order, with what lies between them. */
function jsonSegments(text: string): { values: unknown[]; rest: string } {
  const values: unknown[] = [];
  let rest = "";
  let i = 0;
  while (i < text.length) {
    const open = text[i];
    if (open !== "{" && open !== "[") {
      rest += open;
      i++;
      continue;
    }
    let depth = 0;
    let inString = false;
    let end = -1;
    for (let j = i; j < text.length; j++) {
      const c = text[j];
      if (inString) {
        if (c === "\\") j++;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === "{" || c === "[") depth++;
      else if (c === "}" || c === "]") {
        depth--;
        if (depth === 0) {
          end = j;
          break;
        }
      }
    }
    if (end === -1) {
      rest += text.slice(i);
      break;
    }
    try {
      values.push(JSON.parse(text.slice(i, end + 1)));
    } catch {
      rest += text.slice(i, end + 1);
    }
    i = end + 1;
  }
  return { values, rest };
}

/** One call from a parsed value: {name, arguments | parameters}. */
function asCall(value: unknown): ParsedToolCall | undefined {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
  const { name, arguments: args, parameters } = value as Record<string, unknown>;
  if (typeof name !== "string" || name === "") return undefined;
  const payload = args ?? parameters ?? {};
  return { name, arguments: typeof payload === "string" ? payload : JSON.stringify(payload) };
}

function callsFrom(values: unknown[]): ParsedToolCall[] | undefined {
  const flat = values.flatMap((v) => (Array.isArray(v) ? v : [v]));
  const calls = flat.map(asCall);
  return calls.length > 0 && calls.every((c) => c !== undefined) ? (calls as ParsedToolCall[]) : undefined;
}

export interface ToolParse {
  /** Text outside the calls, or null when there is none. */
  readonly content: string | null;
  readonly calls: ParsedToolCall[];
}

/** Parses generated text; `calls` is empty when the text holds no tool call. */
export function parseToolCalls(text: string, format: ToolFormat): ToolParse {
  const none: ToolParse = { content: text, calls: [] };
  // An empty reasoning block (Qwen3 with thinking off) is no content.
  const orNull = (s: string) => {
    const rest = s.replace(/<think>\s*<\/think>/g, "").trim();
    return rest === "" ? null : rest;
  };
  if (format === "hermes") {
    const blocks = [...text.matchAll(/<tool_call>([\s\S]*?)(?:<\/tool_call>|$)/g)];
    const calls: ParsedToolCall[] = [];
    for (const block of blocks) {
      const found = callsFrom(jsonSegments(block[1]).values);
      if (found === undefined) return none;
      calls.push(...found);
    }
    if (calls.length > 0) return { content: orNull(text.replace(/<tool_call>[\s\S]*?(?:<\/tool_call>|$)/g, "")), calls };
  }
  const marker = MARKERS[format];
  const at = text.indexOf(marker);
  const before = at === -1 ? "" : text.slice(0, at);
  const body = at === -1 ? text : text.slice(at + marker.length);
  // Without a marker, only output that is nothing but JSON calls counts (llama3's plain form).
  if (at === -1 && !/^\s*[[{]/.test(text)) return none;
  const { values, rest } = jsonSegments(body);
  const calls = callsFrom(values);
  if (calls === undefined || rest.replace(/[\s;]/g, "") !== "") return none;
  return { content: orNull(before), calls };
}

/**
 * Streams content while tools are on: text that may begin a tool call (a marker, or JSON at
 * the very start) is held back until the end, where `finish` parses the whole output.
 */
export function createToolStream(format: ToolFormat) {
  const marker = MARKERS[format];
  let all = "";
  let emitted = 0;
  let capturing = false;
  return {
    /** Adds generated text; returns the part that is safe to send as content now. */
    push(text: string): string {
      all += text;
      if (capturing) return "";
      const pending = all.slice(emitted);
      const at = pending.indexOf(marker);
      const startsJson = emitted === 0 && /^\s*[[{]/.test(pending);
      if (at !== -1 || startsJson) {
        capturing = true;
        const out = startsJson ? "" : pending.slice(0, at);
        emitted += out.length;
        return out;
      }
      if (emitted === 0 && pending.trim() === "") return "";
      let hold = 0;
      for (let len = Math.min(marker.length - 1, pending.length); len > 0; len--) {
        if (pending.endsWith(marker.slice(0, len))) {
          hold = len;
          break;
        }
      }
      const out = pending.slice(0, pending.length - hold);
      emitted += out.length;
      return out;
    },
    /** The tool calls, and the held-back text to send as content when there are none. */
    finish(): { content: string; calls: ParsedToolCall[] } {
      const parsed = parseToolCalls(all, format);
      const rest = all.slice(emitted);
      emitted = all.length;
      return parsed.calls.length > 0 ? { content: "", calls: parsed.calls } : { content: rest, calls: [] };
    },
  };
}

/** The constraint that forces a call: the format's markers around `{name, arguments}`. */
export function forcedToolCall(
  format: ToolFormat,
  tools: readonly ToolDefinition[],
  choice: "required" | { name: string },
): Pick<JsonConstraintSpec, "schema" | "prefix" | "suffix"> {
  const chosen = choice === "required" ? tools : tools.filter((t) => t.name === choice.name);
  // With several tools the arguments' schema cannot depend on the name chosen first in this
  // recogniser, so they are held to "an object"; a single tool gets its full schema.
  const args = chosen.length === 1 ? chosen[0].parameters : { type: "object" };
  const argsKey = format === "llama3" ? "parameters" : "arguments";
  // The parameters' own "#/$defs/..." references resolve against the wrapper's root: lift them there.
  const defs = Object.fromEntries(["$defs", "definitions"].filter((k) => k in args).map((k) => [k, args[k]]));
  const schema = {
    type: "object",
    properties: { name: { enum: chosen.map((t) => t.name) }, [argsKey]: args },
    required: ["name", argsKey],
    ...defs,
  };
  if (format === "hermes") return { schema, prefix: "<tool_call>\n", suffix: "\n</tool_call>" };
  if (format === "mistral") return { schema, prefix: "[TOOL_CALLS][", suffix: "]" };
  return { schema };
}
