/**
 * Bounds that let the server refuse text that cannot fit before it spends time tokenizing it
 * (tokenizing runs on the event loop at about 2 µs a character: a 4 MB prompt would hold every
 * other request for seconds). No token stands for more characters than the longest token's
 * text, so a text longer than `tokens * longestTokenChars` characters needs more than `tokens`
 * tokens. The raw vocabulary strings are an upper bound on the decoded text (byte-level and
 * SentencePiece markers map one raw character to at most one character), so the bound only
 * ever lets through what might fit.
 */
import { InvalidArgumentError } from "../errors.ts";
import type { CrumbTokenizer } from "../tokenizer/tokenizer.ts";

const longest = new WeakMap<CrumbTokenizer, number>();

/** Characters of the longest non-special token (at least 1). */
export function longestTokenChars(tokenizer: CrumbTokenizer): number {
  const cached = longest.get(tokenizer);
  if (cached !== undefined) return cached;
  let max = 1;
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    if (tokenizer.specialTokenIds.has(id)) continue;
    max = Math.max(max, tokenizer.idToToken(id)?.length ?? 0);
  }
  longest.set(tokenizer, max);
  return max;
}

/** The fewest tokens `chars` characters of text can take. */
export function fewestTokens(tokenizer: CrumbTokenizer, chars: number): number {
  return Math.ceil(chars / longestTokenChars(tokenizer));
}

/** Throws a 400 naming `param` when `text` cannot fit in `tokens` tokens whatever it says. */
export function checkFits(tokenizer: CrumbTokenizer, text: string, tokens: number, param: string, limit: string): void {
  const least = fewestTokens(tokenizer, text.length);
  if (least > tokens) {
    throw new InvalidArgumentError(
      param,
      `${param} is ${text.length} characters, at least ${least} tokens (no token is longer than ${
        longestTokenChars(tokenizer)
      } characters), beyond ${limit} of ${tokens} tokens; send less text`,
    );
  }
}
