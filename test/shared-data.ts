/**
 * Locates the real test data in ../shared/models (next to the repo; never copied into it).
 * Under CI a missing file fails the test; elsewhere the caller skips.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const MODELS_DIR = fileURLToPath(new URL("../../shared/models/", import.meta.url));

export function modelPath(relative: string): string {
  return MODELS_DIR + relative;
}

/** True when every file exists; throws under CI=true when one is missing. */
export function haveFiles(...relative: string[]): boolean {
  const missing = relative.filter((r) => !existsSync(modelPath(r)));
  if (missing.length > 0 && process.env.CI === "true") {
    throw new Error(`test data missing under CI (tests need ../shared/models): ${missing.map(modelPath).join(", ")}`);
  }
  return missing.length === 0;
}
