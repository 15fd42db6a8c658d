/**
 * Chat templates: every published template in shared/models/chat-templates renders a
 * system + two-turn conversation to a string derived by hand from the template source
 * (not produced by running the renderer), plus tools, tool calls and template selection.
 */

import { describe, expect, test } from "bun:test";
import { InvalidArgumentError, TokenizerError } from "../errors.ts";
import { renderChat, selectChatTemplate, strftime } from "./chat-template.ts";
import { haveFiles, readJson, readText } from "../../test/shared-data.ts";

const MESSAGES = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "Hello!" },
  { role: "assistant", content: "Hi there. How can I help?" },
  { role: "user", content: "What is 2+2?" },
];

const template = (name: string) => readText(`chat-templates/${name}.jinja`);

// ChatML as Qwen writes it; Qwen3 gives the same text here because the only assistant turn
// precedes the last user query, so no <think> block is added.
const CHATML =
  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" +
  "<|im_start|>user\nHello!<|im_end|>\n" +
  "<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n" +
  "<|im_start|>user\nWhat is 2+2?<|im_end|>\n" +
  "<|im_start|>assistant\n";

const llama3 = (date: string) =>
  "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" +
  `Cutting Knowledge Date: December 2023\nToday Date: ${date}\n\n` +
  "You are a helpful assistant.<|eot_id|>" +
  "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>" +
  "<|start_header_id|>assistant<|end_header_id|>\n\nHi there. How can I help?<|eot_id|>" +
  "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>" +
  "<|start_header_id|>assistant<|end_header_id|>\n\n";

const CASES: { name: string; bos?: string; eos?: string; expected: string }[] = [
  {
    // enable_thinking undefined → "/think"; the system prompt becomes the custom instructions;
    // the system turn itself is not repeated in the loop.
    name: "HuggingFaceTB-SmolLM3-3B",
    expected:
      "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: /think\n\n" +
      "## Custom Instructions\n\nYou are a helpful assistant.\n\n<|im_end|>\n" +
      "<|im_start|>user\nHello!<|im_end|>\n" +
      "<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n" +
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n" +
      "<|im_start|>assistant\n",
  },
  { name: "Qwen-Qwen2.5-7B-Instruct", expected: CHATML },
  { name: "Qwen-Qwen3-0.6B", expected: CHATML },
  {
    // System prompt right after BOS; with enable_thinking undefined the template closes the
    // think block at once ("not enable_thinking" is true).
    name: "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
    bos: "<｜begin▁of▁sentence｜>",
    eos: "<｜end▁of▁sentence｜>",
    expected:
      "<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>Hello!" +
      "<｜Assistant｜>Hi there. How can I help?<｜end▁of▁sentence｜><｜User｜>What is 2+2?" +
      "<｜Assistant｜><think>\n</think>",
  },
  // Llama 3.1 has a fixed default date; 3.2 calls strftime_now("%d %b %Y") (clock fixed below).
  { name: "meta-llama-Llama-3.1-8B-Instruct", bos: "<|begin_of_text|>", expected: llama3("26 Jul 2024") },
  { name: "meta-llama-Llama-3.2-3B-Instruct", bos: "<|begin_of_text|>", expected: llama3("05 Jan 2025") },
  {
    name: "microsoft-Phi-3.5-mini-instruct",
    eos: "<|endoftext|>",
    expected:
      "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello!<|end|>\n" +
      "<|assistant|>\nHi there. How can I help?<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n",
  },
  {
    // The system message is folded into the last user turn; no generation prompt exists.
    name: "mistralai-Mistral-Nemo-Instruct-2407",
    bos: "<s>",
    eos: "</s>",
    expected:
      "<s>[INST]Hello![/INST]Hi there. How can I help?</s>" +
      "[INST]You are a helpful assistant.\n\nWhat is 2+2?[/INST]",
  },
];

const NOW = new Date(2025, 0, 5, 12, 0, 0);

describe("published chat templates", () => {
  for (const c of CASES) {
    test.skipIf(!haveFiles(`chat-templates/${c.name}.jinja`))(c.name, () => {
      const text = renderChat(template(c.name), {
        messages: MESSAGES,
        addGenerationPrompt: true,
        bosToken: c.bos,
        eosToken: c.eos,
        now: NOW,
      });
      expect(text).toBe(c.expected);
    });
  }

  test.skipIf(!haveFiles("chat-templates/deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"))(
    "extra variables reach the template (enable_thinking)",
    () => {
      const text = renderChat(template("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B"), {
        messages: MESSAGES,
        addGenerationPrompt: true,
        bosToken: "<s>",
        extra: { enable_thinking: true },
      });
      expect(text.endsWith("<｜Assistant｜><think>\n")).toBe(true);
    },
  );
});

const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the weather",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

describe("tools", () => {
  test.skipIf(!haveFiles("chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja"))("Qwen2.5 lists the tools in the system block", () => {
    const text = renderChat(template("Qwen-Qwen2.5-7B-Instruct"), {
      messages: MESSAGES.slice(0, 2),
      addGenerationPrompt: true,
      tools: [WEATHER_TOOL],
    });
    // tojson uses Python json.dumps separators (", " and ": ").
    const toolJson =
      '{"type": "function", "function": {"name": "get_weather", "description": "Get the weather", ' +
      '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}';
    expect(text).toBe(
      "<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n\n" +
        "You may call one or more functions to assist with the user query.\n\n" +
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
        toolJson +
        "\n</tools>\n\nFor each function call, return a json object with function name and arguments " +
        "within <tool_call></tool_call> XML tags:\n<tool_call>\n" +
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' +
        "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  test.skipIf(!haveFiles("chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja"))("tool calls and tool results pass through", () => {
    const text = renderChat(template("Qwen-Qwen2.5-7B-Instruct"), {
      messages: [
        { role: "user", content: "Weather in Paris?" },
        {
          role: "assistant",
          content: null,
          tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: { city: "Paris" } } }],
        },
        { role: "tool", tool_call_id: "call_1", content: "22C" },
      ],
      addGenerationPrompt: true,
    });
    expect(text).toBe(
      "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n" +
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n' +
        "<|im_start|>user\n<tool_response>\n22C\n</tool_response><|im_end|>\n" +
        "<|im_start|>assistant\n",
    );
  });
});

describe("errors and helpers", () => {
  test.skipIf(!haveFiles("chat-templates/mistralai-Mistral-Nemo-Instruct-2407.jinja"))(
    "raise_exception becomes InvalidArgumentError with the template's message",
    () => {
      const render = () =>
        renderChat(template("mistralai-Mistral-Nemo-Instruct-2407"), {
          messages: [MESSAGES[0], MESSAGES[2]],
          addGenerationPrompt: true,
        });
      expect(render).toThrow(InvalidArgumentError);
      expect(render).toThrow(/roles must alternate/);
    },
  );

  test("a template that does not parse is a TokenizerError", () => {
    expect(() => renderChat("{% for m in messages %}", { messages: [], addGenerationPrompt: false })).toThrow(TokenizerError);
  });

  test("range and strftime", () => {
    const text = renderChat("{% for i in range(1, 7, 2) %}{{ i }}{% endfor %} {{ strftime_now('%Y-%m-%d %B %a') }}", {
      messages: [],
      addGenerationPrompt: false,
      now: NOW,
    });
    expect(text).toBe("135 2025-01-05 January Sun");
    expect(strftime(new Date(2024, 6, 26, 9, 5, 3), "%d %b %Y %H:%M:%S %I%p %%")).toBe("26 Jul 2024 09:05:03 09AM %");
  });

  test("selectChatTemplate picks tool_use only when tools are given", () => {
    const templates = { default: "D", tool_use: "T" };
    expect(selectChatTemplate(templates)).toBe("D");
    expect(selectChatTemplate(templates, undefined, true)).toBe("T");
    expect(selectChatTemplate({ default: "D" }, undefined, true)).toBe("D");
    expect(selectChatTemplate(templates, "tool_use")).toBe("T");
    expect(() => selectChatTemplate(templates, "rag")).toThrow(/no chat template named "rag"; available: default, tool_use/);
  });

  test("selectChatTemplate without templates says what to do", () => {
    expect(() => selectChatTemplate({})).toThrow(TokenizerError);
    expect(() => selectChatTemplate({})).toThrow(/has no chat template; pass one with --chat-template/);
  });

});
