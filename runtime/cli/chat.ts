/**
 * `crumb chat <model>` (also `crumb run`): a conversation in the terminal, as `ollama run` and
 * `llama-cli -cnv` hold one. Each line typed (or piped) is a user turn; the whole conversation
 * goes through the chat template every turn, so answers see the history (the engine's cache
 * keeps the shared prefix, so only the new turn is prefilled). `"""` opens and closes a
 * message of several lines; /bye, /clear, /system and /help are commands. `-p`/`-f` ask one
 * question and exit. Ctrl-C stops an answer (with its statistics) and, at the prompt, leaves.
 */
import { readFileSync } from "node:fs";
import { ContextLengthError, UsageError } from "../errors.ts";
import type { ChatMessage, Engine, GenerateOptions } from "../engine/types.ts";
import type { KvType } from "../engine/wasm-backend.ts";
import { defaultThreads } from "../threads/pool.ts";
import { CHATML_STOP } from "../tokenizer/chat-template.ts";
import { pathProblem } from "../format/path-problem.ts";
import { type CommandSpec, parseCommand } from "./command-line.ts";
import { integerValue, pathValue } from "./flag-values.ts";
import { promptFrom, statisticsLine, stderrLog, streamGeneration } from "./generate.ts";
import type { CliIo } from "./io.ts";
import { loadModelForCli } from "./load-model.ts";
import { CHAT_TEMPLATE_FLAG, engineFlags, MODEL_FLAG, modelArgument, SAMPLING_FLAGS, samplingOptions, TOKENIZER_FLAG } from "./model-flags.ts";

export const CHAT_COMMAND: CommandSpec = {
  name: "chat",
  summary: "chat with a model in the terminal (history kept; /bye to leave)",
  arguments: [{ name: "model", description: "model.q4, model.gguf, a Hugging Face directory or a llama2.c .bin" }],
  flags: [
    MODEL_FLAG,
    { flags: "--system <text>", description: "system prompt, the conversation's first message", aliases: ["-sys"] },
    CHAT_TEMPLATE_FLAG,
    { flags: "-p, --prompt <text>", description: "ask this one question, print the answer and exit" },
    { flags: "-f, --file <path>", description: "ask the contents of a file as one question and exit", parse: pathValue },
    { flags: "-n, --n-predict <n>", description: "new tokens per answer at most (-1: until the end of the turn)", default: -1, aliases: ["--max-tokens"], parse: integerValue({ min: -1, max: 1 << 24 }) },
    ...SAMPLING_FLAGS,
    ...engineFlags("f16"),
    TOKENIZER_FLAG,
    { flags: "--verbose", description: "statistics after every answer (on stderr)" },
  ],
  examples: [
    "crumb chat smol.q4",
    'crumb chat smol.q4 --system "Answer in one sentence." -p "Why is the sky blue?"',
    "printf 'Hi\\nWhat did I just say?\\n' | crumb chat smol.q4 --temp 0",
  ],
  notes: 'In the chat: """ starts and ends a message of several lines; /clear forgets the conversation; /system <text> sets the system\n' +
    "prompt; /bye (or /exit, Ctrl-D) leaves; Ctrl-C stops an answer, and at the prompt leaves.",
};

const HELP = "/bye leave   /clear forget the conversation   /system <text> set the system prompt   " +
  '""" a message of several lines   Ctrl-C stop an answer';

/** One turn: streams the answer, returns its text (also when interrupted) or undefined when it did not fit. */
async function answer(engine: Engine, messages: readonly ChatMessage[], options: GenerateOptions, io: CliIo, verbose: boolean, interrupt: AbortController) {
  try {
    const stats = await streamGeneration(engine, messages, { ...options, signal: interrupt.signal }, (text) => io.stdout(text));
    io.stdout("\n");
    if (stats.interrupted || verbose) io.stderr(`${statisticsLine(stats)}\n`);
    return stats.text;
  } catch (error) {
    if (!(error instanceof ContextLengthError)) throw error;
    io.stderr(`the conversation no longer fits the context (${error.message}); /clear starts afresh, or raise -c\n`);
    return undefined;
  }
}

/** Runs `crumb chat`; resolves with the exit code. */
export async function runChat(argv: readonly string[], io: CliIo): Promise<number> {
  const { options, args, warnings } = parseCommand(CHAT_COMMAND, argv);
  const log = stderrLog(io, "crumb chat: ");
  for (const warning of warnings) log.line(warning);
  const modelPath = modelArgument(args[0], options.model, "chat");
  if (modelPath === undefined) throw new UsageError("model", "give a model: crumb chat <model> (see crumb chat --help)");
  const question = await promptFrom(options, io, "chat");
  const templatePath = options.chatTemplate as string | undefined;
  const templateProblem = templatePath === undefined ? undefined : pathProblem(templatePath);
  if (templateProblem !== undefined) throw new UsageError("--chat-template", `chat template file ${templatePath} ${templateProblem}`);

  const { engine } = await loadModelForCli(modelPath, {
    chat: true,
    tokenizer: options.tokenizer as string | undefined,
    chatTemplate: templatePath === undefined ? undefined : readFileSync(templatePath, "utf8"),
    contextLength: options.ctxSize as number | undefined,
    threads: (options.threads as number | undefined) ?? defaultThreads(),
    kv: options.kv as KvType,
    kvBudget: options.kvBudget as number | undefined,
  }, log);
  try {
    const predict = options.nPredict as number;
    const generateOptions: GenerateOptions = {
      ...samplingOptions(options),
      maxTokens: predict < 0 ? undefined : predict,
      stop: engine.chatTemplateFallback === "chatml" ? [CHATML_STOP] : undefined,
    };
    const verbose = options.verbose === true;
    let system = options.system as string | undefined;
    const history: ChatMessage[] = [];
    const conversation = (): ChatMessage[] => [...(system === undefined ? [] : [{ role: "system", content: system }]), ...history];

    if (question !== undefined) {
      history.push({ role: "user", content: question });
      const interrupt = new AbortController();
      const stop = io.onInterrupt(() => interrupt.abort());
      const reply = await answer(engine, conversation(), generateOptions, io, verbose, interrupt).finally(stop);
      return reply === undefined ? 1 : interrupt.signal.aborted ? 130 : 0;
    }

    if (io.stdinIsTTY) log.line(`chatting with ${engine.modelId}; ${HELP}`);
    // Ctrl-C stops the answer being written, or leaves when none is.
    let answering: AbortController | undefined;
    let leave = false;
    const input = io.readLines(">>> ", () => {
      if (answering !== undefined) answering.abort();
      else {
        leave = true;
        input.close();
      }
    });
    let pending: string[] | undefined;
    for await (const line of input.lines) {
      if (pending !== undefined) {
        if (line.trimEnd().endsWith('"""')) {
          const last = line.trimEnd().slice(0, -3);
          if (last !== "") pending.push(last);
          const text = pending.join("\n");
          pending = undefined;
          input.setPrompt(">>> ");
          if (text.trim() !== "") {
            history.push({ role: "user", content: text });
            await turn();
          }
        } else pending.push(line);
        continue;
      }
      const text = line.trim();
      if (text === "") continue;
      if (text.startsWith('"""')) {
        const rest = text.slice(3);
        if (rest.endsWith('"""') && rest.length >= 3) {
          history.push({ role: "user", content: rest.slice(0, -3) });
          await turn();
        } else {
          pending = rest === "" ? [] : [rest];
          input.setPrompt("... ");
        }
        continue;
      }
      if (text.startsWith("/")) {
        const [command, ...restWords] = text.split(/\s+/);
        if (command === "/bye" || command === "/exit" || command === "/quit") break;
        else if (command === "/clear") {
          history.length = 0;
          io.stderr("conversation cleared\n");
        } else if (command === "/system") {
          system = restWords.length === 0 ? undefined : text.slice(command.length).trim();
          io.stderr(system === undefined ? "system prompt removed\n" : "system prompt set\n");
        } else if (command === "/help" || command === "/?") io.stderr(`${HELP}\n`);
        else io.stderr(`unknown command ${command}; /help lists them\n`);
        continue;
      }
      history.push({ role: "user", content: line });
      await turn();
      if (leave) break;
    }
    input.close();
    return 0;

    async function turn(): Promise<void> {
      answering = new AbortController();
      const reply = await answer(engine, conversation(), generateOptions, io, verbose, answering);
      answering = undefined;
      if (reply === undefined) history.pop();
      else history.push({ role: "assistant", content: reply });
    }
  } finally {
    await engine.dispose();
  }
}
