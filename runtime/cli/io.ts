/**
 * What a command reads and writes, so tests can drive commands without a process: stdout for
 * results, stderr for progress and notes, stdin (whole or by line), and an interrupt signal
 * that Ctrl-C raises. `processIo()` is the real one.
 */
import process from "node:process";
import { createInterface } from "node:readline";

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  readonly stdoutIsTTY: boolean;
  readonly stderrIsTTY: boolean;
  readonly stdinIsTTY: boolean;
  /** All of stdin, as text. */
  readStdin(): Promise<string>;
  /**
   * Lines typed or piped on stdin; `prompt` is shown before each on a terminal. `onInterrupt`
   * runs on Ctrl-C (the terminal's or SIGINT).
   */
  readLines(prompt: string, onInterrupt: () => void): { lines: AsyncIterable<string>; setPrompt(prompt: string): void; close(): void };
  /** Calls `handler` on Ctrl-C (SIGINT) until the returned function is called. */
  onInterrupt(handler: () => void): () => void;
}

export function processIo(): CliIo {
  return {
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    stdoutIsTTY: process.stdout.isTTY === true,
    stderrIsTTY: process.stderr.isTTY === true,
    stdinIsTTY: process.stdin.isTTY === true,
    async readStdin() {
      const chunks: Uint8Array[] = [];
      for await (const chunk of process.stdin) chunks.push(typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk);
      return new TextDecoder().decode(Buffer.concat(chunks));
    },
    readLines(prompt, onInterrupt) {
      const terminal = process.stdin.isTTY === true && process.stdout.isTTY === true;
      const rl = createInterface({ input: process.stdin, output: terminal ? process.stdout : undefined, terminal, prompt });
      rl.on("SIGINT", onInterrupt);
      const stop = this.onInterrupt(onInterrupt);
      rl.on("close", stop);
      const lines = (async function* () {
        if (terminal) rl.prompt();
        for await (const line of rl) {
          yield line;
          if (terminal) rl.prompt();
        }
      })();
      return { lines, setPrompt: (p) => rl.setPrompt(p), close: () => rl.close() };
    },
    onInterrupt(handler) {
      process.on("SIGINT", handler);
      return () => void process.off("SIGINT", handler);
    },
  };
}
