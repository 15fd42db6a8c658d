/**
 * Request validation for the OpenAI routes, written by hand: every field is checked for
 * type and range and every mistake throws an InvalidArgumentError naming the parameter
 * (`param` in the error body), as OpenAI does. Unknown fields are rejected like OpenAI's
 * "Unrecognized request argument supplied"; fields OpenAI accepts that change nothing here
 * (user, metadata, store, ...) are accepted and ignored.
 */
import { InvalidArgumentError } from "../errors.ts";
import type { ChatMessage, GenerateOptions } from "../engine/types.ts";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

const describe = (value: unknown): string => {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = Array.isArray(value) ? "an array" : typeof value;
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
};

/** Rejects fields outside `known` (ignored ones included). */
export function checkFields(body: JsonObject, known: readonly string[], where = ""): void {
  for (const key of Object.keys(body)) {
    if (!known.includes(key)) {
      throw new InvalidArgumentError(where + key, `Unrecognized request argument supplied: ${where}${key}`);
    }
  }
}

const present = (value: unknown) => value !== undefined && value !== null;

export function optionalNumber(body: JsonObject, name: string, min: number, max: number, integer = false): number | undefined {
  const value = body[name];
  if (!present(value)) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || (integer && !Number.isSafeInteger(value)) || value < min || value > max) {
    const kind = integer ? "an integer" : "a number";
    throw new InvalidArgumentError(name, `${name} must be ${kind} between ${min} and ${max}, got ${describe(value)}`);
  }
  return value;
}

export function optionalBoolean(body: JsonObject, name: string): boolean | undefined {
  const value = body[name];
  if (!present(value)) return undefined;
  if (typeof value !== "boolean") throw new InvalidArgumentError(name, `${name} must be true or false, got ${describe(value)}`);
  return value;
}

export function optionalString(body: JsonObject, name: string): string | undefined {
  const value = body[name];
  if (!present(value)) return undefined;
  if (typeof value !== "string") throw new InvalidArgumentError(name, `${name} must be a string, got ${describe(value)}`);
  return value;
}

export function optionalObject(body: JsonObject, name: string): JsonObject | undefined {
  const value = body[name];
  if (!present(value)) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new InvalidArgumentError(name, `${name} must be an object, got ${describe(value)}`);
  }
  return value as JsonObject;
}

function stopList(body: JsonObject): string[] | undefined {
  const value = body.stop;
  if (!present(value)) return undefined;
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || list.length > 16 || !list.every((s) => typeof s === "string" && s.length <= 256)) {
    throw new InvalidArgumentError(
      "stop",
      `stop must be a string or an array of at most 16 strings (each up to 256 characters), got ${describe(value)}`,
    );
  }
  return list as string[];
}

export type ResponseFormat = { type: "text" } | { type: "json_object" } | { type: "json_schema"; schema: JsonObject; name: string };

function responseFormat(body: JsonObject): ResponseFormat {
  const format = optionalObject(body, "response_format");
  if (format === undefined) return { type: "text" };
  const type = format.type;
  if (type === "text") return { type };
  if (type === "json_object") return { type };
  if (type === "json_schema") {
    const spec = format.json_schema;
    if (spec === null || typeof spec !== "object" || Array.isArray(spec)) {
      throw new InvalidArgumentError("response_format.json_schema", 'response_format "json_schema" needs json_schema: {name, schema}');
    }
    const schema = spec.schema ?? {};
    if (schema === null || typeof schema !== "object" || Array.isArray(schema)) {
      throw new InvalidArgumentError(
        "response_format.json_schema.schema",
        `json_schema.schema must be a JSON Schema object, got ${describe(schema)}`,
      );
    }
    return { type, schema: schema as JsonObject, name: typeof spec.name === "string" ? spec.name : "response" };
  }
  throw new InvalidArgumentError(
    "response_format.type",
    `response_format.type must be "text", "json_object" or "json_schema", got ${describe(type)}`,
  );
}

/** Sampling and stopping fields shared by chat and completions. */
const SAMPLING_FIELDS = [
  "temperature",
  "top_p",
  "top_k",
  "min_p",
  "seed",
  "stop",
  "presence_penalty",
  "frequency_penalty",
  "repetition_penalty",
  "repeat_penalty",
  "max_tokens",
  "n",
  "stream",
  "stream_options",
  "model",
  "user",
  "logit_bias",
  "metadata",
  "store",
  "service_tier",
];

export interface SamplingParams {
  readonly options: GenerateOptions;
  readonly stream: boolean;
  readonly includeUsage: boolean;
}

function samplingParams(body: JsonObject, maxTokensDefault: number | undefined): SamplingParams {
  optionalString(body, "model");
  optionalString(body, "user");
  const n = optionalNumber(body, "n", 1, 128, true);
  if (n !== undefined && n !== 1) {
    throw new InvalidArgumentError("n", `n must be 1 (this server generates one choice per request), got ${n}`);
  }
  const bias = optionalObject(body, "logit_bias");
  if (bias !== undefined && Object.keys(bias).length > 0) {
    throw new InvalidArgumentError("logit_bias", "logit_bias is not supported; leave it out");
  }
  const stream = optionalBoolean(body, "stream") ?? false;
  const streamOptions = optionalObject(body, "stream_options");
  if (streamOptions !== undefined) {
    checkFields(streamOptions, ["include_usage", "include_obfuscation"], "stream_options.");
    if (!stream) throw new InvalidArgumentError("stream_options", "stream_options is only allowed when stream is true");
    for (const name of ["include_usage", "include_obfuscation"]) {
      const value = streamOptions[name];
      if (present(value) && typeof value !== "boolean") {
        throw new InvalidArgumentError(`stream_options.${name}`, `stream_options.${name} must be true or false, got ${describe(value)}`);
      }
    }
  }
  const includeUsage = streamOptions?.include_usage === true;
  const seed = optionalNumber(body, "seed", -(2 ** 63), 2 ** 64, true);
  const maxTokens = optionalNumber(body, "max_completion_tokens", 1, 2 ** 31, true) ?? optionalNumber(body, "max_tokens", 1, 2 ** 31, true);
  const options: GenerateOptions = {
    temperature: optionalNumber(body, "temperature", 0, 2),
    topP: optionalNumber(body, "top_p", 0, 1),
    topK: optionalNumber(body, "top_k", 0, 2 ** 31, true),
    minP: optionalNumber(body, "min_p", 0, 1),
    // OpenAI seeds are any integer; the sampler's stream takes 32 bits.
    seed: seed === undefined ? undefined : Number(BigInt.asUintN(32, BigInt(seed))),
    stop: stopList(body),
    presencePenalty: optionalNumber(body, "presence_penalty", -2, 2),
    frequencyPenalty: optionalNumber(body, "frequency_penalty", -2, 2),
    repetitionPenalty: optionalNumber(body, "repetition_penalty", 0.01, 10) ?? optionalNumber(body, "repeat_penalty", 0.01, 10),
    maxTokens: maxTokens ?? maxTokensDefault,
  };
  return { options, stream, includeUsage };
}

export interface ToolDefinition {
  readonly name: string;
  readonly description?: string;
  readonly parameters: JsonObject;
}

export type ToolChoice = "none" | "auto" | "required" | { name: string };

export interface ChatRequest extends SamplingParams {
  readonly messages: ChatMessage[];
  readonly responseFormat: ResponseFormat;
  readonly tools: ToolDefinition[];
  /** The tools as the request sent them, for the chat template. */
  readonly rawTools?: JsonObject[];
  readonly toolChoice: ToolChoice;
  readonly logprobs: boolean;
}

const CHAT_FIELDS = [
  ...SAMPLING_FIELDS,
  "messages",
  "max_completion_tokens",
  "logprobs",
  "top_logprobs",
  "response_format",
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  "chat_template",
];
const ROLES = ["system", "developer", "user", "assistant", "tool"];
/** The keys OpenAI accepts in a message of each role (anything else is refused, as OpenAI does). */
const MESSAGE_FIELDS: Record<string, readonly string[]> = {
  system: ["role", "content", "name"],
  developer: ["role", "content", "name"],
  user: ["role", "content", "name"],
  assistant: ["role", "content", "name", "tool_calls", "refusal", "function_call", "reasoning_content"],
  tool: ["role", "content", "tool_call_id"],
};

function messageContent(content: Json | undefined, i: number): string | null {
  if (content === undefined || content === null) return null;
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((part, j) => {
      const p = part as JsonObject;
      if (p === null || typeof p !== "object" || (p.type !== "text" && p.type !== "input_text") || typeof p.text !== "string") {
        throw new InvalidArgumentError(
          `messages[${i}].content[${j}]`,
          `messages[${i}].content[${j}] must be {"type":"text","text":"..."}; this server handles text only, got ${describe(part)}`,
        );
      }
      return p.text;
    }).join("");
  }
  throw new InvalidArgumentError(
    `messages[${i}].content`,
    `messages[${i}].content must be a string or an array of text parts, got ${describe(content)}`,
  );
}

/** Assistant tool calls as templates expect them: arguments as an object when they parse. */
function templateToolCalls(value: Json | undefined, i: number): JsonObject[] | undefined {
  if (!present(value)) return undefined;
  if (!Array.isArray(value)) throw new InvalidArgumentError(`messages[${i}].tool_calls`, `messages[${i}].tool_calls must be an array`);
  return value.map((call, j) => {
    const fn = (call as JsonObject)?.function as JsonObject | undefined;
    if (fn === undefined || fn === null || typeof fn.name !== "string") {
      throw new InvalidArgumentError(
        `messages[${i}].tool_calls[${j}]`,
        `messages[${i}].tool_calls[${j}] needs function: {name, arguments}`,
      );
    }
    let args: Json = fn.arguments ?? {};
    if (typeof args === "string") {
      try {
        args = JSON.parse(args);
      } catch {
        // Templates print a string unchanged; keep what the client sent.
      }
    }
    return { ...(call as JsonObject), function: { name: fn.name, arguments: args } };
  });
}

function chatMessages(body: JsonObject): ChatMessage[] {
  const value = body.messages;
  if (!Array.isArray(value) || value.length === 0) {
    throw new InvalidArgumentError("messages", `messages must be a non-empty array of {role, content}, got ${describe(value)}`);
  }
  return value.map((raw, i) => {
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      throw new InvalidArgumentError(`messages[${i}]`, `messages[${i}] must be an object {role, content}, got ${describe(raw)}`);
    }
    const { role } = raw;
    if (typeof role !== "string" || !ROLES.includes(role)) {
      throw new InvalidArgumentError(
        `messages[${i}].role`,
        `messages[${i}].role must be one of ${ROLES.join(", ")}, got ${describe(role)}`,
      );
    }
    checkFields(raw, MESSAGE_FIELDS[role], `messages[${i}].`);
    const message: ChatMessage = { ...raw, role: role === "developer" ? "system" : role, content: messageContent(raw.content, i) };
    const toolCalls = templateToolCalls(raw.tool_calls, i);
    if (toolCalls !== undefined) message.tool_calls = toolCalls;
    if (message.content === null && toolCalls === undefined) {
      throw new InvalidArgumentError(
        `messages[${i}].content`,
        role === "assistant"
          ? `messages[${i}] (assistant) needs content or tool_calls`
          : `messages[${i}].content is required for role ${role}`,
      );
    }
    if (role === "tool" && (typeof raw.tool_call_id !== "string" || raw.tool_call_id === "")) {
      throw new InvalidArgumentError(
        `messages[${i}].tool_call_id`,
        `messages[${i}] has role tool and needs tool_call_id: the id of the assistant's tool call it answers`,
      );
    }
    for (const name of ["name", "refusal", "reasoning_content"]) {
      if (present(raw[name]) && typeof raw[name] !== "string") {
        throw new InvalidArgumentError(`messages[${i}].${name}`, `messages[${i}].${name} must be a string, got ${describe(raw[name])}`);
      }
    }
    return message;
  });
}

function tools(body: JsonObject): { tools: ToolDefinition[]; raw?: JsonObject[] } {
  const value = body.tools;
  if (!present(value)) return { tools: [] };
  if (!Array.isArray(value) || value.length > 128) {
    throw new InvalidArgumentError("tools", "tools must be an array of at most 128 function tools");
  }
  const parsed = value.map((tool, i) => {
    const t = tool as JsonObject;
    const fn = t?.function as JsonObject | undefined;
    if (
      t === null || typeof t !== "object" || t.type !== "function" || fn === null || typeof fn !== "object" ||
      typeof fn.name !== "string" || fn.name === ""
    ) {
      throw new InvalidArgumentError(
        `tools[${i}]`,
        `tools[${i}] must be {"type":"function","function":{"name","parameters"}}, got ${describe(tool)}`,
      );
    }
    const parameters = fn.parameters ?? { type: "object", properties: {} };
    if (parameters === null || typeof parameters !== "object" || Array.isArray(parameters)) {
      throw new InvalidArgumentError(`tools[${i}].function.parameters`, `tools[${i}].function.parameters must be a JSON Schema object`);
    }
    return {
      name: fn.name,
      description: typeof fn.description === "string" ? fn.description : undefined,
      parameters: parameters as JsonObject,
    };
  });
  return { tools: parsed, raw: value as JsonObject[] };
}

function toolChoice(body: JsonObject, defined: readonly ToolDefinition[]): ToolChoice {
  const value = body.tool_choice;
  if (!present(value)) return defined.length > 0 ? "auto" : "none";
  if (value === "none" || value === "auto" || value === "required") {
    if (value === "required" && defined.length === 0) throw new InvalidArgumentError("tool_choice", 'tool_choice "required" needs tools');
    return value;
  }
  const name = ((value as JsonObject)?.function as JsonObject | undefined)?.name;
  if (typeof name !== "string" || !defined.some((t) => t.name === name)) {
    throw new InvalidArgumentError(
      "tool_choice",
      `tool_choice must be "none", "auto", "required" or {"type":"function","function":{"name"}} naming one of the tools (${
        defined.map((t) => t.name).join(", ") || "none given"
      }), got ${describe(value)}`,
    );
  }
  return { name };
}

export function parseChatRequest(body: JsonObject): ChatRequest {
  checkFields(body, CHAT_FIELDS);
  const sampling = samplingParams(body, undefined);
  const logprobs = optionalBoolean(body, "logprobs") ?? false;
  const topLogprobs = optionalNumber(body, "top_logprobs", 0, 20, true);
  if (topLogprobs !== undefined && !logprobs) throw new InvalidArgumentError("top_logprobs", "top_logprobs needs logprobs: true");
  optionalString(body, "chat_template");
  const defined = tools(body);
  return {
    ...sampling,
    options: {
      ...sampling.options,
      logprobs,
      topLogprobs,
      chatTemplate: body.chat_template as string | undefined,
    },
    messages: chatMessages(body),
    responseFormat: responseFormat(body),
    tools: defined.tools,
    rawTools: defined.raw,
    toolChoice: toolChoice(body, defined.tools),
    logprobs,
  };
}

export interface CompletionRequest extends SamplingParams {
  readonly prompt: string | number[];
  readonly echo: boolean;
  /** Legacy completions logprobs: how many alternatives per token, or undefined for none. */
  readonly logprobs?: number;
  readonly responseFormat: ResponseFormat;
}

const COMPLETION_FIELDS = [...SAMPLING_FIELDS, "prompt", "echo", "logprobs", "suffix", "best_of", "response_format"];

function completionPrompt(value: Json | undefined): string | number[] {
  const single = Array.isArray(value) && value.length === 1 ? value[0] : value;
  if (typeof single === "string") return single;
  if (Array.isArray(single) && single.length > 0 && single.every((id) => typeof id === "number" && Number.isSafeInteger(id))) {
    return single as number[];
  }
  if (Array.isArray(value) && value.length > 1 && value.every((p) => typeof p === "string" || Array.isArray(p))) {
    throw new InvalidArgumentError("prompt", `prompt holds ${value.length} prompts; this server completes one prompt per request`);
  }
  throw new InvalidArgumentError(
    "prompt",
    `prompt must be a string, an array of token ids, or a one-element array of either, got ${describe(value)}`,
  );
}

export function parseCompletionRequest(body: JsonObject): CompletionRequest {
  checkFields(body, COMPLETION_FIELDS);
  // OpenAI's legacy completions default to 16 new tokens.
  const sampling = samplingParams(body, 16);
  if (present(body.suffix)) throw new InvalidArgumentError("suffix", "suffix (fill-in-the-middle) is not supported; leave it out");
  const bestOf = optionalNumber(body, "best_of", 1, 128, true);
  if (bestOf !== undefined && bestOf !== 1) throw new InvalidArgumentError("best_of", `best_of must be 1, got ${bestOf}`);
  const logprobs = optionalNumber(body, "logprobs", 0, 5, true);
  return {
    ...sampling,
    options: { ...sampling.options, logprobs: logprobs !== undefined, topLogprobs: logprobs },
    prompt: completionPrompt(body.prompt),
    echo: optionalBoolean(body, "echo") ?? false,
    logprobs,
    responseFormat: responseFormat(body),
  };
}

export interface EmbeddingRequest {
  /** Each input as text or as token ids (taken as they are, OpenAI's token input). */
  readonly inputs: (string | number[])[];
  readonly encodingFormat: "float" | "base64";
  readonly dimensions?: number;
}

/** `maxInputs`: the server's --max-embed-inputs; more inputs get a 400 naming it. */
export function parseEmbeddingRequest(body: JsonObject, maxInputs: number): EmbeddingRequest {
  checkFields(body, ["input", "model", "encoding_format", "dimensions", "user"]);
  optionalString(body, "model");
  optionalString(body, "user");
  const input = body.input;
  const tokenList = (v: unknown): v is number[] =>
    Array.isArray(v) && v.length > 0 && v.every((id) => typeof id === "number" && Number.isSafeInteger(id) && id >= 0);
  let inputs: (string | number[])[];
  if (typeof input === "string") inputs = [input];
  else if (tokenList(input)) inputs = [input];
  else if (Array.isArray(input) && input.length > 0 && input.every((v) => typeof v === "string" || tokenList(v))) {
    if (input.length > maxInputs) {
      throw new InvalidArgumentError(
        "input",
        `input holds ${input.length} items, more than this server takes in one request (--max-embed-inputs ${maxInputs}); split it into several requests`,
      );
    }
    inputs = input as (string | number[])[];
  } else {
    throw new InvalidArgumentError(
      "input",
      `input must be a string, an array of token ids, or a non-empty array of strings (or token id arrays), got ${describe(input)}`,
    );
  }
  const format = body.encoding_format ?? "float";
  if (format !== "float" && format !== "base64") {
    throw new InvalidArgumentError("encoding_format", `encoding_format must be "float" or "base64", got ${describe(format)}`);
  }
  return { inputs, encodingFormat: format, dimensions: optionalNumber(body, "dimensions", 1, 1 << 20, true) };
}
