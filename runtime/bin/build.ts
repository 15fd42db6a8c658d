/**
 * Builds crumb as one executable per platform with `bun build --compile`: the `crumb` command
 * (every command but bench), the kernel binary embedded as an asset, and the worker-pool script as a second
 * entry point so workers start inside the executable.
 *   bun runtime/bin/build.ts [--target linux-x64|linux-arm64]... [--outdir dist]
 */
import { parseArgs } from "node:util";
import process from "node:process";

const TARGETS: Record<string, string> = { "linux-x64": "bun-linux-x64", "linux-arm64": "bun-linux-arm64" };

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { target: { type: "string", multiple: true }, outdir: { type: "string", default: "dist" } },
});
const targets = values.target ?? ["linux-x64", "linux-arm64"];
for (const target of targets) {
  const bunTarget = TARGETS[target];
  if (bunTarget === undefined) {
    process.stderr.write(`unknown --target ${target}; choose ${Object.keys(TARGETS).join(" or ")}\n`);
    process.exit(2);
  }
  const outfile = `${values.outdir}/crumb-${target}`;
  const proc = Bun.spawnSync([
    process.execPath, "build", "--compile", `--target=${bunTarget}`,
    "runtime/bin/compiled-entry.ts", "runtime/threads/pool-worker.ts", "--outfile", outfile,
  ], { cwd: new URL("../..", import.meta.url).pathname, stdout: "inherit", stderr: "inherit" });
  if (proc.exitCode !== 0) process.exit(proc.exitCode ?? 1);
  process.stderr.write(`built ${outfile}\n`);
}
