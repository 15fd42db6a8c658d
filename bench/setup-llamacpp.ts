/**
 * llama.cpp for the benchmark and the llama.cpp comparison tests, installed on demand rather
 * than by `npm install`: node-llama-cpp with its prebuilt binaries for every GPU is about 700 MB,
 * its CPU build alone about 85 MB. This installs a pinned node-llama-cpp with only this
 * platform's CPU build into a cache ($XDG_CACHE_HOME or ~/.cache, crumb/node-llama-cpp-<v>)
 * once, and links it as node_modules/node-llama-cpp so `import("node-llama-cpp")` finds it.
 *   bun bench/setup-llamacpp.ts        (npm run setup:llamacpp; crumb bench runs it on first use)
 */
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** The release the tests were written against (its controlledEvaluate returns logits; 3.21 does not). */
export const NODE_LLAMA_CPP_VERSION = "3.22.1";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const LINK = join(ROOT, "node_modules", "node-llama-cpp");

/** node-llama-cpp's package of prebuilt CPU binaries for this machine, if it ships one. */
function cpuBuildPackage(): string | undefined {
  const platform = { linux: "linux", darwin: "mac", win32: "win" }[process.platform as string];
  const arch = { x64: "x64", arm64: "arm64" }[process.arch as string];
  if (platform === undefined || arch === undefined) return undefined;
  return `@node-llama-cpp/${platform}-${arch}${platform === "mac" && arch === "arm64" ? "-metal" : ""}`;
}

export function llamaCppCacheDir(env: Record<string, string | undefined> = process.env): string {
  const base = env.XDG_CACHE_HOME || join(env.HOME ?? env.USERPROFILE ?? ROOT, ".cache");
  return join(base, "crumb", `node-llama-cpp-${NODE_LLAMA_CPP_VERSION}`);
}

/** Whether node_modules/node-llama-cpp exists (installed by npm or linked here). */
export function llamaCppInstalled(): boolean {
  return existsSync(join(LINK, "package.json"));
}

/** The one command that installs it, for messages. */
export const SETUP_COMMAND = "npm run setup:llamacpp";

/** Installs (once) and links node-llama-cpp; throws with npm's last lines when it fails. */
export function installLlamaCpp(log: (line: string) => void = (line) => console.error(line)): void {
  const cache = llamaCppCacheDir();
  const installed = join(cache, "node_modules", "node-llama-cpp");
  if (!existsSync(join(installed, "package.json"))) {
    const cpu = cpuBuildPackage();
    log(`installing node-llama-cpp@${NODE_LLAMA_CPP_VERSION} (CPU build ${cpu ?? "none for this platform"}) into ${cache}`);
    mkdirSync(cache, { recursive: true });
    writeFileSync(join(cache, "package.json"), JSON.stringify({ name: "crumb-llamacpp", private: true }) + "\n");
    const packages = [`node-llama-cpp@${NODE_LLAMA_CPP_VERSION}`, ...(cpu === undefined ? [] : [`${cpu}@${NODE_LLAMA_CPP_VERSION}`])];
    // --omit=optional leaves out the CUDA and Vulkan builds (node-llama-cpp's optional
    // dependencies); the CPU build is named explicitly. No build from source is attempted.
    const npm = spawnSync("npm", ["install", "--no-audit", "--no-fund", "--omit=optional", "-E", ...packages], {
      cwd: cache,
      env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true" },
      encoding: "utf8",
    });
    if (npm.status !== 0) {
      const tail = `${npm.stderr ?? ""}${npm.error?.message ?? ""}`.trim().split("\n").slice(-3).join(" | ");
      throw new Error(`npm install of node-llama-cpp failed in ${cache}: ${tail}`);
    }
  }
  // node-llama-cpp itself, and its CPU build (test/gguf's ggml oracle loads libggml-base from it).
  const cpu = cpuBuildPackage();
  link(installed, LINK, log);
  if (cpu !== undefined && existsSync(join(cache, "node_modules", cpu))) {
    mkdirSync(join(ROOT, "node_modules", "@node-llama-cpp"), { recursive: true });
    link(join(cache, "node_modules", cpu), join(ROOT, "node_modules", cpu), log);
  }
}

function link(target: string, path: string, log: (line: string) => void): void {
  if (lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink() && readlinkSync(path) === target) return;
  rmSync(path, { recursive: true, force: true });
  symlinkSync(target, path, "dir");
  log(`linked ${path} -> ${target}`);
}

if (import.meta.main) {
  try {
    installLlamaCpp();
  } catch (error) {
    console.error((error as Error).message);
    process.exit(1);
  }
}
