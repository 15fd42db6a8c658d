/**
 * The JSON recogniser (runtime/server/json-machine.ts) accepts exactly the prefixes of valid
 * documents, for a set of schemas. Two enumerations per schema:
 *  - every string up to a small length over an alphabet fitted to the schema (children of
 *    accepted strings only: a rejected string's extensions are all rejected);
 *  - every single-character substitution, insertion and deletion of valid documents, each
 *    judged at every length past the edit.
 * The machine's verdict (rejected / a proper start / a complete document) must equal the
 * one of an independent recursive-descent reader (json-oracle.ts). JSON.parse grounds both
 * directions: each string the machine accepts is completed along the machine's own shortest
 * completion (closingLength) into a document JSON.parse and the schema check accept, and the
 * reader's "complete" agrees with JSON.parse wherever the machine's documented limits allow.
 */
import { describe, expect, test } from "bun:test";
import { compileConstraint } from "../../runtime/server/json-constraint.ts";
import { closingLength } from "../../runtime/server/json-closing.ts";
import { feed, isComplete, type MachineState, type State } from "../../runtime/server/json-machine.ts";
import { type JsonSpec, judgePrefix, keysWrittenPlainly, validateDocument, type Verdict } from "./json-oracle.ts";

/** The machine's start for a spec, as the server compiles it. */
function startState(spec: JsonSpec): MachineState {
  return compileConstraint({ schema: spec.schema, objectOnly: spec.objectOnly, prefix: spec.prefix, suffix: spec.suffix }).start;
}

const step = (state: State | null, c: string): State | null => (state === null || state === undefined ? null : feed(state, c));
const verdictOf = (state: State | null): Verdict => (state === null ? "bad" : isComplete(state) ? "complete" : "prefix");

interface Case {
  readonly name: string;
  readonly spec: JsonSpec;
  /** Characters of the exhaustive enumeration, and its length. */
  readonly alphabet: string;
  readonly length: number;
  /** Valid documents whose single-character edits are judged. */
  readonly documents: readonly string[];
}

const CASES: readonly Case[] = [
  {
    name: "any JSON value",
    spec: {},
    alphabet: '{}[]":,01-.e+ tnu\\',
    length: 4,
    documents: [
      '{"a": [1, -2.5e+3, true, null, "x\\n\\u00e9"]}',
      '{"b": {"c": {}}, "d": [[], [0.0, 1E-2]]}',
      '[    "four spaces on each side",    {"k":false}    ]',
      '"\\"\\\\\\/\\b\\f\\n\\r\\t\\u12aB"',
      // Numbers at the 24-character cap: one more character can never be completed.
      "-123456789012345678901.5",
      "[12345678901234567890123]",
      "[1234567890123456789012e1]",
    ],
  },
  {
    name: "json_object mode",
    spec: { objectOnly: true },
    alphabet: '{}[]":,0a \\',
    length: 5,
    documents: ['{"x":{"y":[1,{"z":null}]},"x":"repeats are JSON"}', "{ }", '{"":""}'],
  },
  {
    name: "closed object: integer, maxLength, mixed enum, a key needing an escape, bounded array",
    spec: {
      schema: {
        type: "object",
        properties: {
          a: { type: "integer" },
          b: { type: "string", maxLength: 2 },
          c: { enum: ["x", 7, null] },
          'd"': { type: "boolean" },
          e: { type: "array", items: { type: "number" }, minItems: 1, maxItems: 2 },
        },
        required: ["a"],
      },
    },
    alphabet: '{}":,abcde\\x70-. tn',
    length: 9,
    documents: [
      '{"a":-12,"b":"\\u00e9!","c":"x","d\\"":true,"e":[1.5e3,0]}',
      '{ "e" : [ 7 ] , "d\\"" : false , "a" : 0 }',
      '{"d\\"":false,"c":null,"a":12345678901234567890123}',
      '{"c":7,"a":1,"b":""}',
    ],
  },
  {
    name: "required keys that need escapes",
    spec: { schema: { type: "object", properties: { '"': { type: "null" }, "\\": { enum: ["\\"] } }, required: ['"', "\\"] } },
    alphabet: '{}":,\\nul',
    length: 21,
    documents: ['{"\\"":null,"\\\\":"\\\\"}', '{"\\\\":"\\\\", "\\"":null}'],
  },
  {
    name: "array of unions, with a $ref and a const",
    spec: {
      schema: {
        $defs: { pair: { type: "array", items: { type: ["integer", "null"] }, minItems: 2, maxItems: 2 } },
        type: "array",
        minItems: 1,
        maxItems: 3,
        items: { anyOf: [{ type: "number" }, { type: "string", maxLength: 1 }, { $ref: "#/$defs/pair" }, { const: true }] },
      },
    },
    alphabet: '[]",01-.ntx \\',
    length: 7,
    documents: ['[1,"x",[null,-3]]', '[[0,1],true,"\\""]', '["" , [ null , 7 ] ]', "[2e-5]"],
  },
  {
    name: "open object with required keys",
    spec: { schema: { type: "object", required: ["a"] } },
    alphabet: '{}":a0',
    length: 7,
    documents: ['{"b":1,"a":[{"a":2}]}', '{"a":"","c":null,"b":{}}'],
  },
  {
    name: "tool-call wrapper around a closed object",
    spec: {
      prefix: "<t>",
      suffix: "</t>",
      schema: {
        type: "object",
        properties: { n: { enum: ["f", "g"] }, x: { type: "array", items: { type: "boolean" }, maxItems: 2 } },
        required: ["n"],
      },
    },
    alphabet: '<>/t{}":,nfg\n',
    length: 16,
    documents: ['<t>{"n":"g","x":[true, false]}</t>', '<t>{"x":[],"n":"f"}</t>'],
  },
];

/** Characters tried at each edit: JSON syntax, whitespace, escapes, a control character, non-ASCII. */
const EDITS = '{}[]":,. -+0123456789eEtfnulrsax\\/\t\n\r\u0001é<>';

/** Candidates for the next character of a shortest completion. */
function completionChars(spec: JsonSpec): string[] {
  return [...new Set('"{}[],:0-.e+tfnrulsa' + JSON.stringify(spec.schema ?? {}) + (spec.prefix ?? "") + (spec.suffix ?? ""))];
}

/** Completes an accepted text along the machine's shortest completion; undefined if it has none. */
function completion(state: State, spec: JsonSpec): string | undefined {
  let need = closingLength(state);
  if (!Number.isFinite(need)) return undefined;
  const chars = completionChars(spec);
  let out = "";
  for (let current: State = state; need > 0; need--) {
    const c = chars.find((c) => {
      const next = step(current, c);
      return next !== null && closingLength(next) === need - 1;
    });
    if (c === undefined) return undefined;
    out += c;
    current = step(current, c) as State;
  }
  return out;
}

interface Findings {
  /** Texts on which the machine and the reader disagree. */
  mismatches: { text: string; machine: Verdict; reader: Verdict }[];
  /** Accepted texts that do not complete into a document JSON.parse and the schema accept. */
  uncompleted: { text: string; completion?: string; error?: string }[];
  /** Texts the reader calls complete that JSON.parse or the schema check refuse, or the reverse. */
  readerErrors: { text: string; reader: Verdict; error?: string }[];
  counts: Record<Verdict, number>;
}

const newFindings = (): Findings => ({ mismatches: [], uncompleted: [], readerErrors: [], counts: { bad: 0, prefix: 0, complete: 0 } });

/** Judges one text both ways and cross-checks the reader with JSON.parse. */
function judge(text: string, state: State | null, spec: JsonSpec, found: Findings): Verdict {
  const machine = verdictOf(state);
  const reader = judgePrefix(text, spec);
  found.counts[reader]++;
  if (machine !== reader) found.mismatches.push({ text, machine, reader });
  const error = validateDocument(text, spec);
  const json = text.slice((spec.prefix ?? "").length, text.length - (spec.suffix ?? "").length);
  if (reader === "complete" ? error !== undefined : error === undefined && keysWrittenPlainly(json)) {
    found.readerErrors.push({ text, reader, error });
  }
  return machine;
}

function checkCompletes(text: string, state: State, spec: JsonSpec, found: Findings): void {
  const rest = completion(state, spec);
  const error = rest === undefined ? "no finite shortest completion" : validateDocument(text + rest, spec);
  if (error !== undefined) found.uncompleted.push({ text, completion: rest, error });
}

function expectNoFindings(found: Findings): void {
  expect({ mismatches: found.mismatches.slice(0, 8), count: found.mismatches.length }).toEqual({ mismatches: [], count: 0 });
  expect(found.uncompleted.slice(0, 8)).toEqual([]);
  expect(found.readerErrors.slice(0, 8)).toEqual([]);
  // Neither half is vacuous: the enumeration met rejected, proper and complete texts.
  for (const verdict of ["bad", "prefix", "complete"] as const) {
    expect({ verdict, met: found.counts[verdict] > 0 }).toEqual({ verdict, met: true });
  }
}

describe("json machine: accepted texts are exactly the prefixes of valid documents", () => {
  for (const c of CASES) {
    test(`${c.name}: every string up to ${c.length} characters over ${JSON.stringify(c.alphabet)}`, () => {
      const found = newFindings();
      let frontier: [string, MachineState][] = [["", startState(c.spec)]];
      for (let length = 1; length <= c.length; length++) {
        const next: [string, MachineState][] = [];
        for (const [text, state] of frontier) {
          let extended = false;
          for (const ch of c.alphabet) {
            const s = step(state, ch);
            const verdict = judge(text + ch, s, c.spec, found);
            if (s !== null && s !== undefined) {
              next.push([text + ch, s]);
              extended = true;
            } else if (verdict === "complete") checkCompletes(text + ch, s as State, c.spec, found);
          }
          // Every accepted text is a prefix of one checked here, so all of them complete.
          if (!extended) checkCompletes(text, state, c.spec, found);
        }
        frontier = next;
      }
      for (const [text, state] of frontier) checkCompletes(text, state, c.spec, found);
      expectNoFindings(found);
    });
  }

  for (const c of CASES) {
    test(`${c.name}: single-character edits of valid documents`, () => {
      const found = newFindings();
      for (const doc of c.documents) {
        // The documents themselves, and every prefix of them, are accepted.
        let state: State | null = startState(c.spec);
        for (const ch of doc) state = step(state, ch);
        expect({ doc, verdict: verdictOf(state), error: validateDocument(doc, c.spec) }).toEqual({
          doc,
          verdict: "complete",
          error: undefined,
        });

        const edits: [number, string][] = [];
        for (let i = 0; i <= doc.length; i++) {
          for (const ch of new Set(EDITS + c.alphabet)) {
            if (i < doc.length) edits.push([i, doc.slice(0, i) + ch + doc.slice(i + 1)]);
            edits.push([i, doc.slice(0, i) + ch + doc.slice(i)]);
          }
          if (i < doc.length) edits.push([i, doc.slice(0, i) + doc.slice(i + 1)]);
        }
        let prefixState: State | null = startState(c.spec);
        let prefixAt = 0;
        for (const [at, text] of edits) {
          // The machine's state after the unchanged part, reused across the edits at one position.
          for (; prefixAt < at; prefixAt++) prefixState = step(prefixState, doc[prefixAt]);
          let s = prefixState;
          for (let k = at; k < text.length; k++) {
            s = step(s, text[k]);
            if (judge(text.slice(0, k + 1), s, c.spec, found) === "bad") break;
          }
          if (s !== null && s !== undefined) checkCompletes(text, s, c.spec, found);
        }
      }
      expectNoFindings(found);
    });
  }
});
