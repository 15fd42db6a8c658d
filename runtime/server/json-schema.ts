/**
 * Compiles a request's JSON Schema into the graph the recogniser follows (json-machine.ts),
 * checking it first: the whole document against size limits (so compiling stays a few
 * milliseconds whatever the client sends), every keyword against the ones enforced (any other
 * is refused with 400, never silently ignored), bounds that contradict each other, local
 * `$ref`s that do not resolve, and schemas no finite value satisfies (a `$ref` cycle without a
 * base case). Each node also gets the length of the shortest JSON text it accepts, computed
 * as a fixpoint over the graph, so the constraint can say how much room a document still needs.
 *
 * Enforced: type (one or a list), enum, const, properties (closed as in OpenAI's strict mode
 * unless additionalProperties is true), required, additionalProperties (true/false), items,
 * minItems, maxItems, minLength, maxLength, minimum, maximum, exclusiveMinimum,
 * exclusiveMaximum, anyOf, oneOf (when its alternatives cannot start alike), allOf with one
 * element, and local `$ref` into the document ($defs, definitions, any JSON pointer).
 * Annotations are accepted: title, description, default, examples, $comment, $schema, $id,
 * deprecated, readOnly, writeOnly, and "x-" extensions.
 */
import { InvalidArgumentError } from "../errors.ts";
import { decimalOf, emptyBounds, type NumberBounds, shortestCompletion } from "./json-number.ts";
import { checkLimits, SCHEMA_LIMITS, type SchemaLimits } from "./json-schema-limits.ts";

export { SCHEMA_LIMITS, type SchemaLimits };

export type Schema = Record<string, unknown>;

/** Longest number text the recogniser writes (sign, digits, dot, exponent). */
export const MAX_NUMBER = 24;

export type SchemaNode =
  | { kind: "any"; shortest: number }
  | {
    kind: "object";
    shortest: number;
    /** Property names (raw, as written between the quotes) to their schemas; undefined = any key. */
    properties?: Map<string, SchemaNode>;
    /** The raw property names, sorted (key prefixes are looked up by binary search). */
    keys: readonly string[];
    /** Raw names of the required properties. */
    required: readonly string[];
    /** Raw name to the characters `"name":value` needs at least. */
    keyCost: Map<string, number>;
  }
  | { kind: "array"; shortest: number; items: SchemaNode; min: number; max: number }
  | { kind: "string"; shortest: number; minLength: number; maxLength: number }
  | { kind: "number"; shortest: number; integer: boolean; bounds?: NumberBounds }
  | { kind: "literal"; shortest: number; options: readonly string[] }
  | { kind: "union"; shortest: number; options: SchemaNode[] };

const ANNOTATIONS = new Set([
  "title",
  "description",
  "default",
  "examples",
  "$comment",
  "$schema",
  "$id",
  "deprecated",
  "readOnly",
  "writeOnly",
]);
const CONTAINERS = new Set(["$defs", "definitions"]);
const TYPED: Record<string, readonly string[]> = {
  object: ["properties", "required", "additionalProperties"],
  array: ["items", "minItems", "maxItems"],
  string: ["minLength", "maxLength"],
  number: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"],
};
const ENFORCED = new Set([...Object.values(TYPED).flat(), "type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref"]);
const TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"];
const SUPPORTED_LIST = [...ENFORCED].join(", ");

const isObject = (v: unknown): v is Schema => v !== null && typeof v === "object" && !Array.isArray(v);
const raw = (name: string) => JSON.stringify(name).slice(1, -1);

const nonNegativeInteger = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** Whether a const/enum value meets the simple keywords next to it (type, lengths, bounds). */
function valueMatches(value: unknown, schema: Schema): boolean {
  const types = schema.type === undefined ? undefined : ([] as unknown[]).concat(schema.type);
  const kind = value === null
    ? "null"
    : Array.isArray(value)
    ? "array"
    : typeof value === "number" && Number.isInteger(value)
    ? "integer"
    : typeof value;
  if (types !== undefined && !types.includes(kind) && !(kind === "integer" && types.includes("number"))) return false;
  if (typeof value === "string") {
    if (typeof schema.minLength === "number" && value.length < schema.minLength) return false;
    if (typeof schema.maxLength === "number" && value.length > schema.maxLength) return false;
  }
  if (typeof value === "number") {
    if (typeof schema.minimum === "number" && value < schema.minimum) return false;
    if (typeof schema.maximum === "number" && value > schema.maximum) return false;
    if (typeof schema.exclusiveMinimum === "number" && value <= schema.exclusiveMinimum) return false;
    if (typeof schema.exclusiveMaximum === "number" && value >= schema.exclusiveMaximum) return false;
  }
  return true;
}

/** Characters a value of the node may start with (union disjointness for oneOf). */
function firstChars(node: SchemaNode, seen = new Set<SchemaNode>()): Set<string> {
  if (seen.has(node)) return new Set();
  seen.add(node);
  switch (node.kind) {
    case "any":
      return new Set(["{", "[", '"', "-", ..."0123456789", "t", "f", "n"]);
    case "object":
      return new Set(["{"]);
    case "array":
      return new Set(["["]);
    case "string":
      return new Set(['"']);
    case "number":
      return new Set(["-", ..."0123456789"]);
    case "literal":
      return new Set(node.options.map((o) => o[0]));
    case "union":
      return new Set(node.options.flatMap((o) => [...firstChars(o, seen)]));
  }
}

export interface CompileOptions {
  /** The request parameter the schema came in, for error bodies. */
  readonly param: string;
  readonly limits?: SchemaLimits;
}

/** Compiles and checks a schema; throws InvalidArgumentError (400) naming the place and the way out. */
export function compileSchema(input: unknown, options: CompileOptions): SchemaNode {
  const { param } = options;
  const fail = (path: string, message: string): never => {
    throw new InvalidArgumentError(param, `${param}${path === "" ? "" : ` at #${path}`}: ${message}`);
  };
  if (!isObject(input)) fail("", "a JSON Schema must be an object");
  const root = input as Schema;
  checkLimits(root, options.limits ?? SCHEMA_LIMITS, fail);

  const compiled = new Map<Schema, Map<string, SchemaNode>>();
  const all: { node: SchemaNode; path: string }[] = [];
  const make = <N extends SchemaNode>(node: N, path: string): N => {
    all.push({ node, path });
    return node;
  };

  /** Follows `$ref` chains to a schema, checking each hop resolves. */
  const resolve = (schema: Schema, path: string): { schema: Schema; path: string } => {
    let current = schema;
    let where = path;
    for (let hops = 0; typeof current.$ref === "string" || current.$ref !== undefined; hops++) {
      const ref = current.$ref;
      if (typeof ref !== "string" || !ref.startsWith("#")) {
        fail(where, `$ref ${JSON.stringify(ref)} is not a local reference ("#/$defs/Name"); inline the schema it points to`);
      }
      for (const key of Object.keys(current)) {
        if (key !== "$ref" && !ANNOTATIONS.has(key) && !CONTAINERS.has(key) && !key.startsWith("x-")) {
          fail(where, `"${key}" next to $ref is not enforced; move it into the schema the $ref points to`);
        }
      }
      if (hops >= 64) fail(where, `$ref ${ref} starts a cycle of references that never reaches a schema`);
      let target: unknown = root;
      const pointer = (ref as string).slice(1);
      for (const part of pointer.split("/").slice(1)) {
        let key = part;
        try {
          key = decodeURIComponent(part);
        } catch {
          fail(where, `$ref ${ref} is not a valid JSON pointer`);
        }
        key = key.replace(/~1/g, "/").replace(/~0/g, "~");
        target = isObject(target) || Array.isArray(target) ? (target as Record<string, unknown>)[key] : undefined;
      }
      if (!isObject(target)) fail(where, `$ref ${ref} does not resolve to a schema in this document`);
      current = target as Schema;
      where = pointer;
    }
    return { schema: current, path: where };
  };

  const checkKeywords = (schema: Schema, path: string) => {
    for (const key of Object.keys(schema)) {
      if (ENFORCED.has(key) || ANNOTATIONS.has(key) || CONTAINERS.has(key) || key.startsWith("x-")) continue;
      fail(path, `keyword "${key}" is not enforced by this server, so the output could break it; remove it (enforced: ${SUPPORTED_LIST})`);
    }
    const counts = (name: string) => {
      if (schema[name] !== undefined && !nonNegativeInteger(schema[name])) {
        fail(path, `${name} must be a non-negative integer, got ${JSON.stringify(schema[name])}`);
      }
    };
    ["minItems", "maxItems", "minLength", "maxLength"].forEach(counts);
    for (const name of ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]) {
      if (schema[name] !== undefined && (typeof schema[name] !== "number" || !Number.isFinite(schema[name]))) {
        fail(path, `${name} must be a number, got ${JSON.stringify(schema[name])}`);
      }
    }
    for (const [low, high] of [["minItems", "maxItems"], ["minLength", "maxLength"]]) {
      if (typeof schema[low] === "number" && typeof schema[high] === "number" && schema[low] > schema[high]) {
        fail(path, `${low} ${schema[low]} is greater than ${high} ${schema[high]}: no value satisfies both`);
      }
    }
    if (schema.required !== undefined && (!Array.isArray(schema.required) || !schema.required.every((k) => typeof k === "string"))) {
      fail(path, "required must be an array of property names");
    }
    if (schema.properties !== undefined && !isObject(schema.properties)) fail(path, "properties must be an object of schemas");
    if (schema.additionalProperties !== undefined && typeof schema.additionalProperties !== "boolean") {
      fail(path, "additionalProperties is enforced as true or false only; a schema for extra properties is not");
    }
    if (schema.enum !== undefined && (!Array.isArray(schema.enum) || schema.enum.length === 0)) {
      fail(path, "enum must be a non-empty array");
    }
    for (const key of ["anyOf", "oneOf", "allOf"]) {
      const list = schema[key];
      if (list !== undefined && (!Array.isArray(list) || list.length === 0 || !list.every(isObject))) {
        fail(path, `${key} must be a non-empty array of schemas`);
      }
    }
    if (Array.isArray(schema.allOf) && schema.allOf.length > 1) {
      fail(path, "allOf with more than one schema is not enforced; merge them into one schema");
    }
    const types = schema.type === undefined ? [] : ([] as unknown[]).concat(schema.type);
    for (const t of types) {
      if (typeof t !== "string" || !TYPES.includes(t)) {
        fail(path, `type ${JSON.stringify(t)} is not a JSON Schema type (${TYPES.join(", ")})`);
      }
    }
    if (schema.items !== undefined && typeof schema.items !== "boolean" && !isObject(schema.items)) {
      fail(path, "items must be one schema (tuple forms are not enforced)");
    }
  };

  const compile = (input: Schema, pathIn: string, only?: string): SchemaNode => {
    const { schema, path } = resolve(input, pathIn);
    let byType = compiled.get(schema);
    if (byType === undefined) compiled.set(schema, byType = new Map());
    const memo = byType.get(only ?? "");
    if (memo !== undefined) return memo;
    checkKeywords(schema, path);
    const combinator = (["anyOf", "oneOf", "allOf"] as const).filter((k) => schema[k] !== undefined);
    if (combinator.length > 0) {
      const extra = Object.keys(schema).find((k) =>
        !ANNOTATIONS.has(k) && !CONTAINERS.has(k) && !k.startsWith("x-") && !combinator.includes(k as never)
      );
      if (extra !== undefined) fail(path, `"${extra}" next to ${combinator[0]} is not enforced; move it into each alternative`);
      if (combinator.length > 1) fail(path, `${combinator.join(" and ")} together are not enforced; use one`);
      const key = combinator[0];
      // allOf holds one schema here (checked above): a union of one.
      const node = make<Extract<SchemaNode, { kind: "union" }>>({ kind: "union", shortest: Infinity, options: [] }, path);
      byType.set(only ?? "", node);
      (schema[key] as Schema[]).forEach((alt, i) => node.options.push(compile(alt, `${path}/${key}/${i}`)));
      if (key === "oneOf") oneOfDisjoint(node, path);
      return node;
    }
    if (Array.isArray(schema.enum) || "const" in schema) {
      const values = Array.isArray(schema.enum) ? schema.enum : [schema.const];
      const options = [...new Set(values.filter((v) => valueMatches(v, schema)).map((v) => JSON.stringify(v)))];
      if (options.length === 0) fail(path, "no enum/const value satisfies the schema's other keywords (type, lengths, bounds)");
      const node = make({ kind: "literal", shortest: Math.min(...options.map((o) => o.length)), options }, path);
      byType.set(only ?? "", node);
      return node;
    }
    let types = only !== undefined ? [only] : schema.type === undefined ? [] : ([] as string[]).concat(schema.type as string);
    if (types.length === 0) {
      // Untyped: the types its keywords speak of (a subset of what the schema allows), else any value.
      types = Object.entries(TYPED).filter(([, keys]) => keys.some((k) => k in schema)).map(([t]) => t);
      if (types.length === 0) {
        const node = make<SchemaNode>({ kind: "any", shortest: 1 }, path);
        byType.set(only ?? "", node);
        return node;
      }
    }
    if (types.includes("number")) types = types.filter((t) => t !== "integer");
    if (types.length > 1) {
      const node = make<Extract<SchemaNode, { kind: "union" }>>({ kind: "union", shortest: Infinity, options: [] }, path);
      byType.set(only ?? "", node);
      for (const t of new Set(types)) node.options.push(compile(schema, path, t));
      return node;
    }
    const node = typed(schema, path, types[0]);
    byType.set(only ?? "", node);
    fill(node, schema, path);
    return node;
  };

  /** The node for one type, its children filled in afterwards (so cycles meet the same node). */
  const typed = (schema: Schema, path: string, type: string): SchemaNode => {
    switch (type) {
      case "object":
        return make({ kind: "object", shortest: Infinity, keys: [], required: [], keyCost: new Map() }, path);
      case "array": {
        const min = (schema.minItems as number | undefined) ?? 0;
        const max = schema.items === false ? 0 : (schema.maxItems as number | undefined) ?? Infinity;
        if (min > max) fail(path, `minItems ${min} needs items but items is false`);
        return make({ kind: "array", shortest: Infinity, items: { kind: "any", shortest: 1 }, min, max }, path);
      }
      case "string": {
        const minLength = (schema.minLength as number | undefined) ?? 0;
        return make(
          { kind: "string", shortest: 2 + minLength, minLength, maxLength: (schema.maxLength as number | undefined) ?? Infinity },
          path,
        );
      }
      case "number":
      case "integer":
        return make(numberNode(schema, path, type === "integer"), path);
      case "boolean":
        return make({ kind: "literal", shortest: 4, options: ["true", "false"] }, path);
      default:
        return make({ kind: "literal", shortest: 4, options: ["null"] }, path);
    }
  };

  const numberNode = (schema: Schema, path: string, integer: boolean): SchemaNode => {
    const has = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"].some((k) => typeof schema[k] === "number");
    if (!has) return { kind: "number", shortest: 1, integer };
    const pick = (inclusive: unknown, exclusive: unknown, lower: boolean) => {
      const a = typeof inclusive === "number" ? inclusive : undefined;
      const b = typeof exclusive === "number" ? exclusive : undefined;
      if (a === undefined) return b === undefined ? { value: undefined, exclusive: false } : { value: b, exclusive: true };
      if (b === undefined) return { value: a, exclusive: false };
      return (lower ? b >= a : b <= a) ? { value: b, exclusive: true } : { value: a, exclusive: false };
    };
    const low = pick(schema.minimum, schema.exclusiveMinimum, true);
    const high = pick(schema.maximum, schema.exclusiveMaximum, false);
    const bounds: NumberBounds = {
      lo: low.value === undefined ? undefined : decimalOf(low.value),
      loExclusive: low.exclusive,
      hi: high.value === undefined ? undefined : decimalOf(high.value),
      hiExclusive: high.exclusive,
    };
    if (emptyBounds(bounds)) {
      fail(path, `the lower bound ${low.value} is not below the upper bound ${high.value}: no number satisfies both`);
    }
    const shortest = shortestCompletion("", bounds, integer, MAX_NUMBER);
    if (shortest === Infinity) {
      fail(
        path,
        `no ${integer ? "integer" : "number"} between ${low.value ?? "-infinity"} and ${
          high.value ?? "infinity"
        } can be written in ${MAX_NUMBER} characters without an exponent`,
      );
    }
    return { kind: "number", shortest, integer, bounds };
  };

  const fill = (node: SchemaNode, schema: Schema, path: string) => {
    if (node.kind === "array") {
      if (isObject(schema.items)) node.items = compile(schema.items, `${path}/items`);
      return;
    }
    if (node.kind !== "object") return;
    const props = isObject(schema.properties) ? schema.properties : undefined;
    const names = props === undefined ? [] : Object.keys(props);
    const closed = schema.additionalProperties === false || (names.length > 0 && schema.additionalProperties !== true);
    const required = [...new Set((schema.required as string[] | undefined) ?? [])];
    if (closed) {
      const missing = required.find((k) => !names.includes(k));
      if (missing !== undefined) {
        fail(path, `required property "${missing}" is not among the properties and no others are allowed; add it to properties`);
      }
      const bad = names.find((name) => !isObject(props![name]));
      if (bad !== undefined) fail(path, `property "${bad}" must map to a schema object`);
      node.properties = new Map();
      for (const name of names) node.properties.set(raw(name), compile(props![name] as Schema, `${path}/properties/${name}`));
      node.keys = [...node.properties.keys()].sort();
    }
    node.required = required.map(raw);
  };

  const oneOfDisjoint = (node: Extract<SchemaNode, { kind: "union" }>, path: string) => {
    const seen = new Map<string, number>();
    node.options.forEach((option, i) => {
      for (const c of firstChars(option)) {
        const other = seen.get(c);
        if (other !== undefined) {
          fail(
            path,
            `oneOf alternatives ${other} and ${i} can both start with ${JSON.stringify(c)}, so the output could match both; use anyOf`,
          );
        }
        seen.set(c, i);
      }
    });
  };

  const start = compile(root, "");
  settleShortest(all.map((entry) => entry.node));
  for (const { node, path } of all) {
    if (node.shortest === Infinity) {
      fail(
        path,
        "no finite JSON value satisfies this schema (a $ref cycle without a base case, or an alternative that cannot end); make the recursion optional",
      );
    }
  }
  checkUnionProgress(all.map((entry) => entry.node), fail, all);
  return start;
}

/** Shortest accepted text of each node: a fixpoint, from Infinity down (cycles stay Infinity). */
function settleShortest(nodes: readonly SchemaNode[]): void {
  for (let round = 0; round <= nodes.length; round++) {
    let changed = false;
    for (const node of nodes) {
      const value = shortestOf(node);
      if (value < node.shortest) {
        node.shortest = value;
        changed = true;
      }
    }
    if (!changed) break;
  }
  for (const node of nodes) {
    if (node.kind !== "object") continue;
    node.keyCost = new Map();
    const names = node.properties === undefined ? node.required : node.keys;
    for (const name of names) node.keyCost.set(name, name.length + 3 + (node.properties?.get(name)?.shortest ?? 1));
  }
}

function shortestOf(node: SchemaNode): number {
  switch (node.kind) {
    case "object": {
      let total = 2 + Math.max(0, node.required.length - 1);
      for (const name of node.required) total += name.length + 3 + (node.properties?.get(name)?.shortest ?? 1);
      return total;
    }
    case "array":
      return node.min === 0 ? 2 : 2 + node.min * node.items.shortest + (node.min - 1);
    case "union":
      return Math.min(...node.options.map((o) => o.shortest));
    default:
      return node.shortest;
  }
}

/** A union that reaches itself through unions only would make the recogniser loop without reading. */
function checkUnionProgress(
  nodes: readonly SchemaNode[],
  fail: (path: string, message: string) => never,
  all: { node: SchemaNode; path: string }[],
): void {
  for (const node of nodes) {
    if (node.kind !== "union") continue;
    const stack = [...node.options];
    const visited = new Set<SchemaNode>();
    while (stack.length > 0) {
      const next = stack.pop()!;
      if (next === node) {
        fail(
          all.find((e) => e.node === node)!.path,
          "anyOf/oneOf refers back to itself before any value starts; give it a concrete alternative",
        );
      }
      if (next.kind !== "union" || visited.has(next)) continue;
      visited.add(next);
      stack.push(...next.options);
    }
  }
}
