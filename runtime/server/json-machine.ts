/**
 * A character-level recogniser for JSON prefixes (RFC 8259), optionally held to a JSON
 * Schema subset: object property names (closed when `properties` is given, as OpenAI's
 * strict mode), required properties before `}`, value types (string, number, integer,
 * boolean, null, object, array), enum/const, array minItems/maxItems, string maxLength,
 * anyOf/oneOf/type lists (the first alternative matching the value's first character is
 * followed), and local `$ref`s. A document can be wrapped in literal text (the tool-call
 * markers of a chat format).
 *
 * States are immutable: `feed` returns a new state (or the same one when nothing changes)
 * so a caller can branch over many continuations without copying. A run of whitespace is
 * capped at 4 characters (none before the document) and numbers at 24, so a constrained model cannot loop forever on
 * either.
 */

export type Schema = Record<string, unknown>;

export type SchemaNode =
  | { kind: "any" }
  | { kind: "object"; properties?: Map<string, Schema>; required: string[]; root: Schema }
  | { kind: "array"; items: Schema; min: number; max: number; root: Schema }
  | { kind: "string"; maxLength: number }
  | { kind: "number"; integer: boolean }
  | { kind: "literal"; options: string[] }
  | { kind: "union"; options: SchemaNode[] };

const MAX_WHITESPACE = 4;
const MAX_NUMBER = 24;

function resolveRef(schema: Schema, root: Schema): Schema {
  let current = schema;
  for (let hops = 0; typeof current.$ref === "string" && hops < 32; hops++) {
    const ref = current.$ref as string;
    if (!ref.startsWith("#")) return {};
    let target: unknown = root;
    for (const part of ref.slice(1).split("/").filter((p) => p !== "")) {
      target = (target as Record<string, unknown> | undefined)?.[part.replace(/~1/g, "/").replace(/~0/g, "~")];
    }
    current = target !== null && typeof target === "object" ? (target as Schema) : {};
  }
  return current;
}

/** Normalises one schema (resolving $ref against `root`) into the node the recogniser follows. */
export function schemaNode(input: Schema | undefined, root: Schema = input ?? {}): SchemaNode {
  if (input === undefined) return { kind: "any" };
  const schema = resolveRef(input, root);
  if (Array.isArray(schema.enum)) return { kind: "literal", options: schema.enum.map((v) => JSON.stringify(v)) };
  if ("const" in schema) return { kind: "literal", options: [JSON.stringify(schema.const)] };
  const alternatives = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined;
  if (Array.isArray(alternatives) && alternatives.length > 0) {
    return { kind: "union", options: alternatives.map((s) => schemaNode(s, root)) };
  }
  if (Array.isArray(schema.type)) {
    return { kind: "union", options: schema.type.map((type) => schemaNode({ ...schema, type }, root)) };
  }
  switch (schema.type) {
    case "object": {
      const props = schema.properties as Record<string, Schema> | undefined;
      const open = props === undefined || Object.keys(props).length === 0 || schema.additionalProperties === true;
      return {
        kind: "object",
        properties: open ? undefined : new Map(Object.entries(props)),
        required: Array.isArray(schema.required) ? schema.required.filter((k): k is string => typeof k === "string") : [],
        root,
      };
    }
    case "array": {
      const min = Number.isInteger(schema.minItems) ? (schema.minItems as number) : 0;
      const max = Number.isInteger(schema.maxItems) ? (schema.maxItems as number) : Infinity;
      return { kind: "array", items: (schema.items as Schema | undefined) ?? {}, min, max, root };
    }
    case "string":
      return { kind: "string", maxLength: Number.isInteger(schema.maxLength) ? (schema.maxLength as number) : Infinity };
    case "integer":
    case "number":
      return { kind: "number", integer: schema.type === "integer" };
    case "boolean":
      return { kind: "literal", options: ["true", "false"] };
    case "null":
      return { kind: "literal", options: ["null"] };
    default:
      return { kind: "any" };
  }
}

export type Frame =
  | { t: "value"; node: SchemaNode; ws: number }
  /** s: 0 after `{`, 1 after a key (wants `:`), 2 after a value, 3 after `,`. */
  | {
    t: "object";
    node: Extract<SchemaNode, { kind: "object" } | { kind: "any" }>;
    s: 0 | 1 | 2 | 3;
    /** Names of the keys written so far (escapes decoded, as in `properties` and `required`). */
    seen: readonly string[];
    /** The key just read, as written. */
    key: string;
    ws: number;
  }
  /** s: 0 after `[`, 2 after a value, 3 after `,`. */
  | { t: "array"; items: SchemaNode; min: number; max: number; s: 0 | 2 | 3; count: number; ws: number }
  /**
   * esc: 0 none, 1 after `\`, 2..5 hex digits still wanted + 1. With `options`, raw text must
   * match one. `text` (as written) is kept for such strings and for keys, "" for free values.
   */
  | { t: "string"; options?: readonly string[]; key: boolean; text: string; esc: number; length: number; maxLength: number }
  | { t: "number"; integer: boolean; s: "sign" | "zero" | "int" | "dot" | "frac" | "e" | "esign" | "exp"; n: number }
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

function stringOptions(node: SchemaNode): string[] | undefined {
  if (node.kind !== "literal") return undefined;
  return node.options.filter((o) => o.startsWith('"')).map((o) => o.slice(1, -1));
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
      return c === "{" ? { t: "object", node, s: 0, seen: [], key: "", ws: 0 } : undefined;
    case "array":
      return c === "["
        ? { t: "array", items: schemaNode(node.items, node.root), min: node.min, max: node.max, s: 0, count: 0, ws: 0 }
        : undefined;
    case "string":
      return c === '"' ? { t: "string", key: false, text: "", esc: 0, length: 0, maxLength: node.maxLength } : undefined;
    case "number":
      return stepNumber({ t: "number", integer: node.integer, s: "sign", n: 0 }, c)?.[0];
    case "literal": {
      const strings = stringOptions(node)!;
      if (c === '"' && strings.length > 0) {
        return { t: "string", options: strings, key: false, text: "", esc: 0, length: 0, maxLength: Infinity };
      }
      const others = node.options.filter((o) => o.startsWith(c) && !o.startsWith('"'));
      return others.length > 0 ? { t: "literal", options: others, text: c } : undefined;
    }
    case "any":
      if (c === "{") return { t: "object", node, s: 0, seen: [], key: "", ws: 0 };
      if (c === "[") return { t: "array", items: { kind: "any" }, min: 0, max: Infinity, s: 0, count: 0, ws: 0 };
      if (c === '"') return { t: "string", key: false, text: "", esc: 0, length: 0, maxLength: Infinity };
      if (c === "-" || isDigit(c)) return stepNumber({ t: "number", integer: false, s: "sign", n: 0 }, c)?.[0];
      for (const word of ["true", "false", "null"]) if (word[0] === c) return { t: "literal", options: [word], text: c };
      return undefined;
  }
}

/** Keys an object may still take; undefined = any key. */
export function allowedKeys(frame: Extract<Frame, { t: "object" }>): string[] | undefined {
  const props = frame.node.kind === "object" ? frame.node.properties : undefined;
  if (props === undefined) return undefined;
  return [...props.keys()].filter((k) => !frame.seen.includes(k)).map((k) => JSON.stringify(k).slice(1, -1));
}

export function missingRequired(frame: Extract<Frame, { t: "object" }>): string[] {
  return frame.node.kind === "object" ? frame.node.required.filter((k) => !frame.seen.includes(k)) : [];
}

/** A key's name from its text as written (escapes decoded), as `seen` and `required` hold names. */
function keyName(written: string): string {
  try {
    return JSON.parse(`"${written}"`);
  } catch {
    return written; // not reached: the string frame accepts only valid JSON string text
  }
}

function propertyNode(frame: Extract<Frame, { t: "object" }>, key: string): SchemaNode {
  if (frame.node.kind !== "object" || frame.node.properties === undefined) return { kind: "any" };
  return schemaNode(frame.node.properties.get(keyName(key)), frame.node.root);
}

/** Number states that end a valid number. */
const numberEnds = (s: Extract<Frame, { t: "number" }>["s"]) => s === "zero" || s === "int" || s === "frac" || s === "exp";

/** Whether the frame is a complete value that a following character may end. */
export function canEnd(frame: Frame): boolean {
  if (frame.t === "number") return numberEnds(frame.s);
  if (frame.t === "literal") return frame.options.includes(frame.text);
  return false;
}

/** Result of one step: frames replacing the top (bottom first; [] = finished), or undefined to reject. */
type Step = Frame[] | undefined;

function stepWs<F extends Frame & { ws: number }>(frame: F): Step {
  return frame.ws < MAX_WHITESPACE ? [{ ...frame, ws: frame.ws + 1 }] : undefined;
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
        if (c === "}" && frame.s === 0 && missingRequired(frame).length === 0) return [];
        if (c !== '"') return undefined;
        const keys = allowedKeys(frame);
        if (keys !== undefined && keys.length === 0) return undefined;
        return [reset, { t: "string", options: keys, key: true, text: "", esc: 0, length: 0, maxLength: Infinity }];
      }
      if (frame.s === 1) {
        if (c !== ":") return undefined;
        return [{ ...reset, s: 2, seen: [...frame.seen, keyName(frame.key)] }, { t: "value", node: propertyNode(frame, frame.key), ws: 0 }];
      }
      if (c === "}" && missingRequired(frame).length === 0) return [];
      if (c === ",") {
        const keys = allowedKeys(frame);
        return keys !== undefined && keys.length === 0 ? undefined : [{ ...reset, s: 3 }];
      }
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

function stepString(frame: Extract<Frame, { t: "string" }>, c: string): Step {
  if (frame.options !== undefined) {
    if (c === '"' && frame.esc === 0 && frame.options.includes(frame.text)) return [];
    const text = frame.text + c;
    if (!frame.options.some((o) => o.startsWith(text))) return undefined;
    return [{ ...frame, text, esc: frame.esc === 0 && c === "\\" ? 1 : 0 }];
  }
  const next = stepFreeString(frame, c);
  // A key keeps its text even when free: an open object still checks its required names.
  return frame.key && next !== undefined && next.length === 1 ? [{ ...next[0], text: frame.text + c }] : next;
}

function stepFreeString(frame: Extract<Frame, { t: "string" }>, c: string): Extract<Frame, { t: "string" }>[] | undefined {
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
  if (c === '"') return [];
  if (c < " ") return undefined;
  if (frame.length >= frame.maxLength) return undefined;
  if (c === "\\") return [{ ...frame, esc: 1 }];
  return frame.maxLength === Infinity ? [frame] : [{ ...frame, length: frame.length + 1 }];
}

function stepNumber(frame: Extract<Frame, { t: "number" }>, c: string): Step {
  if (frame.n >= MAX_NUMBER) return undefined;
  // The last character the cap allows must end the number: "1." or "1e" there could never be finished.
  const next = (s: Extract<Frame, { t: "number" }>["s"]): Step =>
    frame.n + 1 >= MAX_NUMBER && !numberEnds(s) ? undefined : [{ ...frame, s, n: frame.n + 1 }];
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
      return c === "e" || c === "E" ? next("e") : undefined;
    case "dot":
      return digit ? next("frac") : undefined;
    case "frac":
      if (digit) return next("frac");
      return c === "e" || c === "E" ? next("e") : undefined;
    case "e":
      if (c === "+" || c === "-") return next("esign");
      return digit ? next("exp") : undefined;
    case "esign":
    case "exp":
      return digit ? next("exp") : undefined;
  }
}

/** Pops a finished frame: a finished key moves its object on to `:` (free keys carry no text). */
export function finish(below: State, done: Frame): State {
  if (below === undefined) return undefined;
  const parent = below.frame;
  if (done.t === "string" && done.key && parent.t === "object") {
    return { frame: { ...parent, s: 1, key: done.text }, below: below.below };
  }
  return below;
}

/** Feeds one character; undefined when the text would stop being a valid prefix. */
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
