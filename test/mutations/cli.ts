/**
 * Breaks of the behaviours issue 15 added (the `crumb` command and the first day with it), each
 * with the tests that catch it. Every entry was applied to the working tree, its tests run (with
 * its filter) and seen to fail, and the file restored.
 */
import type { Mutation } from "./types.ts";

const FLAGS = "test/cli/flags.test.ts";
const CHAT = "test/cli/chat.test.ts";
const SERVE = "test/cli/serve.test.ts";
const GENERATE = "test/cli/generate.test.ts";
const LIBRARY = "test/cli/library.test.ts";
const INFO = "test/cli/info.test.ts";

export const mutations: Mutation[] = [
  {
    name: "usage errors exit 1 like any other error",
    file: "runtime/cli/main.ts",
    find: "      io.stderr(`crumb ${command.name}: ${message}\\n`);\n      return 2;",
    replace: "      io.stderr(`crumb ${command.name}: ${message}\\n`);\n      return 1;",
    tests: [FLAGS],
  },
  {
    name: "no \"did you mean\" for a mistyped flag",
    file: "runtime/cli/command-line.ts",
    find: "const hint = suggestion === undefined ?",
    replace: "const hint = true ?",
    tests: [FLAGS],
  },
  {
    name: "integers are not range-checked (a negative thread count is accepted)",
    file: "runtime/cli/flag-values.ts",
    find: "if (!/^\\s*[-+]?\\d+\\s*$/.test(text) || value < min || value > max) {",
    replace: "if (!/^\\s*[-+]?\\d+\\s*$/.test(text)) {",
    tests: [FLAGS],
  },
  {
    name: "aliases not rewritten (--ctx, --temperature, --max-tokens unknown)",
    file: "runtime/cli/command-line.ts",
    find: "for (const name of [...names, ...(flag.aliases ?? [])])",
    replace: "for (const name of names)",
    tests: [FLAGS],
    filter: "parser",
  },
  {
    name: "llama.cpp's GPU flags not dropped (-ngl 99 becomes a positional)",
    file: "runtime/cli/command-line.ts",
    find: "const gpu = GPU_FLAGS.get(name);",
    replace: "const gpu: boolean | undefined = undefined;",
    tests: [FLAGS, GENERATE],
  },
  {
    name: "relative paths resolve against the process's directory, not the user's (INIT_CWD ignored)",
    file: "runtime/cli/user-path.ts",
    find: "existsSync(init)) return resolve(init);",
    replace: "existsSync(init)) return cwd;",
    tests: [GENERATE],
    filter: "relative paths",
  },
  {
    name: "chat forgets earlier turns (each turn sent alone)",
    file: "runtime/cli/chat.ts",
    find: "{ role: \"system\", content: system }]), ...history];",
    replace: "{ role: \"system\", content: system }]), ...history.slice(-1)];",
    tests: [CHAT],
  },
  {
    name: "a \"\"\" block ends with an empty line in the message",
    file: "runtime/cli/chat.ts",
    find: "if (last !== \"\") pending.push(last);",
    replace: "pending.push(last);",
    tests: [CHAT],
  },
  {
    name: "no ChatML fallback: a model without a chat template cannot chat",
    file: "runtime/engine/engine.ts",
    find: "Object.keys(source.chatTemplates).length === 0 ? \"chatml\" as const : undefined;",
    replace: "undefined as \"chatml\" | undefined;",
    tests: [SERVE, CHAT],
  },
  {
    name: "a port in use is reported as the runtime's raw error",
    file: "runtime/cli/serve.ts",
    find: "if (code === \"EADDRINUSE\") {",
    replace: "if (false) {",
    tests: [SERVE],
    filter: "port in use",
  },
  {
    name: "a host that does not resolve is not looked up first (Bun then says the port is in use)",
    file: "runtime/cli/serve.ts",
    find: "    await lookup(hostname);",
    replace: "    await Promise.resolve(hostname);",
    tests: [SERVE],
    filter: "under bun",
  },
  {
    name: "bun run echoes the command line, --api-key included",
    file: "bunfig.toml",
    find: "silent = true",
    replace: "silent = false",
    tests: [SERVE],
    filter: "never printed",
  },
  {
    name: "a failed load is printed twice (the app's line and the CLI's)",
    file: "runtime/cli/serve.ts",
    find: "      listener.stop(true).finally(() => resolve(1));",
    replace: "      listener.stop(true).finally(() => loading.catch((e) => io.stderr(`crumb serve: ${(e as Error).message}\\n`)).then(() => resolve(1)));",
    tests: [SERVE],
    filter: "cannot load",
  },
  {
    name: "under Deno pool workers are Web Workers again (an idle engine keeps the script alive)",
    file: "runtime/threads/spawn-worker.ts",
    find: "if (!(\"Deno\" in globalThis)) return new Worker(",
    replace: "if (true) return new Worker(",
    tests: [LIBRARY],
    filter: "without dispose",
  },
  {
    name: "package exports send Deno to the TypeScript, which it refuses to strip under node_modules",
    file: "package.json",
    find: "\"default\": \"./dist/runtime/mod.js\"",
    replace: "\"default\": \"./runtime/mod.ts\"",
    tests: [LIBRARY],
    filter: "under deno",
  },
  {
    name: "no ready line after loading",
    file: "runtime/cli/load-model.ts",
    find: "`ready: ${engine.modelId}",
    replace: "`loaded ${engine.modelId}",
    tests: [CHAT, SERVE],
  },
  {
    name: "no progress bar while loading on a terminal",
    file: "runtime/cli/load-model.ts",
    find: "if (!log.isTTY || p.bytesTotal === 0) return;",
    replace: "return;",
    tests: ["test/cli/load-model.test.ts"],
  },
  {
    name: "no warning for a context past the trained length",
    file: "runtime/cli/load-model.ts",
    find: "if (engine.contextLength > trained) {",
    replace: "if (false) {",
    tests: [GENERATE],
    filter: "warnings",
  },
  {
    name: "a poor stored quality report goes unmentioned",
    file: "runtime/cli/quality-warning.ts",
    find: "if (!lowAgreement && !highPerplexity) return undefined;",
    replace: "return undefined;",
    tests: [GENERATE, INFO, "test/quantizer/cli.test.ts"],
    filter: "warnings|recipe|byte-identical",
  },
  {
    name: "Ctrl-C during generate kills it without statistics",
    file: "runtime/cli/generate.ts",
    find: "const stopListening = io.onInterrupt(() => interrupt.abort());",
    replace: "const stopListening = () => {};",
    tests: [GENERATE],
    filter: "Ctrl-C",
  },
  {
    name: "info omits the stored quality report",
    file: "runtime/cli/info.ts",
    find: "...(typeof report.bpw === \"number\" ? formatReport(report)",
    replace: "...(false ? formatReport(report)",
    tests: [INFO],
  },
  {
    name: "pull asks os.homedir() first (Deno refuses without --allow-sys)",
    file: "quantizer/pull/cache.ts",
    find: "const home = env.HOME?.trim() || env.USERPROFILE?.trim() || os.homedir();",
    replace: "const home = os.homedir();",
    tests: ["test/pull/cli.test.ts"],
    filter: "deno task",
  },
];
