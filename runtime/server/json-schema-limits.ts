/**
 * The size limits a request's JSON Schema is held to before it is compiled (json-schema.ts):
 * one iterative walk over every subschema position of the document, $defs included, that stops
 * at the first limit passed, so even a schema of megabytes costs a few milliseconds to refuse.
 */
type Schema = Record<string, unknown>;

const isObject = (v: unknown): v is Schema => v !== null && typeof v === "object" && !Array.isArray(v);

export interface SchemaLimits {
  /** Subschemas in the whole document, $defs included. */
  readonly nodes: number;
  /** Properties over all objects. */
  readonly properties: number;
  /** enum and const values over the document. */
  readonly enumValues: number;
  /** Characters of property names and enum/const values together. */
  readonly text: number;
  /** Subschemas nested in subschemas. */
  readonly depth: number;
}

/**
 * Measured on this project's 2-core machine (shared, loaded): at these limits a schema is
 * refused or compiled in a few milliseconds, and one constrained step (the allowed-token mask
 * for 999 required bounded properties, or 1000 enum strings) took at most 22-51 ms with Llama 2's
 * 32 000-token vocabulary and 31 ms with GPT-2's 50 257, under the 100 ms a /health probe may wait.
 */
export const SCHEMA_LIMITS: SchemaLimits = { nodes: 1000, properties: 1000, enumValues: 1000, text: 65_536, depth: 16 };

/** Subschema positions under a schema, with their JSON pointer steps. */
function children(schema: Schema): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (const key of ["properties", "$defs", "definitions"]) {
    const map = schema[key];
    if (isObject(map)) { for (const [name, sub] of Object.entries(map)) out.push([`${key}/${name}`, sub]); }
  }
  for (const key of ["anyOf", "oneOf", "allOf"]) {
    const list = schema[key];
    if (Array.isArray(list)) list.forEach((sub, i) => out.push([`${key}/${i}`, sub]));
  }
  for (const key of ["items", "additionalProperties"]) if (isObject(schema[key])) out.push([key, schema[key]]);
  return out;
}

/** Throws 400 when the document is over a limit; walks it once, iteratively. */
export function checkLimits(root: Schema, limits: SchemaLimits, fail: (path: string, message: string) => never): void {
  let nodes = 0;
  let properties = 0;
  let enumValues = 0;
  let text = 0;
  const stack: [unknown, number, string][] = [[root, 1, ""]];
  while (stack.length > 0) {
    const [schema, depth, path] = stack.pop()!;
    if (!isObject(schema)) continue;
    if (++nodes > limits.nodes) {
      fail(path, `the schema has more than ${limits.nodes} subschemas, the most this server compiles; simplify it`);
    }
    if (depth > limits.depth) {
      fail(path, `subschemas nest more than ${limits.depth} levels deep, the most this server compiles; flatten the schema`);
    }
    if (isObject(schema.properties)) {
      for (const name of Object.keys(schema.properties)) text += name.length;
      properties += Object.keys(schema.properties).length;
      if (properties > limits.properties) {
        fail(
          path,
          `the schema has more than ${limits.properties} properties over all its objects, the most this server enforces; split the request`,
        );
      }
    }
    const values = Array.isArray(schema.enum) ? schema.enum : "const" in schema ? [schema.const] : [];
    enumValues += values.length;
    if (enumValues > limits.enumValues) {
      fail(
        path,
        `the schema has more than ${limits.enumValues} enum/const values, the most this server enforces; use a plain string or fewer values`,
      );
    }
    for (const value of values) text += JSON.stringify(value)?.length ?? 0;
    if (text > limits.text) {
      fail(path, `property names and enum/const values in the schema exceed ${limits.text} characters, the most this server enforces`);
    }
    for (const [step, sub] of children(schema)) stack.push([sub, depth + 1, `${path}/${step}`]);
  }
}
