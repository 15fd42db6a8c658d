/**
 * Converts a tiktoken BPE file (one "base64-token rank" pair per line, as Meta ships Llama 3's
 * original/tokenizer.model) plus its tokenizer_config.json into a ByteLevel BPE tokenizer.json.
 *
 * tiktoken merges the adjacent pair whose concatenation has the lowest rank. HF BPE merges
 * by merge rank, so every split of a token into two tokens becomes a merge ranked by the
 * merged token's rank (the approach of transformers' TikTokenConverter). tiktoken also looks
 * the whole pre-token up before merging, which HF spells `ignore_merges: true`.
 */

import { TokenizerError } from "../errors.ts";
import type { TokenizerFiles } from "../models/types.ts";
import { BYTE_TO_UNICODE, LLAMA3_PATTERN, byteLevelBpeJson } from "./byte-level.ts";
import { tokenContent } from "./tokenizer.ts";

/** Parses "base64 rank" lines into raw byte strings (one char per byte) indexed by rank. */
function readRanks(text: string): string[] {
  const byRank: string[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    const space = line.indexOf(" ");
    const rank = Number(line.slice(space + 1));
    if (space <= 0 || !Number.isInteger(rank) || rank < 0) {
      throw new TokenizerError(`tiktoken file line ${i + 1} is ${JSON.stringify(line.slice(0, 60))}; expected "<base64> <rank>"`);
    }
    let bytes: string;
    try {
      bytes = atob(line.slice(0, space));
    } catch (cause) {
      throw new TokenizerError(`tiktoken file line ${i + 1} has invalid base64`, { cause });
    }
    if (byRank[rank] !== undefined) throw new TokenizerError(`tiktoken file line ${i + 1} repeats rank ${rank}`);
    byRank[rank] = bytes;
  }
  if (byRank.length === 0) throw new TokenizerError("tiktoken file is empty");
  for (let r = 0; r < byRank.length; r++) {
    if (byRank[r] === undefined) throw new TokenizerError(`tiktoken file has no token of rank ${r}`);
  }
  return byRank;
}

function toByteLevel(bytes: string): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += BYTE_TO_UNICODE[bytes.charCodeAt(i)];
  return out;
}

/** Every split of every token into two tokens, ordered by merged rank, then left rank. */
function mergesFromRanks(byRank: readonly string[]): [string, string][] {
  const rankOf = new Map<string, number>();
  byRank.forEach((bytes, rank) => rankOf.set(bytes, rank));
  const found: [number, number, number][] = [];
  for (let rank = 0; rank < byRank.length; rank++) {
    const bytes = byRank[rank];
    for (let k = 1; k < bytes.length; k++) {
      const left = rankOf.get(bytes.slice(0, k));
      if (left === undefined) continue;
      const right = rankOf.get(bytes.slice(k));
      if (right !== undefined) found.push([rank, left, right]);
    }
  }
  found.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const strings = byRank.map(toByteLevel);
  return found.map(([, left, right]) => [strings[left], strings[right]]);
}

/**
 * Converts tiktoken text + tokenizer_config.json (its added_tokens_decoder gives the special
 * tokens, e.g. Llama 3's ids 128000-128255) into tokenizer.json / tokenizer_config.json.
 * Uses the Llama 3 split pattern, the only tiktoken family crumb supports.
 */
export function tiktokenToFiles(text: string, config: Record<string, unknown>): TokenizerFiles {
  const byRank = readRanks(text);
  const tokens = byRank.map(toByteLevel);
  const decoderEntries = config.added_tokens_decoder;
  const added: { id: number; content: string; special: boolean }[] = [];
  if (decoderEntries !== undefined) {
    if (decoderEntries === null || typeof decoderEntries !== "object") {
      throw new TokenizerError("tokenizer_config.json added_tokens_decoder must be an object of id → token");
    }
    for (const [key, value] of Object.entries(decoderEntries as Record<string, unknown>)) {
      const id = Number(key);
      const content = tokenContent(value);
      if (!Number.isInteger(id) || id < 0 || content === undefined) {
        throw new TokenizerError(`tokenizer_config.json added_tokens_decoder entry ${JSON.stringify(key)} is malformed`);
      }
      added.push({ id, content, special: (value as { special?: boolean }).special ?? true });
    }
  }
  added.sort((a, b) => a.id - b.id);
  const bosToken = tokenContent(config.bos_token);
  const bosId = added.find((a) => a.content === bosToken)?.id;
  const addBosToken = (config.add_bos_token as boolean | undefined) ?? true;
  const tokenizerJson = byteLevelBpeJson({
    setup: {
      normalizer: null,
      preTokenizer: {
        type: "Sequence",
        pretokenizers: [
          { type: "Split", pattern: { Regex: LLAMA3_PATTERN }, behavior: "Isolated", invert: false },
          { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
        ],
      },
      ignoreMerges: true,
    },
    tokens,
    merges: mergesFromRanks(byRank),
    added,
    bosToken,
    bosId,
    addBosToken,
  });
  const tokenizerConfig: Record<string, unknown> = { ...config, add_bos_token: addBosToken };
  return { tokenizerJson, tokenizerConfig };
}
