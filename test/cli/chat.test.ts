// `crumb chat` driven through piped stdin and through a pseudo-terminal (script(1)) on a packed
// stories260K with a chat template: two turns, the second rendered with the first question and
// answer before it (the output equals the library's run of that whole conversation, and differs
// from the second question asked alone); commands (/clear, /bye, """ blocks); -p asks once; the
// ChatML fallback announced.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadEngine } from "../../runtime/engine/load-engine.ts";
import type { ChatMessage, Engine } from "../../runtime/engine/types.ts";
import { haveFiles, modelPath } from "../shared-data.ts";
import { QWEN_TEMPLATE_PATH } from "../server/helpers.ts";
import { BUN, CLI, crumb, packedStories } from "./helpers.ts";

const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin", QWEN_TEMPLATE_PATH);
const TEMPLATE = modelPath(QWEN_TEMPLATE_PATH);
/** Greedy, 12 tokens an answer, one thread: the CLI and the library give the same tokens. */
const FLAGS = ["--temp", "0", "-n", "12", "-t", "1", "--chat-template", TEMPLATE];

let dir = "";
let model = "";
let engine: Engine;
beforeAll(async () => {
  if (!available) return;
  dir = mkdtempSync(join(tmpdir(), "crumb-chat-"));
  model = await packedStories(dir);
  engine = await loadEngine(model, { threads: 1, chatTemplate: readFileSync(TEMPLATE, "utf8") });
});
afterAll(async () => {
  await engine?.dispose();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

async function reply(messages: ChatMessage[]): Promise<string> {
  let text = "";
  for await (const event of engine.generate(messages, { temperature: 0, maxTokens: 12 })) if (event.type !== "done") text += event.text;
  return text;
}

describe.skipIf(!available)("crumb chat", () => {
  test("two piped turns: the second answer is conditioned on the first", async () => {
    const first = "Tell me about a cat.";
    const second = "What did the cat do?";
    const r = await crumb(["chat", model, ...FLAGS], { stdin: `${first}\n${second}\n` });
    expect(r.code).toBe(0);
    const a1 = await reply([{ role: "user", content: first }]);
    const a2 = await reply([{ role: "user", content: first }, { role: "assistant", content: a1 }, { role: "user", content: second }]);
    const alone = await reply([{ role: "user", content: second }]);
    expect(a1.length).toBeGreaterThan(0);
    expect(r.stdout).toBe(`${a1}\n${a2}\n`);
    // The history changes the answer: without the first turn the model says something else.
    expect(alone).not.toBe(a2);
    expect(r.stderr).toMatch(/ready: stories260K\.q4 \(llama\), wasm engine, 1 thread, kv f16 \(640 B\/token\), context 512, loaded in \d+ ms/);
  }, 60_000);

  test.skipIf(!existsSync("/usr/bin/script"))("through a pseudo-terminal: the >>> prompt, two turns with history, /bye", async () => {
    const first = "Tell me about a dog.";
    const second = "Where did it go?";
    const command = [BUN, CLI, "chat", model, ...FLAGS].map((a) => `'${a}'`).join(" ");
    const child = spawn("/usr/bin/script", ["-qfec", command, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stdin.write(`${first}\n${second}\n/bye\n`);
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(code).toBe(0);
    // The terminal's carriage returns and readline's cursor moves aside, it is the chat as typed.
    const screen = out.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").replace(/\r\n/g, "\n").replace(/\r/g, "");
    const a1 = await reply([{ role: "user", content: first }]);
    const a2 = await reply([{ role: "user", content: first }, { role: "assistant", content: a1 }, { role: "user", content: second }]);
    expect(screen).toContain(`>>> ${first}`);
    expect(screen).toContain(`${a1}\n`);
    expect(screen).toContain(`${a2}\n`);
    expect(screen.indexOf(a2)).toBeGreaterThan(screen.indexOf(a1));
    expect(screen).toContain("chatting with stories260K.q4; /bye leave");
  }, 60_000);

  test("/clear forgets, /bye leaves, a \"\"\" block is one message, --system comes first", async () => {
    const r = await crumb(["chat", model, ...FLAGS, "--system", "Be kind."], {
      stdin: 'Hello there\n/clear\n"""\nOnce upon\na time\n"""\n/bye\nnever asked\n',
    });
    expect(r.code).toBe(0);
    const hello = await reply([{ role: "system", content: "Be kind." }, { role: "user", content: "Hello there" }]);
    const block = await reply([{ role: "system", content: "Be kind." }, { role: "user", content: "Once upon\na time" }]);
    expect(r.stdout).toBe(`${hello}\n${block}\n`);
    expect(r.stderr).toContain("conversation cleared");
  }, 60_000);

  test("-p asks once and exits; a model without a template falls back to ChatML and says so", async () => {
    const r = await crumb(["run", model, "-p", "Hi", "--temp", "0", "-n", "8", "-t", "1"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("note: stories260K.q4 ships no chat template: chats use ChatML (pass --chat-template <file.jinja> for the model's own format)");
    const plain = await loadEngine(model, { threads: 1 });
    try {
      expect(plain.chatTemplateFallback).toBe("chatml");
      expect(plain.applyChatTemplate([{ role: "user", content: "Hi" }])).toBe("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
      let text = "";
      for await (const e of plain.generate([{ role: "user", content: "Hi" }], { temperature: 0, maxTokens: 8, stop: ["<|im_end|>"] })) {
        if (e.type !== "done") text += e.text;
      }
      expect(r.stdout).toBe(`${text}\n`);
    } finally {
      await plain.dispose();
    }
  }, 60_000);
});
