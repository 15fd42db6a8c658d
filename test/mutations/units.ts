/**
 * Deliberate breaks of unit-level behaviour (stop strings, tool calls, tool_choice "none",
 * the JSON constraint, KV cache and GPTQ quality) and the tests that catch them. Each was
 * applied by hand and seen to fail its tests before it was recorded here; run them all with
 * `npx bun test/mutations/run.ts --only <part of a name>` (test/mutations.md).
 */
import type { Mutation } from "./types.ts";

const JSON_PREFIXES = "test/server/json-prefixes.test.ts";

export const mutations: Mutation[] = [
  {
    name: "stop strings: the latest stop wins (comparison reversed)",
    file: "runtime/engine/stop-strings.ts",
    find: "(cut === -1 || at < cut)",
    replace: "(cut === -1 || at > cut)",
    tests: ["runtime/engine/stop-strings.test.ts"],
  },
  {
    name: "stop strings: text still held back at the end is dropped",
    file: "runtime/engine/stop-strings.ts",
    find: "const rest = pending;",
    replace: 'const rest = "";',
    tests: ["runtime/engine/stop-strings.test.ts"],
  },
  {
    name: "q8 KV cache: codes kept to 7 bits",
    file: "runtime/engine/kv-cache/kv-quant.ts",
    find: "const stepBits = hi > min ? f16Ceil((hi - min) / levels) : 0;",
    replace: "const stepBits = hi > min ? f16Ceil((hi - min) / (levels === 255 ? 127 : levels)) : 0;",
    tests: ["test/kv-cache/quality.test.ts"],
  },
  {
    name: "GPTQ: damping 0.01 -> 0.1",
    file: "quantizer/methods/gptq.ts",
    find: "export const GPTQ_DAMP = 0.01;",
    replace: "export const GPTQ_DAMP = 0.1;",
    tests: ["test/quantizer/stories260k-quality.test.ts", "quantizer/methods/methods.test.ts"],
    filter: "beat",
  },
  {
    name: "tool-call parsing: backslash escapes in strings ignored",
    file: "runtime/server/tool-calls.ts",
    find: 'if (c === "\\\\") j++;\n        else if (c === \'"\') inString = false;',
    replace: "if (c === '\"') inString = false;",
    tests: ["test/server/tool-calls.test.ts"],
  },
  {
    name: 'tool_choice "none" ignored',
    file: "runtime/server/routes/chat.ts",
    find: 'const useTools = request.tools.length > 0 && request.toolChoice !== "none";',
    replace: "const useTools = request.tools.length > 0;",
    tests: ["test/server/openai-sdk.test.ts"],
    filter: "tool_choice",
  },
  {
    name: "json: a number may end unfinishable at the 24-character cap (a bug found and fixed in issue 12)",
    file: "runtime/server/json-machine.ts",
    find: "frame.n + 1 >= MAX_NUMBER && !numberEnds(s) ? undefined : [{ ...frame, s, n: frame.n + 1 }]",
    replace: "[{ ...frame, s, n: frame.n + 1 }]",
    tests: [JSON_PREFIXES],
    filter: "any JSON value",
  },
  {
    name: "json: required names kept by name while keys are matched as written (a bug found and fixed in issue 12)",
    file: "runtime/server/json-schema.ts",
    find: "node.required = required.map(raw);",
    replace: "node.required = required;",
    tests: [JSON_PREFIXES],
    filter: "need escapes",
  },
  {
    name: "json: free keys keep no text, so an open object's required keys never count (a bug found and fixed in issue 12)",
    file: "runtime/server/json-machine.ts",
    find: "return frame.key && next !== undefined && next.length === 1 ? [{ ...next[0], text: frame.text + c }] : next;",
    replace: "return next;",
    tests: [JSON_PREFIXES],
    filter: "open object",
  },
  {
    name: "json: a comma allowed after the last property of a closed object",
    file: "runtime/server/json-machine.ts",
    find: 'if (c === ",") return keysLeft(frame) ? [{ ...reset, s: 3 }] : undefined;',
    replace: 'if (c === ",") return [{ ...reset, s: 3 }];',
    tests: [JSON_PREFIXES],
  },
  {
    name: "json: string maxLength off by one",
    file: "runtime/server/json-machine.ts",
    find: "if (frame.length >= frame.maxLength) return undefined;",
    replace: "if (frame.length > frame.maxLength) return undefined;",
    tests: [JSON_PREFIXES],
  },
  {
    name: "json: an integer takes an exponent",
    file: "runtime/server/json-machine.ts",
    find: "      if (frame.integer) return undefined;",
    replace: '      if (frame.integer && c === ".") return undefined;',
    tests: [JSON_PREFIXES],
  },
  {
    name: "json: whitespace runs of 5",
    file: "runtime/server/json-machine.ts",
    find: "const MAX_WHITESPACE = 4;",
    replace: "const MAX_WHITESPACE = 5;",
    tests: [JSON_PREFIXES],
  },
  {
    name: "KV row store: a run of appended rows written one row early",
    file: "runtime/engine/kv-cache/row-store.ts",
    find: "fp.set(rows.subarray(r * width, (r + m) * width), (length - quantized) * width);",
    replace: "fp.set(rows.subarray(r * width, (r + m) * width), Math.max(0, length - quantized - 1) * width);",
    tests: ["test/kv-cache/kv-quant.test.ts"],
    filter: "row store",
  },
  {
    name: "KV row store: the oldest block quantised from a stale copy",
    file: "runtime/engine/kv-cache/row-store.ts",
    find: "    rows.set(fp.subarray(0, block * width));",
    replace: "    if (quantized === 0) rows.set(fp.subarray(0, block * width));",
    tests: ["test/kv-cache/kv-quant.test.ts"],
    filter: "row store",
  },
  {
    name: "XQuant: a tile's latent streams read back into the first stream's columns",
    file: "runtime/engine/kv-cache/xquant-cache.ts",
    find: "for (let c = 0; c < s.width; c++) out[r * width + col + c] = part[r * s.width + c];",
    replace: "for (let c = 0; c < s.width; c++) out[r * width + c] = part[r * s.width + c];",
    tests: ["test/kv-cache/rematerialize.test.ts"],
  },
  {
    name: "XQuant: appended rows split into streams from the first stream's columns",
    file: "runtime/engine/kv-cache/xquant-cache.ts",
    find: "for (let c = 0; c < s.width; c++) part[r * s.width + c] = rows[r * width + col + c];",
    replace: "for (let c = 0; c < s.width; c++) part[r * s.width + c] = rows[r * width + c];",
    tests: ["test/kv-cache/rematerialize.test.ts"],
  },
];
