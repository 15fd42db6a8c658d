/**
 * Two independent judges of the language json-machine.ts recognises, for the prefix tests in
 * json-prefixes.test.ts:
 *  - `judgePrefix`: a recursive-descent reader written from the spec (RFC 8259 plus the
 *    machine's documented schema subset and limits), not from the machine's code. It says
 *    whether text is a complete document, a proper start of one, or neither; running out of
 *    text means "a start", which is only true where some completion exists, so every such
 *    point checks that one does (a key left to write, an item allowed, room in a number).
 *  - `validateDocument`: a complete document checked through JSON.parse, with the schema
 *    applied to the parsed value (raw source text from the reviver for numbers and enums).
 *
 * The language (the machine's module comment states its limits; the rest is how it reads a
 * schema, kept here on purpose so that a change to it shows up as a failing test):
 *  - no whitespace before or after the document, nor between wrapper text and document;
 *    at most 4 whitespace characters between two tokens; numbers of at most 24 characters;
 *  - `integer` is written without fraction or exponent;
 *  - `properties` closes an object (with `additionalProperties: true` it is open and the
 *    properties' schemas are not applied); a closed object repeats no key;
 *  - property names and enum strings are matched as JSON.stringify writes them;
 *  - in anyOf/oneOf/type lists the first alternative that can start with the value's first
 *    character is followed (the tests' schemas keep alternatives apart by it).
 */
export type Schema = Record<string, unknown>;

export interface JsonSpec {
  readonly schema?: Schema;
  /** json_object mode: any object. */
  readonly objectOnly?: boolean;
  /** Literal text around the document (tool-call markers). */
  readonly prefix?: string;
  readonly suffix?: string;
}

export type Verdict = "complete" | "prefix" | "bad";

const MAX_WHITESPACE = 4;
const MAX_NUMBER = 24;
const WHITESPACE = " \t\n\r";
const ESCAPES = '"\\/bfnrt';
const isDigit = (c: string) => c >= "0" && c <= "9";
const isHex = (c: string) => /^[0-9a-fA-F]$/.test(c);

/** Follows local `$ref`s ("#/a/b", with ~0 and ~1); anything else reads as the empty schema. */
function deref(schema: Schema, root: Schema): Schema {
  let current = schema;
  for (let hops = 0; hops < 32 && typeof current.$ref === "string"; hops++) {
    const ref = current.$ref as string;
    if (!ref.startsWith("#")) return {};
    let target: unknown = root;
    for (const part of ref.slice(1).split("/")) {
      if (part === "") continue;
      const key = part.replaceAll("~1", "/").replaceAll("~0", "~");
      target = target !== null && typeof target === "object" ? (target as Schema)[key] : undefined;
    }
    current = target !== null && typeof target === "object" ? (target as Schema) : {};
  }
  return current;
}

/** The alternatives a schema offers (anyOf/oneOf, or a type list), if any. */
function alternatives(schema: Schema): Schema[] | undefined {
  const listed = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(listed) && listed.length > 0) return listed as Schema[];
  if (Array.isArray(schema.type)) return schema.type.map((type) => ({ ...schema, type }));
  return undefined;
}

function enumOptions(schema: Schema): unknown[] | undefined {
  if (Array.isArray(schema.enum)) return schema.enum;
  if ("const" in schema) return [schema.const];
  return undefined;
}

/** Whether a value of `schema` may begin with character c. */
function canStart(schema: Schema | undefined, c: string, root: Schema): boolean {
  if (schema === undefined) return '{["-tfn'.includes(c) || isDigit(c);
  const s = deref(schema, root);
  const options = enumOptions(s);
  if (options !== undefined) return options.some((o) => JSON.stringify(o)[0] === c);
  const alts = alternatives(s);
  if (alts !== undefined) return alts.some((a) => canStart(a, c, root));
  switch (s.type) {
    case "object":
      return c === "{";
    case "array":
      return c === "[";
    case "string":
      return c === '"';
    case "number":
    case "integer":
      return c === "-" || isDigit(c);
    case "boolean":
      return c === "t" || c === "f";
    case "null":
      return c === "n";
    default:
      return canStart(undefined, c, root);
  }
}

/** Thrown when the text runs out: everything read so far can still be completed. */
const OUT_OF_TEXT = Symbol("out of text");

class Rejected {
  constructor(readonly at: number, readonly reason: string) {}
}

/** Whether `text` is a complete document of `spec`, a proper start of one, or neither. */
export function judgePrefix(text: string, spec: JsonSpec = {}): Verdict {
  const root: Schema = spec.schema ?? {};
  let at = 0;
  const more = () => at < text.length;
  const peek = (): string => {
    if (at >= text.length) throw OUT_OF_TEXT;
    return text[at];
  };
  const reject = (reason: string): never => {
    throw new Rejected(at, reason);
  };
  const expectText = (word: string) => {
    for (const c of word) {
      if (peek() !== c) reject(`expected ${JSON.stringify(word)}`);
      at++;
    }
  };
  /** Whitespace between two tokens. */
  const gap = () => {
    for (let run = 0; WHITESPACE.includes(peek()); at++) {
      if (++run > MAX_WHITESPACE) reject("whitespace run too long");
    }
  };

  /** A number token; `integer` takes no fraction or exponent. */
  const number = (integer: boolean) => {
    const start = at;
    /** The text ran out where at least one more character is needed. */
    const needMore = () => {
      if (at - start + 1 > MAX_NUMBER) reject("number too long to finish");
      throw OUT_OF_TEXT;
    };
    /** A digit must come next: rejected if something else does, "a start" if the text ends. */
    const needDigit = (what: string) => {
      if (more()) reject(what);
      needMore();
    };
    const digits = () => {
      const from = at;
      while (more() && isDigit(text[at])) at++;
      return at - from;
    };
    if (more() && text[at] === "-") at++;
    if (!more()) needMore();
    if (text[at] === "0") at++;
    else if (digits() === 0) reject("digit expected");
    if (!integer && more() && text[at] === ".") {
      at++;
      if (digits() === 0) needDigit("digit expected after '.'");
    }
    if (!integer && more() && (text[at] === "e" || text[at] === "E")) {
      at++;
      if (more() && (text[at] === "+" || text[at] === "-")) at++;
      if (digits() === 0) needDigit("exponent digit expected");
    }
    if (at - start > MAX_NUMBER) reject("number too long");
  };

  /** A string's characters after the opening quote; returns the raw text between the quotes. */
  const freeString = (maxLength: number): string => {
    const start = at;
    for (let length = 0;; length++) {
      const c = peek();
      if (c === '"') {
        at++;
        return text.slice(start, at - 1);
      }
      if (c < " ") reject("control character in a string");
      if (length >= maxLength) reject("string longer than maxLength");
      at++;
      if (c !== "\\") continue;
      const e = peek();
      at++;
      if (e === "u") {
        for (let k = 0; k < 4; k++) {
          if (!isHex(peek())) reject("hex digit expected");
          at++;
        }
      } else if (!ESCAPES.includes(e)) reject("unknown escape");
    }
  };

  /** A string written exactly as one of `options` (raw text between the quotes). */
  const optionString = (options: readonly string[]): string => {
    let raw = "";
    let escaped = false;
    for (;;) {
      const c = peek();
      if (c === '"' && !escaped) {
        if (!options.includes(raw)) reject("not one of the allowed strings");
        at++;
        return raw;
      }
      escaped = !escaped && c === "\\";
      raw += c;
      if (!options.some((o) => o.startsWith(raw))) reject("no allowed string starts so");
      at++;
    }
  };

  /** One of the enum/const options, written as JSON.stringify writes it. */
  const enumValue = (options: readonly unknown[]) => {
    const texts = options.map((o) => JSON.stringify(o));
    if (peek() === '"') {
      const strings = texts.filter((t) => t.startsWith('"')).map((t) => t.slice(1, -1));
      if (strings.length === 0) reject("no string option");
      at++;
      optionString(strings);
      return;
    }
    // Longest match: a character that extends some option is always taken.
    let raw = "";
    while (more() && texts.some((t) => !t.startsWith('"') && t.startsWith(raw + text[at]))) raw += text[at++];
    if (texts.includes(raw)) return;
    if (raw !== "" && !more()) throw OUT_OF_TEXT;
    peek();
    reject("not one of the options");
  };

  const object = (schema: Schema | undefined) => {
    const props = schema?.properties as Record<string, Schema> | undefined;
    const closed = props !== undefined && Object.keys(props).length > 0 && schema?.additionalProperties !== true;
    const required = Array.isArray(schema?.required) ? (schema.required as unknown[]).filter((k) => typeof k === "string") : [];
    const seen: string[] = [];
    const unseen = () => Object.keys(props!).filter((k) => !seen.includes(k));
    const close = () => {
      if (required.some((k) => !seen.includes(k))) reject("a required property is missing");
      at++;
    };
    expectText("{");
    gap();
    if (peek() === "}") return close();
    for (;;) {
      if (peek() !== '"') reject("property name expected");
      at++;
      const name = closed
        ? JSON.parse(`"${optionString(unseen().map((k) => JSON.stringify(k).slice(1, -1)))}"`)
        : JSON.parse(`"${freeString(Infinity)}"`);
      seen.push(name);
      gap();
      if (peek() !== ":") reject("':' expected");
      at++;
      gap();
      value(closed ? props![name] : undefined);
      gap();
      if (peek() === "}") return close();
      if (peek() !== ",") reject("',' or '}' expected");
      if (closed && unseen().length === 0) reject("no property left to write");
      at++;
      gap();
    }
  };

  const array = (schema: Schema | undefined) => {
    const items = schema?.items as Schema | undefined;
    const min = Number.isInteger(schema?.minItems) ? (schema!.minItems as number) : 0;
    const max = Number.isInteger(schema?.maxItems) ? (schema!.maxItems as number) : Infinity;
    expectText("[");
    gap();
    if (peek() === "]") {
      if (min > 0) reject("too few items");
      at++;
      return;
    }
    if (max === 0) reject("no items allowed");
    for (let count = 1;; count++) {
      value(items);
      gap();
      if (peek() === "]") {
        if (count < min) reject("too few items");
        at++;
        return;
      }
      if (peek() !== ",") reject("',' or ']' expected");
      if (count >= max) reject("too many items");
      at++;
      gap();
    }
  };

  const anyValue = () => {
    const c = peek();
    if (c === "{") return object(undefined);
    if (c === "[") return array(undefined);
    if (c === '"') {
      at++;
      freeString(Infinity);
      return;
    }
    if (c === "-" || isDigit(c)) return number(false);
    return enumValue([true, false, null]);
  };

  function value(input: Schema | undefined): void {
    if (input === undefined) return anyValue();
    const schema = deref(input, root);
    const options = enumOptions(schema);
    if (options !== undefined) return enumValue(options);
    const alts = alternatives(schema);
    if (alts !== undefined) {
      const c = peek();
      const chosen = alts.find((a) => canStart(a, c, root));
      if (chosen === undefined) reject("no alternative starts so");
      return value(chosen);
    }
    switch (schema.type) {
      case "object":
        if (peek() !== "{") reject("object expected");
        return object(schema);
      case "array":
        if (peek() !== "[") reject("array expected");
        return array(schema);
      case "string": {
        if (peek() !== '"') reject("string expected");
        at++;
        freeString(Number.isInteger(schema.maxLength) ? (schema.maxLength as number) : Infinity);
        return;
      }
      case "integer":
      case "number":
        if (!canStart(schema, peek(), root)) reject("number expected");
        return number(schema.type === "integer");
      case "boolean":
        return enumValue([true, false]);
      case "null":
        return enumValue([null]);
      default:
        return anyValue();
    }
  }

  try {
    expectText(spec.prefix ?? "");
    if (spec.objectOnly && spec.schema === undefined) {
      if (peek() !== "{") reject("object expected");
      object(undefined);
    } else value(spec.schema);
    expectText(spec.suffix ?? "");
    if (more()) reject("text after the document");
    return "complete";
  } catch (e) {
    if (e === OUT_OF_TEXT) return "prefix";
    if (e instanceof Rejected) return "bad";
    throw e;
  }
}

/** A parsed primitive with the text it was written as. */
class Written {
  constructor(readonly value: string | number | boolean | null, readonly source: string) {}
}

/** Schema check of a value parsed with `Written` primitives; returns what is wrong, or undefined. */
function schemaError(value: unknown, schema: Schema | undefined, root: Schema, path: string): string | undefined {
  if (value instanceof Written && typeof value.value === "number" && value.source.length > MAX_NUMBER) return `${path}: number too long`;
  if (schema === undefined) {
    if (value instanceof Written) return undefined;
    for (const [key, v] of Object.entries(value as object)) {
      const error = schemaError(v, undefined, root, `${path}.${key}`);
      if (error !== undefined) return error;
    }
    return undefined;
  }
  const s = deref(schema, root);
  const options = enumOptions(s);
  if (options !== undefined) {
    return value instanceof Written && options.some((o) => JSON.stringify(o) === value.source) ? undefined : `${path}: not in enum`;
  }
  const alts = alternatives(s);
  if (alts !== undefined) {
    const first = value instanceof Written ? value.source[0] : Array.isArray(value) ? "[" : "{";
    const chosen = alts.find((a) => canStart(a, first, root));
    return chosen === undefined ? `${path}: no alternative` : schemaError(value, chosen, root, path);
  }
  const primitive = value instanceof Written ? value.value : undefined;
  switch (s.type) {
    case "object": {
      if (value instanceof Written || Array.isArray(value)) return `${path}: not an object`;
      const object = value as Record<string, unknown>;
      const props = s.properties as Record<string, Schema> | undefined;
      const closed = props !== undefined && Object.keys(props).length > 0 && s.additionalProperties !== true;
      for (const key of Array.isArray(s.required) ? s.required : []) if (!Object.hasOwn(object, key)) return `${path}: missing ${key}`;
      for (const [key, v] of Object.entries(object)) {
        if (closed && !Object.hasOwn(props!, key)) return `${path}: unexpected ${key}`;
        const error = schemaError(v, closed ? props![key] : undefined, root, `${path}.${key}`);
        if (error !== undefined) return error;
      }
      return undefined;
    }
    case "array": {
      if (!Array.isArray(value)) return `${path}: not an array`;
      const min = Number.isInteger(s.minItems) ? (s.minItems as number) : 0;
      const max = Number.isInteger(s.maxItems) ? (s.maxItems as number) : Infinity;
      if (value.length < min || value.length > max) return `${path}: ${value.length} items`;
      for (let i = 0; i < value.length; i++) {
        const error = schemaError(value[i], s.items as Schema | undefined, root, `${path}[${i}]`);
        if (error !== undefined) return error;
      }
      return undefined;
    }
    case "string":
      if (typeof primitive !== "string") return `${path}: not a string`;
      return Number.isInteger(s.maxLength) && primitive.length > (s.maxLength as number) ? `${path}: too long` : undefined;
    case "integer":
      return typeof primitive === "number" && /^-?(0|[1-9][0-9]*)$/.test((value as Written).source) ? undefined : `${path}: not an integer`;
    case "number":
      return typeof primitive === "number" ? undefined : `${path}: not a number`;
    case "boolean":
      return typeof primitive === "boolean" ? undefined : `${path}: not a boolean`;
    case "null":
      return primitive === null && value instanceof Written ? undefined : `${path}: not null`;
    default:
      return schemaError(value, undefined, root, path);
  }
}

/** Outside strings: no whitespace at either end, no run longer than the machine allows. */
function whitespaceError(json: string): string | undefined {
  if (json.length > 0 && (WHITESPACE.includes(json[0]) || WHITESPACE.includes(json[json.length - 1]))) return "whitespace at an end";
  let inString = false;
  let run = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    run = WHITESPACE.includes(c) ? run + 1 : 0;
    if (run > MAX_WHITESPACE) return "whitespace run too long";
    if (c === '"') inString = true;
  }
  return undefined;
}

/** Why `text` is not a complete document of `spec`, judged through JSON.parse; undefined if it is one. */
export function validateDocument(text: string, spec: JsonSpec = {}): string | undefined {
  const prefix = spec.prefix ?? "";
  const suffix = spec.suffix ?? "";
  if (!text.startsWith(prefix) || !text.endsWith(suffix) || text.length < prefix.length + suffix.length) return "wrapper text";
  const json = text.slice(prefix.length, text.length - suffix.length);
  let parsed: unknown;
  try {
    parsed = JSON.parse(json, (_key, value, context?: { source?: string }) => {
      if (value !== null && typeof value === "object") return value;
      if (context?.source === undefined) throw new Error("JSON.parse gave no source text (the tests need Bun's reviver context)");
      return new Written(value, context.source);
    });
  } catch (e) {
    return `JSON.parse: ${(e as Error).message}`;
  }
  const ws = whitespaceError(json);
  if (ws !== undefined) return ws;
  if (spec.objectOnly && (parsed instanceof Written || Array.isArray(parsed))) return "not an object";
  return schemaError(parsed, spec.schema, spec.schema ?? {}, "$");
}

/**
 * Whether every object key is written without escapes and no object repeats one. JSON.parse
 * cannot tell (it decodes keys and keeps the last duplicate); the machine compares keys as
 * written and refuses a repeat in a closed object, so the JSON.parse cross-check skips texts
 * that break this. Only meaningful for text JSON.parse accepts.
 */
export function keysWrittenPlainly(json: string): boolean {
  const open: (Set<string> | null)[] = [];
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === "{") open.push(new Set());
    else if (c === "[") open.push(null);
    else if (c === "}" || c === "]") open.pop();
    else if (c === '"') {
      let end = i + 1;
      while (end < json.length && json[end] !== '"') end += json[end] === "\\" ? 2 : 1;
      let next = end + 1;
      while (next < json.length && WHITESPACE.includes(json[next])) next++;
      const keys = open.at(-1);
      if (json[next] === ":" && keys !== undefined && keys !== null) {
        const raw = json.slice(i + 1, end);
        if (raw.includes("\\") || keys.has(raw)) return false;
        keys.add(raw);
      }
      i = end;
    }
  }
  return true;
}
