#!/usr/bin/env node
/**
 * The `crumb` command npm links (package.json `bin`): crumb is TypeScript for Bun and Deno,
 * and npm runs bins with Node, so this starts runtime/cli.ts on Bun, the one npm installed
 * beside crumb (the `bun` dependency), else a `bun` on PATH. Started by Bun or Deno itself
 * (`bunx crumb`, `deno run npm:crumb`) it runs the CLI in-process. The child inherits the
 * terminal, so Ctrl-C reaches it directly; its exit code (or signal) becomes this one's.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const cli = fileURLToPath(new URL("../cli.ts", import.meta.url));

/** The Bun binary npm installed with crumb, if any. */
function installedBun() {
  try {
    const manifest = createRequire(import.meta.url).resolve("bun/package.json");
    const binary = join(dirname(manifest), "bin", "bun.exe");
    return existsSync(binary) ? binary : undefined;
  } catch {
    return undefined;
  }
}

if ("Bun" in globalThis || "Deno" in globalThis) {
  await import(cli);
} else {
  const bun = installedBun() ?? "bun";
  const child = spawn(bun, [cli, ...process.argv.slice(2)], { stdio: "inherit" });
  // The terminal sends Ctrl-C to the child too; this process waits for it to finish.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, () => {
      if (signal !== "SIGINT") child.kill(signal);
    });
  }
  child.on("error", (error) => {
    process.stderr.write(
      `crumb: cannot start Bun (${error.message}); crumb runs on Bun or Deno: npm install bun, or run deno task crumb\n`,
    );
    process.exit(1);
  });
  child.on("exit", (code, signal) => {
    if (signal !== null) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}
