/**
 * JSON mode by constrained sampling: before each token the engine asks which ids may come
 * next, and a token is allowed iff appending its text keeps the output a valid prefix of the
 * document (JSON, optionally held to a schema, optionally wrapped in literal markers; see
 * json-machine.ts). Each vocabulary token's text is decoded once per tokenizer and stored in
 * a trie, so one walk of the trie from the current state finds every allowed token while
 * sharing work between tokens with common prefixes (the approach of Outlines / llama.cpp
 * grammars, at character level).
 *
 * The token budget steers the output: a token is allowed only if the shortest completion of
 * the document after it still fits in the tokens left (counting one character per token), and
 * when none does, the tokens that bring the end closest. A document that still does not fit is
 * cut by max_tokens and the route reports finish_reason "length"; a schema whose shortest
 * output cannot fit at all is refused before generation (`checkBudget`). Once the document is
 * complete only end-of-sequence tokens remain; text that leaves the grammar is an error, never
 * an end.
 *
 * The vocabulary trie is built once per tokenizer in slices (`loadVocab`), after the request
 * has its place in the admission queue; the schema is compiled and checked before (json-schema.ts).
 */
import { CrumbError, InvalidArgumentError } from "../errors.ts";
import { yieldToEventLoop } from "../engine/generate.ts";
import type { CrumbTokenizer } from "../tokenizer/tokenizer.ts";
import { fewestTokens, longestTokenChars } from "./token-bounds.ts";
import { closingLength, closingOffName } from "./json-closing.ts";
import { feed, initialState, isComplete, keyMayBeRequired, type MachineState, type State } from "./json-machine.ts";
import { compileSchema, type SchemaNode } from "./json-schema.ts";

interface TrieNode {
  readonly next: Map<string, TrieNode>;
  readonly ids: number[];
}

export interface Vocab {
  readonly size: number;
  readonly trie: TrieNode;
  /** Ids whose text has no quote, backslash or control character: inside a free string they change nothing. */
  readonly plain: readonly number[];
  /** Characters (code points) of each plain id's text, in the order of `plain`. */
  readonly plainLength: Int32Array;
  /** The other tokens, walked on their own inside free strings (the common case in JSON mode). */
  readonly specialTrie: TrieNode;
}

const vocabs = new WeakMap<CrumbTokenizer, Vocab>();
const building = new WeakMap<CrumbTokenizer, Promise<Vocab>>();

/** Token ids decoded per slice of the vocabulary build (a few milliseconds each). */
const VOCAB_SLICE = 256;

/**
 * Each token's text as it reads after other text (SentencePiece drops a word-initial space
 * only at the very start), with special tokens and partial UTF-8 characters left out. Built in
 * slices of VOCAB_SLICE ids: the generator pauses between them.
 */
function* buildVocab(tokenizer: CrumbTokenizer): Generator<void, Vocab> {
  const skip = { skipSpecialTokens: true };
  const anchor = tokenizer.encode("a", { addSpecialTokens: false }).at(-1);
  const anchorText = anchor === undefined ? "" : tokenizer.decode([anchor], skip);
  const trie: TrieNode = { next: new Map(), ids: [] };
  const specialTrie: TrieNode = { next: new Map(), ids: [] };
  const plain: number[] = [];
  const lengths = new Map<number, number>();
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
    if (id % VOCAB_SLICE === VOCAB_SLICE - 1) yield;
    if (tokenizer.specialTokenIds.has(id)) continue;
    let text = tokenizer.decode(anchor === undefined ? [id] : [anchor, id], skip);
    text = text.startsWith(anchorText) ? text.slice(anchorText.length) : tokenizer.decode([id], skip);
    if (text === "" || text.includes("\uFFFD")) continue;
    insert(trie, text, id);
    if (/^[^"\\\u0000-\u001f]*$/.test(text)) {
      plain.push(id);
      lengths.set(id, [...text].length);
    } else insert(specialTrie, text, id);
  }
  return { size: tokenizer.vocabSize, trie, plain, plainLength: Int32Array.from(plain, (id) => lengths.get(id)!), specialTrie };
}

/** The vocabulary trie, built at once (tests, library callers that do not share a thread). */
export function vocabNow(tokenizer: CrumbTokenizer): Vocab {
  let vocab = vocabs.get(tokenizer);
  if (vocab === undefined) {
    const slices = buildVocab(tokenizer);
    for (let step = slices.next();; step = slices.next()) {
      if (step.done) {
        vocab = step.value;
        break;
      }
    }
    vocabs.set(tokenizer, vocab);
  }
  return vocab;
}

/**
 * The vocabulary trie, built once per tokenizer in slices with a turn of the event loop between
 * them (decoding 150 000 tokens takes seconds). A caller whose `signal` aborts stops waiting
 * (CancelledError surfaces from the caller); the build itself goes on for the next request.
 */
export async function loadVocab(tokenizer: CrumbTokenizer, signal?: AbortSignal): Promise<Vocab> {
  const done = vocabs.get(tokenizer);
  if (done !== undefined) return done;
  let pending = building.get(tokenizer);
  if (pending === undefined) {
    pending = (async () => {
      const slices = buildVocab(tokenizer);
      for (;;) {
        const step = slices.next();
        if (step.done) {
          vocabs.set(tokenizer, step.value);
          return step.value;
        }
        await yieldToEventLoop();
      }
    })();
    building.set(tokenizer, pending);
    pending.finally(() => building.delete(tokenizer)).catch(() => {});
  }
  if (signal === undefined) return pending;
  return await new Promise<Vocab>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    pending!.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** What the output must be: a JSON value (of a schema, or an object), maybe wrapped in literal text. */
export interface JsonConstraintShape {
  /** JSON Schema the value must follow; undefined = any JSON value. */
  readonly schema?: Record<string, unknown>;
  /** json_object mode: the value must be an object. */
  readonly objectOnly?: boolean;
  /** Literal text before and after the value (tool-call markers). */
  readonly prefix?: string;
  readonly suffix?: string;
}

export interface JsonConstraintSpec extends JsonConstraintShape {
  /** Tokens the generation may produce (max_tokens, or what fits the context). */
  readonly budget: number;
  /** Ids that end generation, allowed once the document is complete. */
  readonly eosTokenIds: readonly number[];
}

/** A checked shape: the recogniser's start and the shortest text that completes it. */
export interface CompiledConstraint {
  readonly start: MachineState;
  /** Characters of the shortest output (markers included). */
  readonly shortest: number;
}

/**
 * Checks and compiles the shape before any model work (json-schema.ts): a schema that is too
 * large, uses a keyword this server does not enforce, contradicts itself or admits no finite
 * value is a 400 naming `param`.
 */
export function compileConstraint(shape: JsonConstraintShape, param = "response_format.json_schema.schema"): CompiledConstraint {
  const node: SchemaNode = shape.schema !== undefined
    ? compileSchema(shape.schema, { param })
    : shape.objectOnly
    ? { kind: "object", shortest: 2, keys: [], required: [], keyCost: new Map() }
    : { kind: "any", shortest: 1 };
  const start = initialState(node, shape.prefix, shape.suffix);
  return { start, shortest: closingLength(start) };
}

/** 400 when even the shortest valid output needs more tokens than the budget allows. */
export function checkBudget(tokenizer: CrumbTokenizer, compiled: CompiledConstraint, budget: number, param: string): void {
  const least = fewestTokens(tokenizer, compiled.shortest);
  if (least > budget) {
    throw new InvalidArgumentError(
      param,
      `${param}: the shortest output the schema allows is ${compiled.shortest} characters, at least ${least} tokens (no token is longer than ${
        longestTokenChars(tokenizer)
      } characters), more than the ${budget} tokens allowed; raise max_tokens or relax minItems/minLength/required`,
    );
  }
}

export type Constrain = (generatedText: string) => ((id: number) => boolean) | undefined;

/** The engine's `constrain` option for one request, and a check that an output is a complete document. */
export interface JsonConstraint {
  readonly constrain: Constrain;
  complete(text: string): boolean;
}

/** Builds the constraint for one request from a compiled shape and a loaded vocabulary. */
export function constrainWith(vocab: Vocab, compiled: CompiledConstraint, budget: number, eosTokenIds: readonly number[]): JsonConstraint {
  const start = compiled.start;
  const eos = new Set(eosTokenIds);
  let lastText = "";
  let lastState: State | null = start;
  let calls = 0;
  const advance = (text: string): State | null => {
    let state: State | null = text.startsWith(lastText) && lastState !== null ? lastState : start;
    for (let i = state === lastState ? lastText.length : 0; i < text.length && state !== null; i++) {
      state = state === undefined ? null : feed(state, text[i]);
    }
    lastText = text;
    lastState = state;
    return state;
  };

  return {
    constrain(text) {
      calls++;
      const remaining = budget - (calls - 1);
      const state = advance(text);
      if (state === null) {
        // Every token passes through here, so this means the tokenizer's text and the trie's differ.
        throw new CrumbError(
          "constraint_failed",
          "the generated text left the JSON the request asked for (a tokenizer/constraint mismatch); nothing valid can follow",
        );
      }
      if (state === undefined) return (id) => eos.has(id);
      return allowedTokens(vocab, state, remaining, eos);
    },
    complete(text) {
      const state = advance(text);
      return state !== null && isComplete(state);
    },
  };
}

/** Compiles and builds at once (tests, tool calls in library use); the server goes through the steps. */
export function createJsonConstraint(tokenizer: CrumbTokenizer, spec: JsonConstraintSpec): Constrain {
  return constrainWith(vocabNow(tokenizer), compileConstraint(spec), spec.budget, spec.eosTokenIds).constrain;
}

function allowedTokens(vocab: Vocab, state: MachineState, remaining: number, eos: ReadonlySet<number>): (id: number) => boolean {
  // Length of the shortest completion after each allowed token (Infinity = not allowed).
  const after = new Float64Array(vocab.size).fill(Infinity);
  const closing = new Map<State, number>();
  let best = Infinity;
  /** Prices the tokens under `trieNode` from `s`; with `along`, only while the state keeps to it. */
  const visit = (trieNode: TrieNode, s: MachineState, depth: number, along?: (s: MachineState) => boolean) => {
    for (const [c, child] of trieNode.next) {
      const next = feed(s, c);
      if (next === null || (along !== undefined && (next === undefined || !along(next)))) continue;
      if (child.ids.length > 0) {
        let length = closing.get(next);
        if (length === undefined) closing.set(next, length = closingLength(next));
        for (const id of child.ids) after[id] = length;
        best = Math.min(best, length);
      }
      if (next !== undefined && depth < 256) visit(child, next, depth + 1, along);
    }
  };
  const frame = state.frame;
  if (frame.t === "string" && frame.options === undefined && frame.esc === 0) {
    // Inside a free string a plain token only adds characters: its closing length follows from
    // its length alone, without walking the trie.
    if (keyMayBeRequired(state)) {
      // Not so in a key that may still become a required name its object lacks: the tokens
      // that take it off every such name cost the same, and those that stay on one are fed.
      const length = closingOffName(state);
      for (const id of vocab.plain) after[id] = length;
      best = Math.min(best, length);
      visit(vocab.trie, state, 0, keyMayBeRequired);
    } else if (frame.maxLength === Infinity && frame.minLength === 0) {
      const length = closingLength(state);
      for (const id of vocab.plain) after[id] = length;
      best = Math.min(best, length);
    } else {
      const rest = closingLength(state.below) + 1;
      for (let i = 0; i < vocab.plain.length; i++) {
        const written = frame.length + vocab.plainLength[i];
        if (written > frame.maxLength) continue;
        const length = rest + Math.max(0, frame.minLength - written);
        after[vocab.plain[i]] = length;
        best = Math.min(best, length);
      }
    }
    visit(vocab.specialTrie, state, 0);
  } else visit(vocab.trie, state, 0);
  if (isComplete(state)) {
    for (const id of eos) if (id < vocab.size) after[id] = 0;
    best = 0;
  }
  // Tokens whose completion still fits the budget; when none does, the ones that bring the
  // end closest, so the document closes as soon as it can.
  const limit = Math.max(remaining - 1, best);
  return (id) => after[id] <= limit && after[id] !== Infinity;
}
