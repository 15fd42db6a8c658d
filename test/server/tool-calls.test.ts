// Tool calls round-trip through the real chat templates in ../shared/models/chat-templates:
// the template renders an assistant tool call, the parser reads the same call back from that
// text, and the format is detected from the rendered tool instructions. Streaming holds back
// exactly the text that may start a call.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { renderChat } from "../../runtime/tokenizer/chat-template.ts";
import { createToolStream, detectToolFormat, parseToolCalls, type ToolFormat } from "../../runtime/server/tool-calls.ts";
import { haveFiles, modelPath } from "../shared-data.ts";

const TEMPLATES: [string, ToolFormat][] = [
  ["Qwen-Qwen2.5-7B-Instruct.jinja", "hermes"],
  ["Qwen-Qwen3-0.6B.jinja", "hermes"],
  ["meta-llama-Llama-3.1-8B-Instruct.jinja", "llama3"],
  ["meta-llama-Llama-3.2-3B-Instruct.jinja", "llama3"],
  ["mistralai-Mistral-Nemo-Instruct-2407.jinja", "mistral"],
];
const available = haveFiles(...TEMPLATES.map(([file]) => `chat-templates/${file}`));
const tools = [{
  type: "function",
  function: {
    name: "get_weather",
    description: "Weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
}];
const call = { id: "abcDEF123", type: "function", function: { name: "get_weather", arguments: { city: "Paris" } } };
const END_MARKERS = /(<\|im_end\|>|<\|eot_id\|>|<\|eom_id\|>|<\/s>)\s*$/;

describe.skipIf(!available)("tool calls in the shipped chat templates", () => {
  for (const [file, format] of TEMPLATES) {
    test(`${file}: format detected, rendered call parsed back`, () => {
      const template = readFileSync(modelPath(`chat-templates/${file}`), "utf8");
      const base = { bosToken: "<s>", eosToken: "</s>", tools, now: new Date(2025, 0, 1) };
      const question = [{ role: "user", content: "Weather in Paris?" }];
      const prompt = renderChat(template, { ...base, messages: question, addGenerationPrompt: true });
      expect(detectToolFormat(prompt)).toBe(format);
      const full = renderChat(template, {
        ...base,
        messages: [...question, { role: "assistant", content: "", tool_calls: [call] }],
        addGenerationPrompt: false,
      });
      expect(full.startsWith(prompt)).toBe(true);
      const generated = full.slice(prompt.length).replace(END_MARKERS, "");
      const parsed = parseToolCalls(generated, format);
      expect(parsed.calls).toEqual([{ name: "get_weather", arguments: JSON.stringify({ city: "Paris" }) }]);
      expect(parsed.content).toBeNull();
    });
  }
});

describe("tool-call parser", () => {
  test("hermes: several blocks, text around them, an unclosed last block", () => {
    const text =
      'Let me check.\n<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n<tool_call>\n{"name": "b", "arguments": {}}';
    expect(parseToolCalls(text, "hermes")).toEqual({
      content: "Let me check.",
      calls: [{ name: "a", arguments: '{"x":1}' }, { name: "b", arguments: "{}" }],
    });
  });

  test("llama3: python_tag, plain JSON, several calls joined by ';'", () => {
    expect(parseToolCalls('<|python_tag|>{"name": "f", "parameters": {"q": "x"}}', "llama3").calls).toEqual([{
      name: "f",
      arguments: '{"q":"x"}',
    }]);
    expect(parseToolCalls('{"name": "f", "parameters": {}}; {"name": "g", "parameters": {"n": 2}}', "llama3").calls.map((c) => c.name))
      .toEqual(["f", "g"]);
  });

  test("mistral: [TOOL_CALLS] array, or the bare array when the marker was a special token", () => {
    const expected = [{ name: "f", arguments: '{"a":true}' }, { name: "g", arguments: "{}" }];
    expect(parseToolCalls('[TOOL_CALLS][{"name": "f", "arguments": {"a": true}}, {"name": "g", "arguments": {}}]', "mistral").calls)
      .toEqual(expected);
    expect(parseToolCalls('[{"name": "f", "arguments": {"a": true}}, {"name": "g", "arguments": {}}]', "mistral").calls).toEqual(expected);
  });

  // Arguments whose strings hold quotes, backslashes, brackets and braces, nested objects and
  // arrays: a parser that counted brackets without honouring escapes would end the call early.
  const TRICKY = [
    { text: 'she said "hi}"' },
    { code: "if (a[0] == '}') { return \"]\"; }", path: "C:\\dir\\", empty: "", quote: '"' },
    { filter: { and: [{ field: "a", op: "=", value: "[x]" }, { nested: { deep: { list: [1, [2, [3]], { "}": "{" }] } } }] } },
    { escaped: "tab\tnewline\nunicode \u00e9 \u007d close", slash: "a\\\"b" },
  ];
  const compact = (args: unknown) => JSON.stringify(args);

  test("hermes: escaped quotes, brackets in strings, nested objects, several calls", () => {
    for (const args of TRICKY) {
      for (const written of [JSON.stringify(args), JSON.stringify(args, null, 2)]) {
        const text = `Sure.\n<tool_call>\n{"name": "say", "arguments": ${written}}\n</tool_call>\n<tool_call>\n{"name": "other", "arguments": ${written}}\n</tool_call>`;
        expect({ written, parsed: parseToolCalls(text, "hermes") }).toEqual({
          written,
          parsed: { content: "Sure.", calls: [{ name: "say", arguments: compact(args) }, { name: "other", arguments: compact(args) }] },
        });
      }
    }
    // Written by hand: the escapes JSON.stringify never writes (\u007d is "}", \u005b is "[").
    const raw = String.raw`<tool_call>{"name": "say", "arguments": {"text": "she said \"hi}\"", "u": "\u007d\u005b\\"}}</tool_call>`;
    expect(parseToolCalls(raw, "hermes")).toEqual({ content: null, calls: [{ name: "say", arguments: compact({ text: 'she said "hi}"', u: "}[\\" }) }] });
    // Every argument set in one reply, one block each.
    const all = TRICKY.map((args, i) => `<tool_call>\n{"name": "t${i}", "arguments": ${JSON.stringify(args)}}\n</tool_call>`).join("\n");
    expect(parseToolCalls(all, "hermes")).toEqual({ content: null, calls: TRICKY.map((args, i) => ({ name: `t${i}`, arguments: compact(args) })) });
  });

  test("llama3 and mistral: escaped quotes, brackets in strings, nested objects, several calls", () => {
    for (const args of TRICKY) {
      const written = JSON.stringify(args);
      const expected = [{ name: "f", arguments: compact(args) }, { name: "g", arguments: compact(args) }];
      const llama = `{"name": "f", "parameters": ${written}}; {"name": "g", "parameters": ${written}}`;
      expect({ llama, parsed: parseToolCalls(llama, "llama3") }).toEqual({ llama, parsed: { content: null, calls: expected } });
      expect(parseToolCalls(`<|python_tag|>${llama}`, "llama3")).toEqual({ content: null, calls: expected });
      const mistral = `[TOOL_CALLS][{"name": "f", "arguments": ${written}}, {"name": "g", "arguments": ${written}}]`;
      expect({ mistral, parsed: parseToolCalls(mistral, "mistral") }).toEqual({ mistral, parsed: { content: null, calls: expected } });
    }
  });

  test("streaming: a call whose strings hold escaped quotes and braces is parsed at the end", () => {
    const text = `Ok <tool_call>\n{"name": "say", "arguments": ${JSON.stringify(TRICKY[0])}}\n</tool_call>`;
    // Split after every backslash and brace, where a wrong parser would lose its place.
    const pieces = text.split(/(?<=[\\{}"])/);
    expect(pieces.length).toBeGreaterThan(10);
    const stream = createToolStream("hermes");
    expect(pieces.map((p) => stream.push(p)).join("")).toBe("Ok ");
    expect(stream.finish()).toEqual({ content: "", calls: [{ name: "say", arguments: compact(TRICKY[0]) }] });
  });

  test("text that is not a call stays content", () => {
    for (
      const [text, format] of [
        ["Once upon a time", "hermes"],
        ['{"answer": 42}', "llama3"],
        ["<tool_call>not json</tool_call>", "hermes"],
        ["[1, 2]", "mistral"],
      ] as const
    ) {
      expect(parseToolCalls(text, format)).toEqual({ content: text, calls: [] });
    }
  });

  test("streaming: content flows, a marker split over deltas is held back, the call is parsed at the end", () => {
    const stream = createToolStream("hermes");
    const out = ["Sure", ", <tool", "_ca", 'll>\n{"name": "f", ', '"arguments": {}}\n</tool_call>'].map((d) => stream.push(d));
    expect(out).toEqual(["Sure", ", ", "", "", ""]);
    expect(stream.finish()).toEqual({ content: "", calls: [{ name: "f", arguments: "{}" }] });

    const plain = createToolStream("hermes");
    expect(["Hello <to", "wn> ok"].map((d) => plain.push(d)).join("") + plain.finish().content).toBe("Hello <town> ok");

    const json = createToolStream("llama3");
    expect(json.push(' {"name": "f"')).toBe("");
    expect(json.push(', "parameters": {"a": 1}}')).toBe("");
    expect(json.finish().calls).toEqual([{ name: "f", arguments: '{"a":1}' }]);
  });
});
