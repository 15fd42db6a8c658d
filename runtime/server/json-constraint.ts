/**
 * JSON mode by constrained sampling: before each token the engine asks which ids may come
 * next, and a token is allowed iff appending its text keeps the output a valid prefix of the
 * document (JSON, optionally held to a schema, optionally wrapped in literal markers; see
 * json-machine.ts). Each vocabulary token's text is decoded once per tokenizer and stored in
 * a trie, so one walk of the trie from the current state finds every allowed token while
 * sharing work between tokens with common prefixes (the approach of Outlines / llama.cpp
 * grammars, at character level).
 *
 * The token budget is respected: a token is allowed only if the shortest completion of the
 * document after it still fits in the tokens left, so output cut by max_tokens still parses
 * (as long as the vocabulary has single-character tokens, as byte-fallback and byte-level
 * vocabularies do). Once the document is complete only end-of-sequence tokens remain.
 */
import type { CrumbTokenizer } from "../tokenizer/tokenizer.ts";
import {
  canEnd,
  feed,
  finish,
  type Frame,
  initialState,
  isComplete,
  type MachineState,
  missingRequired,
  type SchemaNode,
  schemaNode,
  type State,
} from "./json-machine.ts";

interface TrieNode {
  readonly next: Map<string, TrieNode>;
  readonly ids: number[];
}

interface Vocab {
  readonly size: number;
  readonly trie: TrieNode;
  /** Ids whose text has no quote, backslash or control character: inside a free string they change nothing. */
  readonly plain: readonly number[];
  /** The other tokens, walked on their own inside free strings (the common case in JSON mode). */
  readonly specialTrie: TrieNode;
}

const vocabs = new WeakMap<CrumbTokenizer, Vocab>();

/**
 * Each token's text as it reads after other text (SentencePiece drops a word-initial space
 * only at the very start), with special tokens and partial UTF-8 characters left out.
 */
function buildVocab(tokenizer: CrumbTokenizer): Vocab {
  const cached = vocabs.get(tokenizer);
  if (cached !== undefined) return cached;
  const skip = { skipSpecialTokens: true };
  const anchor = tokenizer.encode("a", { addSpecialTokens: false }).at(-1);
  const anchorText = anchor === undefined ? "" : tokenizer.decode([anchor], skip);
  const trie: TrieNode = { next: new Map(), ids: [] };
  const specialTrie: TrieNode = { next: new Map(), ids: [] };
  const plain: number[] = [];
  const insert = (root: TrieNode, text: string, id: number) => {
    let node = root;
    for (const c of text) {
      let child = node.next.get(c);
      if (child === undefined) node.next.set(c, child = { next: new Map(), ids: [] });
      node = child;
    }
    node.ids.push(id);
  };
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    if (tokenizer.specialTokenIds.has(id)) continue;
    let text = tokenizer.decode(anchor === undefined ? [id] : [anchor, id], skip);
    text = text.startsWith(anchorText) ? text.slice(anchorText.length) : tokenizer.decode([id], skip);
    if (text === "" || text.includes("\uFFFD")) continue;
    insert(trie, text, id);
    if (/^[^"\\\u0000-\u001f]*$/.test(text)) plain.push(id);
    else insert(specialTrie, text, id);
  }
  const vocab = { size: tokenizer.vocabSize, trie, plain, specialTrie };
  vocabs.set(tokenizer, vocab);
  return vocab;
}

/** The cheapest character that moves `state` towards a complete document. */
function firstChar(node: SchemaNode): string {
  switch (node.kind) {
    case "object":
      return "{";
    case "array":
      return "[";
    case "string":
      return '"';
    case "literal":
      return [...node.options].sort((a, b) => a.length - b.length)[0][0];
    case "union":
      return firstChar(node.options[0]);
    default:
      return "0";
  }
}

function shortestExtending(options: readonly string[], text: string): string | undefined {
  return options.filter((o) => o.startsWith(text)).sort((a, b) => a.length - b.length)[0];
}

/** For a key: the required names its object still lacks, as written in JSON. */
function missingKeys(frame: Extract<Frame, { t: "string" }>, below: State): string[] {
  const parent = below?.frame;
  return frame.key && parent?.t === "object" ? missingRequired(parent).map((k) => JSON.stringify(k).slice(1, -1)) : [];
}

function cheapestChar(frame: Frame, below: State): string {
  switch (frame.t) {
    case "value":
      return firstChar(frame.node);
    case "object":
      if (frame.s === 1) return ":";
      if (frame.s === 2) return missingRequired(frame).length > 0 ? "," : "}";
      return frame.s === 0 && missingRequired(frame).length === 0 ? "}" : '"';
    case "array":
      if (frame.s === 2) return frame.count < frame.min ? "," : "]";
      return frame.s === 0 && frame.min === 0 ? "]" : firstChar(frame.items);
    case "string": {
      const required = missingKeys(frame, below);
      if (frame.options === undefined) {
        if (frame.esc !== 0) return frame.esc === 1 ? "n" : "0";
        // An open object's key spells a missing required name while it can still become one.
        const target = shortestExtending(required, frame.text);
        return target === undefined || target === frame.text ? '"' : target[frame.text.length];
      }
      // A string held to options (enum, closed keys) follows its target, escapes included.
      if (frame.esc === 0 && frame.options.includes(frame.text)) return '"';
      const target = shortestExtending(required, frame.text) ?? shortestExtending(frame.options, frame.text)!;
      return target[frame.text.length];
    }
    case "number":
      return "0";
    case "literal":
      return shortestExtending(frame.options, frame.text)![frame.text.length];
  }
}

/** Length of the shortest text completing the document from `state` (Infinity if none is found). */
export function closingLength(state: State, limit = 4096): number {
  let current: State | null = state;
  let length = 0;
  while (current !== undefined && current !== null && length <= limit) {
    const frame: Frame = current.frame;
    if (canEnd(frame)) {
      current = finish(current.below, frame);
      continue;
    }
    current = feed(current, cheapestChar(frame, current.below));
    length++;
  }
  return current === undefined ? length : Infinity;
}

export interface JsonConstraintSpec {
  /** JSON Schema the value must follow; undefined = any JSON value. */
  readonly schema?: Record<string, unknown>;
  /** json_object mode: the value must be an object. */
  readonly objectOnly?: boolean;
  /** Literal text before and after the value (tool-call markers). */
  readonly prefix?: string;
  readonly suffix?: string;
  /** Tokens the generation may produce (max_tokens, or what fits the context). */
  readonly budget: number;
  /** Ids that end generation, allowed once the document is complete. */
  readonly eosTokenIds: readonly number[];
}

export type Constrain = (generatedText: string) => ((id: number) => boolean) | undefined;

/** Builds the engine's `constrain` option for one request. */
export function createJsonConstraint(tokenizer: CrumbTokenizer, spec: JsonConstraintSpec): Constrain {
  const vocab = buildVocab(tokenizer);
  const node: SchemaNode = spec.schema !== undefined
    ? schemaNode(spec.schema)
    : spec.objectOnly
    ? { kind: "object", required: [], root: {} }
    : { kind: "any" };
  const start: MachineState = initialState(node, spec.prefix, spec.suffix);
  const eos = new Set(spec.eosTokenIds);
  let lastText = "";
  let lastState: State | null = start;
  let calls = 0;

  return (text) => {
    calls++;
    const remaining = spec.budget - (calls - 1);
    let state: State | null;
    if (text.startsWith(lastText) && lastState !== null) {
      state = lastState;
      for (let i = lastText.length; i < text.length && state !== null; i++) state = state === undefined ? null : feed(state, text[i]);
    } else {
      state = start;
      for (let i = 0; i < text.length && state !== null; i++) state = state === undefined ? null : feed(state, text[i]);
    }
    lastText = text;
    lastState = state;
    // Text outside the language (it cannot happen while every token passes through here)
    // or a finished document: only end-of-sequence may follow.
    if (state === null || state === undefined) return (id) => eos.has(id);
    return allowedTokens(vocab, state, remaining, eos);
  };
}

function allowedTokens(vocab: Vocab, state: MachineState, remaining: number, eos: ReadonlySet<number>): (id: number) => boolean {
  // Length of the shortest completion after each allowed token (Infinity = not allowed).
  const after = new Float64Array(vocab.size).fill(Infinity);
  const closing = new Map<State, number>();
  let best = Infinity;
  const visit = (trieNode: TrieNode, s: MachineState, depth: number) => {
    for (const [c, child] of trieNode.next) {
      const next = feed(s, c);
      if (next === null) continue;
      if (child.ids.length > 0) {
        let length = closing.get(next);
        if (length === undefined) closing.set(next, length = closingLength(next));
        for (const id of child.ids) after[id] = length;
        best = Math.min(best, length);
      }
      if (next !== undefined && depth < 256) visit(child, next, depth + 1);
    }
  };
  const frame = state.frame;
  // Plain tokens change nothing in a free string, unless it is a key that may still become a
  // required name (the shortest completion then depends on its text).
  if (
    frame.t === "string" && frame.options === undefined && frame.esc === 0 && frame.maxLength === Infinity &&
    missingKeys(frame, state.below).length === 0
  ) {
    const length = closingLength(state);
    for (const id of vocab.plain) after[id] = length;
    best = Math.min(best, length);
    visit(vocab.specialTrie, state, 0);
  } else visit(vocab.trie, state, 0);
  if (isComplete(state)) {
    for (const id of eos) if (id < vocab.size) after[id] = 0;
    best = 0;
  }
  // Tokens whose completion still fits the budget; when none does, the ones that bring the
  // end closest, so the document closes as soon as it can.
  const limit = Math.max(remaining - 1, best);
  return (id) => after[id] <= limit;
}
