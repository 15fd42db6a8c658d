/**
 * Paths on the command line mean what they mean in the user's shell. `npx crumb` runs where
 * the user is; `npm run <script>` and `deno task <script>` run from the package root and
 * record the user's directory in INIT_CWD, so a relative path resolves against that.
 * (`bun run` records nothing: from a subdirectory, use `npx crumb`.)
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** The repository (package) root; scripts run from here. */
const PACKAGE_ROOT = resolve(fileURLToPath(new URL("../../", import.meta.url)));

/** The directory the user typed the command in. */
export function userDirectory(env: Record<string, string | undefined> = process.env, cwd: string = process.cwd()): string {
  const init = env.INIT_CWD;
  // Only a script started from the package root can have moved the user there.
  if (init !== undefined && init !== "" && resolve(cwd) === PACKAGE_ROOT && existsSync(init)) return resolve(init);
  return cwd;
}

/** `path` made absolute against the user's directory (absolute paths stay as they are). */
export function userPath(path: string, env?: Record<string, string | undefined>, cwd?: string): string {
  return resolve(userDirectory(env, cwd), path);
}
