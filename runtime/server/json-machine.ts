/**
 * A character-level recogniser for JSON prefixes (RFC 8259), optionally held to a compiled
 * JSON Schema (json-schema.ts): property names (closed unless the schema says otherwise),
 * required properties before `}`, value types, enum/const, array minItems/maxItems, string
 * minLength/maxLength, number bounds (json-number.ts; bounded numbers are written without an
 * exponent), unions (the first alternative that can start with the value's first character is
 * followed). A document can be wrapped in literal text (the tool-call markers of a chat format).
 *
 * States are immutable: `feed` returns a new state (or the same one when nothing changes) so a
 * caller can branch over many continuations without copying. A run of whitespace is capped at
 * 4 characters (none before the document) and numbers at 24, so a constrained model cannot loop
 * forever on either. How short a completion each state still allows is json-closing.ts's job.
 * Enum and key sets are sorted and narrowed by binary search, so a step costs O(log n) in their
 * size.
 */
import { MAX_NUMBER, type SchemaNode } from "./json-schema.ts";
import { type NumberBounds, reachable, withinBounds } from "./json-number.ts";

export type { SchemaNode };

const MAX_WHITESPACE = 4;
export const ANY: SchemaNode = { kind: "any", shortest: 1 };
const EMPTY_SET: ReadonlySet<string> = new Set();

type ObjectNode = Extract<SchemaNode, { kind: "object" }>;

export type Frame =
  | { t: "value"; node: SchemaNode; ws: number }
  /** s: 0 after `{`, 1 after a key (wants `:`), 2 after a value, 3 after `,`. `missing*`: required keys not yet written. */
  | {
    t: "object";
    node: ObjectNode | undefined;
    s: 0 | 1 | 2 | 3;
    seen: ReadonlySet<string>;
    key: string;
    ws: number;
    missing: number;
    missingCost: number;
  }
  /** s: 0 after `[`, 2 after a value, 3 after `,`. */
  | { t: "array"; items: SchemaNode; min: number; max: number; s: 0 | 2 | 3; count: number; ws: number }
  /**
   * esc: 0 none, 1 after `\`, 2..5 hex digits still wanted + 1. With `options` (sorted raw
   * texts) the text must stay a prefix of one in [lo, hi) not in `exclude` (keys already written).
   * `text` (raw, as written) is kept for such strings and for every key; free values keep "".
   */
  | {
    t: "string";
    key: boolean;
    esc: number;
    length: number;
    minLength: number;
    maxLength: number;
    options?: readonly string[];
    lo: number;
    hi: number;
    text: string;
    exclude: ReadonlySet<string>;
  }
  | {
    t: "number";
    integer: boolean;
    s: "sign" | "zero" | "int" | "dot" | "frac" | "e" | "esign" | "exp";
    n: number;
    bounds?: NumberBounds;
    text: string;
  }
  | { t: "literal"; options: readonly string[]; text: string };

/** The recogniser state: a stack of frames, top first (a persistent list). */
export interface MachineState {
  readonly frame: Frame;
  readonly below: MachineState | undefined;
}

/** undefined = the document is complete. */
export type State = MachineState | undefined;

const isWs = (c: string) => c === " " || c === "\n" || c === "\t" || c === "\r";
const isDigit = (c: string) => c >= "0" && c <= "9";
const HEX = /^[0-9a-fA-F]$/;

/** The initial state for `prefix` + one value of `node` + `suffix`. */
export function initialState(node: SchemaNode, prefix = "", suffix = ""): MachineState {
  let state: State = suffix === "" ? undefined : { frame: { t: "literal", options: [suffix], text: "" }, below: undefined };
  state = { frame: { t: "value", node, ws: MAX_WHITESPACE }, below: state };
  if (prefix !== "") state = { frame: { t: "literal", options: [prefix], text: "" }, below: state };
  return state;
}

/** [lo, hi): the options in [from, to) that start with `prefix` (options sorted). */
function prefixRange(options: readonly string[], from: number, to: number, prefix: string): [number, number] {
  const n = prefix.length;
  let a = from;
  let b = to;
  while (a < b) {
    const m = (a + b) >> 1;
    if (options[m].slice(0, n) < prefix) a = m + 1;
    else b = m;
  }
  let c = a;
  let d = to;
  while (c < d) {
    const m = (c + d) >> 1;
    if (options[m].slice(0, n) <= prefix) c = m + 1;
    else d = m;
  }
  return [a, c];
}

function optionString(options: readonly string[], exclude: ReadonlySet<string>, key: boolean): Frame {
  return { t: "string", key, esc: 0, length: 0, minLength: 0, maxLength: Infinity, options, lo: 0, hi: options.length, text: "", exclude };
}

const stringOptionsCache = new WeakMap<SchemaNode, readonly string[]>();

/** The string values of a literal node, raw and sorted. */
function stringOptions(node: Extract<SchemaNode, { kind: "literal" }>): readonly string[] {
  let options = stringOptionsCache.get(node);
  if (options === undefined) {
    options = node.options.filter((o) => o.startsWith('"')).map((o) => o.slice(1, -1)).sort();
    stringOptionsCache.set(node, options);
  }
  return options;
}

function objectFrame(node: ObjectNode | undefined): Frame {
  const required = node?.required ?? [];
  let cost = 0;
  for (const k of required) cost += node!.keyCost.get(k) ?? k.length + 4;
  return { t: "object", node, s: 0, seen: EMPTY_SET, key: "", ws: 0, missing: required.length, missingCost: cost };
}

/** The frame of a value of `node` after its first character `c` (undefined: not allowed). */
function startFrame(node: SchemaNode, c: string): Frame | undefined {
  switch (node.kind) {
    case "union":
      for (const option of node.options) {
        const frame = startFrame(option, c);
        if (frame !== undefined) return frame;
      }
      return undefined;
    case "object":
      return c === "{" ? objectFrame(node) : undefined;
    case "array":
      return c === "[" ? { t: "array", items: node.items, min: node.min, max: node.max, s: 0, count: 0, ws: 0 } : undefined;
    case "string":
      return c === '"'
        ? {
          t: "string",
          key: false,
          esc: 0,
          length: 0,
          minLength: node.minLength,
          maxLength: node.maxLength,
          lo: 0,
          hi: 0,
          text: "",
          exclude: EMPTY_SET,
        }
        : undefined;
    case "number":
      return stepNumber({ t: "number", integer: node.integer, s: "sign", n: 0, bounds: node.bounds, text: "" }, c)?.[0];
    case "literal": {
      const strings = stringOptions(node);
      if (c === '"' && strings.length > 0) return optionString(strings, EMPTY_SET, false);
      const others = node.options.filter((o) => o.startsWith(c) && !o.startsWith('"'));
      return others.length > 0 ? { t: "literal", options: others, text: c } : undefined;
    }
    case "any":
      if (c === "{") return objectFrame(undefined);
      if (c === "[") return { t: "array", items: ANY, min: 0, max: Infinity, s: 0, count: 0, ws: 0 };
      if (c === '"') {
        return {
          t: "string",
          key: false,
          esc: 0,
          length: 0,
          minLength: 0,
          maxLength: Infinity,
          lo: 0,
          hi: 0,
          text: "",
          exclude: EMPTY_SET,
        };
      }
      if (c === "-" || isDigit(c)) return stepNumber({ t: "number", integer: false, s: "sign", n: 0, text: "" }, c)?.[0];
      for (const word of ["true", "false", "null"]) if (word[0] === c) return { t: "literal", options: [word], text: c };
      return undefined;
  }
}

export type ObjectFrame = Extract<Frame, { t: "object" }>;

/** Whether a closed object may still take a key (some property not yet written). */
function keysLeft(frame: ObjectFrame): boolean {
  const node = frame.node;
  return node?.properties === undefined || frame.seen.size < node.keys.length;
}

export function propertyNode(frame: ObjectFrame, key: string): SchemaNode {
  return frame.node?.properties?.get(key) ?? ANY;
}

export type NumberFrame = Extract<Frame, { t: "number" }>;

/** Number states at which the text is a whole number (bounds aside). */
export const numberEnds = (s: NumberFrame["s"]) => s === "zero" || s === "int" || s === "frac" || s === "exp";

/** Whether the frame is a complete value that a following character may end. */
export function canEnd(frame: Frame): boolean {
  if (frame.t === "number") {
    const complete = numberEnds(frame.s);
    return complete && (frame.bounds === undefined || withinBounds(frame.text, frame.bounds));
  }
  if (frame.t === "literal") return frame.options.includes(frame.text);
  return false;
}

/** Result of one step: frames replacing the top (bottom first; [] = finished), or undefined to reject. */
type Step = Frame[] | undefined;

function stepWs<F extends Frame & { ws: number }>(frame: F): Step {
  return frame.ws < MAX_WHITESPACE ? [{ ...frame, ws: frame.ws + 1 }] : undefined;
}

const requiredSets = new WeakMap<ObjectNode, ReadonlySet<string>>();

function isRequired(node: ObjectNode | undefined, key: string): boolean {
  if (node === undefined || node.required.length === 0) return false;
  let set = requiredSets.get(node);
  if (set === undefined) requiredSets.set(node, set = new Set(node.required));
  return set.has(key);
}

const sortedRequired = new WeakMap<ObjectNode, readonly string[]>();

/** The first (sorted) required name the object still lacks that starts with `text` (raw, as written). */
export function missingExtending(frame: ObjectFrame, text: string): string | undefined {
  const node = frame.node;
  if (node === undefined || frame.missing === 0) return undefined;
  let sorted = sortedRequired.get(node);
  if (sorted === undefined) sortedRequired.set(node, sorted = [...node.required].sort());
  const [lo, hi] = prefixRange(sorted, 0, sorted.length, text);
  for (let i = lo; i < hi; i++) if (!frame.seen.has(sorted[i])) return sorted[i];
  return undefined;
}

/**
 * Whether the top of `state` is a free key (an open object's) that may still be spelled into a
 * required name its object lacks: its shortest completion then depends on the text written.
 */
export function keyMayBeRequired(state: MachineState): boolean {
  const frame = state.frame;
  const parent = state.below?.frame;
  return frame.t === "string" && frame.key && frame.options === undefined && parent?.t === "object" &&
    missingExtending(parent, frame.text) !== undefined;
}

/** Required keys and their cost left once `key` is written. */
export function missingAfter(frame: ObjectFrame, key: string): [number, number] {
  if (!isRequired(frame.node, key) || frame.seen.has(key)) return [frame.missing, frame.missingCost];
  return [frame.missing - 1, frame.missingCost - (frame.node!.keyCost.get(key) ?? 0)];
}

/** The object after writing `key`: one more key seen, and the required ones left. */
function withKey(frame: ObjectFrame, key: string): ObjectFrame {
  const [missing, missingCost] = missingAfter(frame, key);
  return { ...frame, s: 2, ws: 0, seen: new Set(frame.seen).add(key), missing, missingCost };
}

function step(frame: Frame, c: string): Step {
  switch (frame.t) {
    case "value": {
      if (isWs(c)) return stepWs(frame);
      const start = startFrame(frame.node, c);
      return start === undefined ? undefined : [start];
    }
    case "object": {
      if (isWs(c)) return stepWs(frame);
      const reset = { ...frame, ws: 0 };
      if (frame.s === 0 || frame.s === 3) {
        if (c === "}" && frame.s === 0 && frame.missing === 0) return [];
        if (c !== '"' || !keysLeft(frame)) return undefined;
        const keys = frame.node?.properties === undefined ? undefined : frame.node.keys;
        const key: Frame = keys === undefined
          ? { t: "string", key: true, esc: 0, length: 0, minLength: 0, maxLength: Infinity, lo: 0, hi: 0, text: "", exclude: EMPTY_SET }
          : optionString(keys, frame.seen, true);
        return [reset, key];
      }
      if (frame.s === 1) {
        if (c !== ":") return undefined;
        return [withKey(frame, frame.key), { t: "value", node: propertyNode(frame, frame.key), ws: 0 }];
      }
      if (c === "}" && frame.missing === 0) return [];
      if (c === ",") return keysLeft(frame) ? [{ ...reset, s: 3 }] : undefined;
      return undefined;
    }
    case "array": {
      if (isWs(c)) return stepWs(frame);
      if (frame.s === 2) {
        if (c === "]" && frame.count >= frame.min) return [];
        if (c === "," && frame.count < frame.max) return [{ ...frame, s: 3, ws: 0 }];
        return undefined;
      }
      if (c === "]" && frame.s === 0 && frame.min === 0) return [];
      if (frame.max === 0) return undefined;
      const value = step({ t: "value", node: frame.items, ws: 0 }, c);
      return value === undefined ? undefined : [{ ...frame, s: 2, count: frame.count + 1, ws: 0 }, ...value];
    }
    case "string":
      return stepString(frame, c);
    case "number":
      return stepNumber(frame, c);
    case "literal": {
      const text = frame.text + c;
      return frame.options.some((o) => o.startsWith(text)) ? [{ ...frame, text }] : undefined;
    }
  }
}

export type StringFrame = Extract<Frame, { t: "string" }>;

/** The first option in [lo, hi) not excluded (the range is sorted, so the shortest match comes first). */
function firstFree(frame: StringFrame): number {
  for (let i = frame.lo; i < frame.hi; i++) if (!frame.exclude.has(frame.options![i])) return i;
  return -1;
}

function stepString(frame: StringFrame, c: string): Step {
  if (frame.options !== undefined) {
    if (c === '"' && frame.esc === 0) {
      const at = firstFree(frame);
      return at !== -1 && frame.options[at] === frame.text ? [] : undefined;
    }
    const text = frame.text + c;
    const [lo, hi] = prefixRange(frame.options, frame.lo, frame.hi, text);
    const next: StringFrame = { ...frame, text, lo, hi, esc: frame.esc === 0 && c === "\\" ? 1 : 0 };
    return firstFree(next) === -1 ? undefined : [next];
  }
  const next = stepFreeString(frame, c);
  // A key keeps its text even when free: an open object counts its required names by it.
  return frame.key && next !== undefined && next.length === 1 ? [{ ...next[0], text: frame.text + c }] : next;
}

function stepFreeString(frame: StringFrame, c: string): StringFrame[] | undefined {
  // Free string values keep no text (only constrained ones and keys need it), so an ordinary
  // character returns the very same frame: no allocation, and callers can share work per state.
  if (frame.esc === 1) {
    if (c === "u") return [{ ...frame, esc: 5 }];
    return '"\\/bfnrt'.includes(c) ? [{ ...frame, esc: 0, length: frame.length + 1 }] : undefined;
  }
  if (frame.esc > 1) {
    if (!HEX.test(c)) return undefined;
    return [{ ...frame, esc: frame.esc === 2 ? 0 : frame.esc - 1, length: frame.esc === 2 ? frame.length + 1 : frame.length }];
  }
  if (c === '"') return frame.length >= frame.minLength ? [] : undefined;
  if (c < " ") return undefined;
  if (frame.length >= frame.maxLength) return undefined;
  if (c === "\\") return [{ ...frame, esc: 1 }];
  return frame.maxLength === Infinity && frame.minLength === 0 ? [frame] : [{ ...frame, length: frame.length + 1 }];
}

function stepNumber(frame: NumberFrame, c: string): Step {
  if (frame.n >= MAX_NUMBER) return undefined;
  const bounds = frame.bounds;
  const next = (s: NumberFrame["s"]): Step => {
    if (bounds === undefined) {
      // The last character the cap allows must end the number: "1." or "1e" there could never be finished.
      return frame.n + 1 >= MAX_NUMBER && !numberEnds(s) ? undefined : [{ ...frame, s, n: frame.n + 1 }];
    }
    const text = frame.text + c;
    return reachable(text, bounds, frame.integer, MAX_NUMBER - text.length) ? [{ ...frame, s, n: frame.n + 1, text }] : undefined;
  };
  const digit = isDigit(c);
  switch (frame.s) {
    case "sign":
      if (frame.n === 0 && c === "-") return next("sign");
      return digit ? next(c === "0" ? "zero" : "int") : undefined;
    case "zero":
    case "int":
      if (digit && frame.s === "int") return next("int");
      if (frame.integer) return undefined;
      if (c === ".") return next("dot");
      // Bounded numbers are written without an exponent (their bounds are checked on digits).
      return (c === "e" || c === "E") && bounds === undefined ? next("e") : undefined;
    case "dot":
      return digit ? next("frac") : undefined;
    case "frac":
      if (digit) return next("frac");
      return (c === "e" || c === "E") && bounds === undefined ? next("e") : undefined;
    case "e":
      if (c === "+" || c === "-") return next("esign");
      return digit ? next("exp") : undefined;
    case "esign":
    case "exp":
      return digit ? next("exp") : undefined;
  }
}

/** Pops a finished frame: a finished key moves its object on to `:` with the key's text. */
export function finish(below: State, done: Frame): State {
  if (below === undefined) return undefined;
  const parent = below.frame;
  if (done.t === "string" && done.key && parent.t === "object") {
    return { frame: { ...parent, s: 1, key: done.text }, below: below.below };
  }
  return below;
}

/** Feeds one character; null when the text would stop being a valid prefix. */
export function feed(state: State, c: string): State | null {
  let current = state;
  for (let depth = 0; current !== undefined && depth < 256; depth++) {
    const result = step(current.frame, c);
    if (result !== undefined) {
      let next: State = current.below;
      if (result.length === 0) return finish(next, current.frame);
      for (const frame of result) next = { frame, below: next };
      if (result.length === 1 && result[0] === current.frame) return current;
      return next;
    }
    if (!canEnd(current.frame)) return null;
    current = finish(current.below, current.frame);
  }
  return null;
}

/** Feeds a whole string; null as soon as it leaves the language. */
export function feedText(state: State, text: string): State | null {
  let current: State | null = state;
  for (let i = 0; i < text.length && current !== null; i++) {
    if (current === undefined) return null;
    current = feed(current, text[i]);
  }
  return current;
}

/** True when the text so far is a complete document (possibly ended by a pending number or literal). */
export function isComplete(state: State): boolean {
  let current = state;
  for (let depth = 0; current !== undefined && depth < 256; depth++) {
    if (!canEnd(current.frame)) return false;
    current = finish(current.below, current.frame);
  }
  return current === undefined;
}
