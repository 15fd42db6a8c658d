/**
 * Transpiles runtime/ and quantizer/ to JavaScript under dist/ (same layout, relative `.ts`
 * imports and worker URLs rewritten to `.js`), with the kernel binaries and the default texts
 * beside them so every `new URL(..., import.meta.url)` still finds its file.
 * Why: Deno (like Node) refuses to strip TypeScript types in files under node_modules, so a
 * project that `npm install`s crumb and runs under Deno imports dist/runtime/mod.js (package.json
 * `exports`, the "default" condition); Bun takes the TypeScript itself (the "bun" condition).
 * Runs on `npm install` in a checkout (prepare) and before `npm pack` (prepack).
 *   bun runtime/bin/build-js.ts [--outdir dist]   (relative to the repository, or absolute)
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";

declare const Bun: { Transpiler: new (options: { loader: "ts"; target: "browser" | "bun" | "node" }) => { transformSync(code: string): string } };

const ROOT = join(import.meta.dir, "..", "..");
const { values } = parseArgs({ args: process.argv.slice(2), options: { outdir: { type: "string", default: "dist" } } });
const OUT = resolve(ROOT, values.outdir!);
const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };

/** Source files that ship: no tests, no test fixtures. */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith(".ts") && !name.endsWith(".test.ts") && !name.endsWith(".d.ts") ? [path] : [];
  });
}

/** `./x.ts` → `./x.js` in static and dynamic imports, re-exports and `new URL("./x.ts", ...)`. */
export function rewriteSpecifiers(code: string): string {
  return code.replace(/(["'])(\.{1,2}\/[^"'\n]*?)\.ts\1/g, (_, quote: string, path: string) => `${quote}${path}.js${quote}`);
}

const transpiler = new Bun.Transpiler({ loader: "ts", target: "node" });
rmSync(OUT, { recursive: true, force: true });
let files = 0;
for (const dir of ["runtime", "quantizer"]) {
  for (const file of sources(join(ROOT, dir))) {
    // The single-file executable's entry embeds assets the Bun way; it has no JS twin.
    if (["compiled-entry.ts", "build.ts", "build-js.ts"].some((name) => file.endsWith(join("bin", name)))) continue;
    const target = join(OUT, relative(ROOT, file)).replace(/\.ts$/, ".js");
    mkdirSync(dirname(target), { recursive: true });
    const code = file.endsWith(join("cli", "version.ts"))
      // The version as a literal: dist/ has no package.json beside it to import.
      ? `export const CRUMB_VERSION = ${JSON.stringify(manifest.version)};\n`
      : rewriteSpecifiers(transpiler.transformSync(readFileSync(file, "utf8")));
    writeFileSync(target, code);
    files++;
  }
}
const assets = [
  "kernels-wasm/pkg/crumb_kernels.wasm",
  "kernels-wasm/pkg/crumb_kernels_relaxed.wasm",
  "quantizer/calibration-default.txt",
  "quantizer/evaluation-default.txt",
];
for (const asset of assets) {
  mkdirSync(dirname(join(OUT, asset)), { recursive: true });
  copyFileSync(join(ROOT, asset), join(OUT, asset));
}
process.stderr.write(`build-js: ${files} modules and ${assets.length} assets in ${relative(ROOT, OUT)}/\n`);
