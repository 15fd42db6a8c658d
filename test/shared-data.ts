/**
 * Locates the real test data in ../shared/models (next to the repo; never copied into it).
 * Under CI a missing file fails the test; elsewhere the caller skips.
 */
import { existsSync, readFileSync } from "node:fs";
import { test } from "bun:test";
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

export function readBytes(relative: string): Uint8Array {
  return new Uint8Array(readFileSync(modelPath(relative)));
}

export function readText(relative: string): string {
  return readFileSync(modelPath(relative), "utf8");
}

export function readJson<T = Record<string, unknown>>(relative: string): T {
  return JSON.parse(readText(relative)) as T;
}

/** llama.cpp vocab test vectors: inputs split on the marker, one id line per input. */
export function readVocabVectors(base: string): { text: string; ids: number[] }[] {
  const inputs = readText(`${base}.inp`).split("\n__ggml_vocab_test__\n");
  const lines = readText(`${base}.out`).split("\n");
  if (lines.at(-1) === "" && lines.length === inputs.length + 1) lines.pop();
  if (lines.length !== inputs.length) throw new Error(`${base}: ${inputs.length} inputs but ${lines.length} id lines`);
  return inputs.map((text, i) => ({
    text,
    ids: lines[i].trim() === "" ? [] : lines[i].trim().split(/\s+/).map(Number),
  }));
}

/** A test over shared model files: runs when they exist, fails under CI when they do not, else skips. */
export function testShared(name: string, files: readonly string[], fn: (...paths: string[]) => unknown): void {
  const paths = files.map(modelPath);
  const missing = paths.filter((p) => !existsSync(p));
  if (missing.length === 0) test(name, () => fn(...paths));
  else if (process.env.CI === "true") {
    test(name, () => {
      throw new Error(`shared test data missing: ${missing.join(", ")}`);
    });
  } else test.skip(name, () => {});
}
