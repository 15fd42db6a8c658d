/**
 * Reads a tokenizer given on the command line (--tokenizer) in any supported form and returns
 * the tokenizer.json pair every model goes through: a tokenizer.json (with the
 * tokenizer_config.json beside it, when present), a SentencePiece .model, a llama2.c
 * tokenizer.bin, or a tiktoken BPE file (with its tokenizer_config.json beside it).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { TokenizerError } from "../errors.ts";
import type { TokenizerFiles } from "../models/types.ts";
import { llama2cTokenizerToFiles } from "./from-llama2c.ts";
import { sentencePieceModelToFiles } from "./from-sentencepiece.ts";
import { tiktokenToFiles } from "./from-tiktoken.ts";

const FORMS = "tokenizer.json, a SentencePiece tokenizer.model, a llama2.c tokenizer.bin or a tiktoken tokenizer.model";

function siblingConfig(path: string): Record<string, unknown> {
  const configPath = join(dirname(path), "tokenizer_config.json");
  if (!existsSync(configPath)) return {};
  try {
    return JSON.parse(readFileSync(configPath, "utf8"));
  } catch (cause) {
    throw new TokenizerError(`${configPath} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
}

export function loadTokenizerFile(path: string): TokenizerFiles {
  if (!existsSync(path) || !statSync(path).isFile()) {
    throw new TokenizerError(`tokenizer file "${path}" does not exist; pass ${FORMS}`);
  }
  const bytes = new Uint8Array(readFileSync(path));
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes.subarray(0, 64)).trimStart();
  if (text.startsWith("{")) {
    let tokenizerJson: Record<string, unknown>;
    try {
      tokenizerJson = JSON.parse(new TextDecoder().decode(bytes));
    } catch (cause) {
      throw new TokenizerError(`${path} looks like JSON but does not parse: ${(cause as Error).message}`, { cause });
    }
    return { tokenizerJson, tokenizerConfig: siblingConfig(path) };
  }
  // tiktoken: lines of "<base64 token> <rank>".
  if (/^[A-Za-z0-9+/=]+ \d+\r?\n/.test(text)) return tiktokenToFiles(new TextDecoder().decode(bytes), siblingConfig(path));
  // SentencePiece models are protobufs whose first field is the repeated `pieces` (tag 0x0a).
  if (bytes[0] === 0x0a) return sentencePieceModelToFiles(bytes);
  try {
    return llama2cTokenizerToFiles(bytes);
  } catch (cause) {
    throw new TokenizerError(`cannot read ${path} as a tokenizer (${(cause as Error).message}); pass ${FORMS}`, { cause });
  }
}
