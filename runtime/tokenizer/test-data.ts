/**
 * Test helpers: locate the shared model files (../shared/models next to the repo), fail
 * when they are missing under CI and skip otherwise, and read a GGUF file's metadata
 * (test-only reader: the real one lives in quantizer/import/gguf.ts).
 */

import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const MODELS_DIR = fileURLToPath(new URL("../../../shared/models/", import.meta.url));

/** Absolute path of a file under shared/models. */
export function modelPath(relative: string): string {
  return MODELS_DIR + relative;
}

/**
 * True when every file exists. Under CI a missing file is an error (the test must fail,
 * not skip); elsewhere the caller skips.
 */
export function haveFiles(...relative: string[]): boolean {
  const missing = relative.filter((r) => !existsSync(modelPath(r)));
  if (missing.length > 0 && process.env.CI === "true") {
    throw new Error(`test data missing under CI: ${missing.map(modelPath).join(", ")}`);
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

/** Reads the key/value metadata of a GGUF v2/v3 file (no tensors). */
export function readGgufMetadata(bytes: Uint8Array): Map<string, unknown> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder();
  let pos = 0;
  const u32 = () => ((pos += 4), view.getUint32(pos - 4, true));
  const u64 = () => ((pos += 8), Number(view.getBigUint64(pos - 8, true)));
  const str = () => {
    const n = u64();
    pos += n;
    return decoder.decode(bytes.subarray(pos - n, pos));
  };
  const value = (type: number): unknown => {
    switch (type) {
      case 0: return view.getUint8(pos++);
      case 1: return view.getInt8(pos++);
      case 2: return ((pos += 2), view.getUint16(pos - 2, true));
      case 3: return ((pos += 2), view.getInt16(pos - 2, true));
      case 4: return u32();
      case 5: return ((pos += 4), view.getInt32(pos - 4, true));
      case 6: return ((pos += 4), view.getFloat32(pos - 4, true));
      case 7: return view.getUint8(pos++) !== 0;
      case 8: return str();
      case 9: {
        const elementType = u32();
        const n = u64();
        const out: unknown[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = value(elementType);
        return out;
      }
      case 10: return u64();
      case 11: return ((pos += 8), Number(view.getBigInt64(pos - 8, true)));
      case 12: return ((pos += 8), view.getFloat64(pos - 8, true));
      default: throw new Error(`GGUF value type ${type} at byte ${pos}`);
    }
  };
  if (decoder.decode(bytes.subarray(0, 4)) !== "GGUF") throw new Error("not a GGUF file");
  pos = 4;
  const version = u32();
  if (version < 2) throw new Error(`GGUF version ${version}`);
  u64();
  const kvCount = u64();
  const metadata = new Map<string, unknown>();
  for (let i = 0; i < kvCount; i++) {
    const key = str();
    metadata.set(key, value(u32()));
  }
  return metadata;
}
