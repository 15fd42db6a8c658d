/**
 * Incremental detokenization for streaming: turns generated ids into text deltas whose
 * concatenation equals decoding all ids at once, without ever emitting half a UTF-8
 * character.
 *
 * Decoding one token alone is wrong for most tokenizers (SentencePiece strips a leading
 * space, byte-fallback and byte-level tokens can hold part of a character), so each step
 * decodes a short window: the tokens already emitted since the last boundary ("prefix")
 * plus the new ones, and emits the text past the prefix. While that text ends in U+FFFD the
 * character is incomplete and the delta is held back. This is the prefix/read offset scheme
 * of Hugging Face text-generation-inference.
 */

import type { CrumbTokenizer, DecodeOptions } from "./tokenizer.ts";

export interface Detokenizer {
  /** Adds one generated id and returns the text it completes (possibly ""). */
  push(id: number): string;
  /** Returns any text still held back (an incomplete character becomes U+FFFD). */
  flush(): string;
}

const REPLACEMENT = "\uFFFD";

/** Creates a streaming detokenizer over `tokenizer`. */
export function createDetokenizer(tokenizer: CrumbTokenizer, options: DecodeOptions = {}): Detokenizer {
  const ids: number[] = [];
  // ids[prefixOffset, readOffset) were emitted already and give the decoding context;
  // ids[readOffset, ...) are pending.
  let prefixOffset = 0;
  let readOffset = 0;

  /** Text of the pending ids, decoded in the context of the prefix ids. */
  const pendingText = (): string => {
    const prefixText = tokenizer.decode(ids.slice(prefixOffset, readOffset), options);
    const fullText = tokenizer.decode(ids.slice(prefixOffset), options);
    return fullText.slice(prefixText.length);
  };
  const advance = (delta: string): string => {
    prefixOffset = readOffset;
    readOffset = ids.length;
    return delta;
  };

  return {
    push(id) {
      ids.push(id);
      const delta = pendingText();
      if (delta.length === 0 || delta.endsWith(REPLACEMENT)) return "";
      return advance(delta);
    },
    flush() {
      return readOffset === ids.length ? "" : advance(pendingText());
    },
  };
}
