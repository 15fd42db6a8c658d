/**
 * Streaming chat with the official openai SDK against a running crumb server.
 *
 *   npx crumb serve <model>                       # in one terminal
 *   bun examples/chat-openai.ts "Tell me a story about a robot"
 *
 * CRUMB_URL (default http://127.0.0.1:8080/v1) and CRUMB_API_KEY (if the server has --api-key)
 * point it elsewhere. Works the same under Deno: deno run -A examples/chat-openai.ts "..."
 */
import process from "node:process";
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.CRUMB_URL ?? "http://127.0.0.1:8080/v1",
  apiKey: process.env.CRUMB_API_KEY ?? "not-needed",
});

const question = process.argv.slice(2).join(" ") || "Tell me a short story about a little robot.";
const stream = await client.chat.completions.create({
  model: "crumb", // the server serves one model and answers under its own name
  messages: [{ role: "user", content: question }],
  max_tokens: 200,
  temperature: 0.7,
  stream: true,
  stream_options: { include_usage: true },
});

for await (const chunk of stream) {
  process.stdout.write(chunk.choices[0]?.delta.content ?? "");
  if (chunk.usage) process.stderr.write(`\n[${chunk.usage.prompt_tokens} prompt + ${chunk.usage.completion_tokens} generated tokens]\n`);
}
