// The JSON recogniser (valid prefixes, schema keys/types, budget-aware closing) and JSON mode
// on a real engine (stories260K): constrained output always parses and follows the schema.
import { describe, expect, test } from "bun:test";
import { createJsonConstraint } from "../../runtime/server/json-constraint.ts";
import { closingLength } from "../../runtime/server/json-closing.ts";
import { feedText, initialState, isComplete } from "../../runtime/server/json-machine.ts";
import { compileSchema } from "../../runtime/server/json-schema.ts";
import { haveFiles } from "../shared-data.ts";
import { storiesEngine } from "./helpers.ts";

const any = () => initialState({ kind: "any", shortest: 1 });
const schemaNode = (schema: Record<string, unknown>) => compileSchema(schema, { param: "schema" });
const accepts = (text: string, state = any()) => feedText(state, text) !== null;
const complete = (text: string, state = any()) => {
  const s = feedText(state, text);
  return s !== null && isComplete(s);
};

describe("json machine", () => {
  test("accepts valid JSON prefixes and complete documents", () => {
    for (const doc of ['{"a": [1, -2.5e+3, true, null, "x\\n\\u00e9"]}', "[]", '"s"', "0", "-0.1", '{"k":{"n":[{}]}}', '{\n  "a" : 1\n}']) {
      expect(JSON.parse(doc)).toBeDefined();
      for (let i = 0; i <= doc.length; i++) expect(accepts(doc.slice(0, i))).toBe(true);
      expect(complete(doc)).toBe(true);
    }
  });

  test("rejects what JSON does not allow", () => {
    for (
      const bad of [
        "{a",
        "[1,]",
        "01",
        "1.",
        "1.e",
        '{"a" 1}',
        "tru e",
        '"\u0001"',
        '"\\x"',
        "{,",
        "[1 2]",
        "}",
        '{"a":1}}',
        "-",
        "1e+",
        "nul1",
      ]
    ) {
      const s = feedText(any(), bad);
      expect(s === null || !isComplete(s)).toBe(true);
    }
    expect(accepts("{a")).toBe(false);
    expect(accepts("[1,]")).toBe(false);
    expect(accepts("01")).toBe(false);
    expect(accepts('{"a":1}}')).toBe(false);
  });

  test("a schema fixes property names, required keys and value types", () => {
    const schema = {
      type: "object",
      properties: {
        name: { type: "string" },
        age: { type: "integer" },
        tags: { type: "array", items: { enum: ["x", "yy"] }, maxItems: 2 },
      },
      required: ["name", "age"],
    };
    const start = () => initialState(schemaNode(schema));
    expect(accepts('{"name":"a","age":3}', start())).toBe(true);
    expect(complete('{"name":"a","age":3}', start())).toBe(true);
    expect(accepts('{"nam":', start())).toBe(false);
    expect(accepts('{"other"', start())).toBe(false);
    expect(accepts('{"age":1.5', start())).toBe(false);
    expect(accepts('{"name":3', start())).toBe(false);
    expect(accepts('{"name":"a"}', start())).toBe(false);
    expect(accepts('{"name":"a","name"', start())).toBe(false);
    expect(accepts('{"name":"a","age":1,"tags":["x","yy"]}', start())).toBe(true);
    expect(accepts('{"name":"a","age":1,"tags":["z', start())).toBe(false);
    expect(accepts('{"name":"a","age":1,"tags":["x","x",', start())).toBe(false);
  });

  test("local $refs and literal wrappers", () => {
    const schema = { $defs: { P: { type: "object", properties: { x: { type: "boolean" } }, required: ["x"] } }, $ref: "#/$defs/P" };
    const s = initialState(schemaNode(schema), "<tool_call>\n", "\n</tool_call>");
    expect(complete('<tool_call>\n{"x":true}\n</tool_call>', s)).toBe(true);
    expect(accepts('<tool_call>\n{"x":1', s)).toBe(false);
    expect(accepts("<tool", s)).toBe(true);
    expect(accepts("<tx", s)).toBe(false);
  });

  test("number bounds, string lengths and closed objects are enforced character by character", () => {
    const bounded = () => initialState(schemaNode({ type: "integer", minimum: 10, maximum: 20 }));
    for (const ok of ["10", "15", "20"]) expect(complete(ok, bounded())).toBe(true);
    for (const bad of ["3", "21", "9", "100", "-1", "1.5", "1e1"]) expect(complete(bad, bounded())).toBe(false);
    expect(accepts("2", bounded())).toBe(true);
    expect(accepts("3", bounded())).toBe(false);
    expect(accepts("21", bounded())).toBe(false);
    const real = () => initialState(schemaNode({ type: "number", exclusiveMinimum: -0.5, maximum: 0.25 }));
    for (const ok of ["-0.4", "0", "0.25", "0.125", "-0.49"]) expect(complete(ok, real())).toBe(true);
    for (const bad of ["-0.5", "0.26", "1", "-1"]) expect(complete(bad, real())).toBe(false);
    expect(accepts("0.3", real())).toBe(false);
    const text = () => initialState(schemaNode({ type: "string", minLength: 2, maxLength: 3 }));
    expect(complete('"ab"', text())).toBe(true);
    expect(complete('"a\\n"', text())).toBe(true);
    expect(accepts('"a"', text())).toBe(false);
    expect(accepts('"abcd', text())).toBe(false);
    const closed = () => initialState(schemaNode({ type: "object", additionalProperties: false }));
    expect(complete("{}", closed())).toBe(true);
    expect(accepts('{"', closed())).toBe(false);
  });

  test("the shortest completion is counted exactly", () => {
    const schema = { type: "object", properties: { a: { type: "string" }, b: { type: "number" } }, required: ["a", "b"] };
    expect(closingLength(initialState(schemaNode(schema)))).toBe('{"a":"","b":0}'.length);
    expect(closingLength(feedText(any(), '{"k":[1,{"z":"ab'))).toBe('"}]}'.length);
    expect(closingLength(feedText(any(), "tr"))).toBe(2);
    const bounded = schemaNode({ type: "array", items: { type: "integer", minimum: 100 }, minItems: 2 });
    expect(closingLength(initialState(bounded))).toBe("[100,100]".length);
    expect(closingLength(feedText(initialState(bounded), "[1"))).toBe("00,100]".length);
    const keys = schemaNode({
      type: "object",
      properties: { long: { type: "string", minLength: 3 }, b: { enum: ["xy", "z"] } },
      required: ["long"],
    });
    expect(closingLength(initialState(keys))).toBe('{"long":"aaa"}'.length);
    expect(closingLength(feedText(initialState(keys), '{"b":'))).toBe('"z","long":"aaa"}'.length);
    // An open object: a key may be spelled on into the required name it lacks, and counts once written.
    const open = () => initialState(schemaNode({ type: "object", required: ["ab"] }));
    expect(closingLength(open())).toBe('{"ab":0}'.length);
    expect(closingLength(feedText(open(), '{"a'))).toBe('b":0}'.length);
    expect(closingLength(feedText(open(), '{"x'))).toBe('":0,"ab":0}'.length);
    expect(closingLength(feedText(open(), '{"ab":[]'))).toBe("}".length);
    expect(complete('{"x":1,"ab":[]}', open())).toBe(true);
    expect(accepts('{"x":1}', open())).toBe(false);
  });

  test("within a tight budget, an open object's key is spelled into the required name it lacks", () => {
    // One token per character, two longer ones, and an end-of-sequence token.
    const texts = [...'{}[]":,0123456789abx', "ab", "ax", "<eos>"];
    const eos = texts.length - 1;
    const tokenizer = {
      vocabSize: texts.length,
      eosTokenIds: [eos],
      specialTokenIds: new Set([eos]),
      encode: (text: string) => [...text].map((c) => texts.indexOf(c)),
      decode: (ids: readonly number[]) => ids.filter((id) => id !== eos).map((id) => texts[id]).join(""),
      idToToken: (id: number) => texts[id],
      tokenToId: (token: string) => texts.indexOf(token),
    };
    const allowedAfter = (text: string, budget: number) => {
      const constrain = createJsonConstraint(tokenizer, { schema: { type: "object", required: ["ab"] }, budget, eosTokenIds: [eos] });
      const allowed = constrain(text)!;
      return texts.filter((_, id) => allowed(id));
    };
    // Six tokens left after `{"`: only `ab":0}` fits (5 more after "a", 4 after "ab"); "x" and
    // "ax" leave the name and need `":0,"ab":0}` after them.
    expect(allowedAfter('{"', 6)).toEqual(["a", "ab"]);
    expect(allowedAfter('{"a', 5)).toEqual(["b"]);
    // With room, any key may come first (the empty one too).
    expect(allowedAfter('{"', 20)).toEqual(texts.slice(0, eos));
  });
});

const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin");

describe.skipIf(!available)("JSON mode on stories260K", () => {
  test("sampled output under the constraint parses, within a tight token budget", async () => {
    const engine = await storiesEngine();
    for (const seed of [1, 2, 3]) {
      for (const budget of [12, 40]) {
        const constrain = createJsonConstraint(engine.tokenizer, { objectOnly: true, budget, eosTokenIds: engine.tokenizer.eosTokenIds });
        let text = "";
        for await (const event of engine.generate("Once upon a time", { temperature: 1, seed, maxTokens: budget, constrain })) {
          if (event.type !== "done") text += event.text;
        }
        expect(typeof JSON.parse(text)).toBe("object");
      }
    }
  });

  test("output follows a schema", async () => {
    const engine = await storiesEngine();
    const schema = {
      type: "object",
      properties: { name: { type: "string", maxLength: 8 }, age: { type: "integer" }, happy: { type: "boolean" } },
      required: ["name", "age", "happy"],
    };
    const constrain = createJsonConstraint(engine.tokenizer, { schema, budget: 60, eosTokenIds: engine.tokenizer.eosTokenIds });
    let text = "";
    for await (const event of engine.generate("Lily", { temperature: 0.8, seed: 7, maxTokens: 60, constrain })) {
      if (event.type !== "done") text += event.text;
    }
    const value = JSON.parse(text);
    expect(Object.keys(value).sort()).toEqual(["age", "happy", "name"]);
    expect(typeof value.name).toBe("string");
    expect(Number.isInteger(value.age)).toBe(true);
    expect(typeof value.happy).toBe("boolean");
  });
});
