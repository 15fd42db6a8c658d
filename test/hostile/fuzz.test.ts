// A seeded fuzz of every route: 600 malformed requests, each built from a valid one by a
// mutation that is sure to make it invalid (a cut or a stray byte in the JSON, a field of the
// wrong type or range, an unknown field, a bad message, a broken schema, nesting beyond the
// limit, a body that is not JSON, an oversized header, a wrong method or path). Each must get
// the status its mutation calls for with an OpenAI error body, none may reach the model, and
// /health must answer within the bound of helpers.ts throughout. In-process (app.fetch).
import { beforeAll, describe, expect, test } from "bun:test";
import type { Hono } from "hono";
import { createApp } from "../../runtime/server/app.ts";
import type { AppEnv } from "../../runtime/server/context.ts";
import { haveFiles } from "../shared-data.ts";
import {
  expectOpenAIError,
  healthBoundMs,
  jsonRequest,
  seededRandom,
  startHealthProbe,
  type TimedEngine,
  timedStoriesEngine,
} from "./helpers.ts";

/** Slices of model work stretch on a loaded machine; the bounds are by counting, this limit is a backstop. */
const SLOW = 60_000;

const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin");
const SEED = 16;
const COUNT = 600;

type Body = Record<string, unknown>;
interface Route {
  readonly path: string;
  readonly valid: () => Body;
  /** Per field, values that are always refused. */
  readonly bad: Record<string, readonly unknown[]>;
}

const user = [{ role: "user", content: "Hi" }];
const SAMPLING_BAD: Record<string, readonly unknown[]> = {
  max_tokens: ["10", -1, 0, 1.5, 1e30, true, [4]],
  temperature: ["hot", -0.1, 2.5, 1e308, {}],
  top_p: [1.5, -1, "x"],
  top_k: [-5, 0.5, "k"],
  min_p: [3, -0.2],
  seed: [1.5, "x", 1e300],
  stop: [5, [1, 2], Array(20).fill("a"), ["x".repeat(300)]],
  stream: ["yes", 1, {}],
  n: [2, 0, "2"],
  presence_penalty: [5, "x"],
  frequency_penalty: [-9],
  repetition_penalty: [0, 11],
  logit_bias: [{ "1": 5 }, 3],
  stream_options: [3, { include_usage: "yes" }, { extra: true }],
  model: [5, {}],
};
const SCHEMAS_BAD: readonly unknown[] = [
  { type: "string", pattern: "x" },
  { type: "number", minimum: 3, maximum: 2 },
  { $ref: "#/$defs/none" },
  { $ref: "http://example.com/s.json" },
  { type: "array", minItems: 1e9 },
  { type: "object", properties: { a: { $ref: "#" } }, required: ["a"] },
  { type: "wizard" },
  { allOf: [{ type: "string" }, { type: "integer" }] },
  { type: "object", additionalProperties: { type: "string" } },
  { anyOf: [] },
  [],
  "schema",
];

const ROUTES: readonly Route[] = [
  {
    path: "/v1/chat/completions",
    valid: () => ({ messages: user, max_tokens: 4 }),
    bad: {
      ...SAMPLING_BAD,
      messages: [
        "Hi",
        5,
        [],
        [null],
        [{ role: 5, content: "x" }],
        [{ role: "wizard", content: "x" }],
        [{ role: "user" }],
        [{ role: "user", content: 7 }],
        [{ role: "user", content: "x", extra: 1 }],
        [{ role: "tool", content: "x" }],
        [{ role: "user", content: [{ type: "image_url" }] }],
        [{ role: "assistant", tool_calls: "x" }],
      ],
      logprobs: ["true", 1],
      top_logprobs: [50, -1],
      tools: ["x", [{ type: "function" }], [1]],
      tool_choice: ["sometimes", { type: "function", function: { name: "nope" } }],
      response_format: [
        "json",
        { type: "xml" },
        { type: "json_schema" },
        ...SCHEMAS_BAD.map((schema) => ({ type: "json_schema", json_schema: { name: "x", schema } })),
      ],
      chat_template: [5],
    },
  },
  {
    path: "/v1/completions",
    valid: () => ({ prompt: "Once", max_tokens: 4 }),
    bad: {
      ...SAMPLING_BAD,
      prompt: [5, null, {}, [], [[1, "a"]], ["a", "b"], [1, 2, 99999], "Once upon a time. ".repeat(400)],
      echo: ["y", 1],
      logprobs: [10, true, -1],
      best_of: [3, "x"],
      suffix: ["y"],
      response_format: ["json", ...SCHEMAS_BAD.map((schema) => ({ type: "json_schema", json_schema: { name: "x", schema } }))],
    },
  },
  {
    path: "/v1/embeddings",
    valid: () => ({ input: "hello" }),
    bad: {
      input: [5, [], null, {}, [[-1]], [[]], [null], [[1e9]], Array(300).fill("x"), "story ".repeat(200)],
      encoding_format: ["hex", 5],
      dimensions: [0, -3, 1.5, "8", 100_000],
      model: [5],
      user: [7],
    },
  },
  {
    path: "/tokenize",
    valid: () => ({ content: "hello" }),
    bad: { content: [5, null, [], {}], add_special: ["yes", 1], with_pieces: ["no"] },
  },
  { path: "/detokenize", valid: () => ({ tokens: [1, 2] }), bad: { tokens: [[1.5], "abc", [-1], [1e9], {}, [null]] } },
];

const GET_ROUTES = ["/v1/models", "/v1/models/stories260K.bin", "/health", "/metrics"];

interface Case {
  readonly request: Request;
  readonly status: number;
  readonly why: string;
}

function makeCase(random: () => number): Case {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)];
  const route = pick(ROUTES);
  const kind = pick(
    ["truncate", "byte", "field", "field", "field", "unknown", "deep", "shape", "media", "header", "method", "path"] as const,
  );
  const text = JSON.stringify(route.valid());
  switch (kind) {
    case "truncate": {
      const cut = 1 + Math.floor(random() * (text.length - 1));
      return { request: jsonRequest(route.path, text.slice(0, cut)), status: 400, why: `${route.path} cut at ${cut}` };
    }
    case "byte": {
      // Control characters are invalid in and out of strings (tab, LF, CR aside); 0xff and 0xc0 are never UTF-8.
      const bad = pick([0x00, 0x01, 0x08, 0x0b, 0x1f, 0xff, 0xc0, 0xfe]);
      const bytes = new TextEncoder().encode(text);
      const at = Math.floor(random() * (bytes.length + 1));
      const body = new Uint8Array([...bytes.subarray(0, at), bad, ...bytes.subarray(at)]);
      return {
        request: new Request(`http://crumb.test${route.path}`, { method: "POST", body, headers: { "content-type": "application/json" } }),
        status: 400,
        why: `${route.path} byte ${bad} at ${at}`,
      };
    }
    case "field": {
      const field = pick(Object.keys(route.bad));
      const value = pick(route.bad[field]);
      const body = { ...route.valid(), [field]: value };
      // stream_options is checked against stream: send it with stream on, so the value itself is what fails.
      if (field === "stream_options") body.stream = true;
      return { request: jsonRequest(route.path, body), status: 400, why: `${route.path} ${field}=${JSON.stringify(value)?.slice(0, 80)}` };
    }
    case "unknown": {
      const name = `zz_${Math.floor(random() * 1e6).toString(36)}`;
      return {
        request: jsonRequest(route.path, { ...route.valid(), [name]: random() }),
        status: 400,
        why: `${route.path} unknown ${name}`,
      };
    }
    case "deep": {
      const depth = 65 + Math.floor(random() * 2000);
      const body = `{"x":${"[".repeat(depth)}${"]".repeat(depth)}}`;
      return { request: jsonRequest(route.path, body), status: 400, why: `${route.path} depth ${depth}` };
    }
    case "shape": {
      const body = pick(["[]", '"text"', "42", "null", "true", "", "   ", "{}{}", '[{"a":1}]']);
      return { request: jsonRequest(route.path, body), status: 400, why: `${route.path} body ${JSON.stringify(body)}` };
    }
    case "media": {
      const type = pick([
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        undefined,
      ]);
      const headers: Record<string, string> = type === undefined ? {} : { "content-type": type };
      return {
        request: new Request(`http://crumb.test${route.path}`, { method: "POST", body: type === undefined ? null : text, headers }),
        status: 415,
        why: `${route.path} as ${type}`,
      };
    }
    case "header": {
      const size = 9 * 1024 + Math.floor(random() * 90 * 1024);
      const name = pick(["authorization", "x-filler", "cookie", "user-agent"]);
      return {
        request: jsonRequest(route.path, text, { headers: { [name]: "a".repeat(size) } }),
        status: 431,
        why: `${route.path} ${name} of ${size} bytes`,
      };
    }
    case "method": {
      const useGet = random() < 0.5;
      const path = useGet ? route.path : pick(GET_ROUTES);
      const method = useGet ? pick(["GET", "PUT", "DELETE", "PATCH"]) : pick(["PUT", "DELETE", "PATCH"]);
      return { request: new Request(`http://crumb.test${path}`, { method }), status: 404, why: `${method} ${path}` };
    }
    case "path": {
      const path = pick([
        "/v1/nothing",
        "/v2/chat/completions",
        "/v1/models/nope",
        "/v1/chat/completion",
        "/%2e%2e/etc/passwd",
        "/v1//embeddings",
      ]);
      return { request: new Request(`http://crumb.test${path}`), status: 404, why: `GET ${path}` };
    }
  }
}

describe.skipIf(!available)("fuzz: malformed requests on every route", () => {
  let timed: TimedEngine;
  let app: Hono<AppEnv>;
  const log: string[] = [];
  beforeAll(async () => {
    timed = await timedStoriesEngine();
    app = createApp(timed.engine, { log: (line) => log.push(line) });
  });

  test(
    `${COUNT} seeded malformed requests: each the status its mutation calls for, an OpenAI error, no model work, /health answering`,
    async () => {
      const random = seededRandom(SEED);
      const cases = Array.from({ length: COUNT }, () => makeCase(random));
      const routes = new Set(cases.map((c) => new URL(c.request.url).pathname));
      for (const path of [...ROUTES.map((r) => r.path), ...GET_ROUTES]) expect(routes.has(path)).toBe(true);
      const mark = timed.counter.mark();
      const probe = startHealthProbe((request) => app.fetch(request));
      for (const { request, status, why } of cases) {
        // Requests from clients arrive as separate events; awaiting app.fetch alone would chain them
        // all in one macrotask (a refused request never waits for I/O), starving the probe's timer.
        await new Promise((resolve) => setImmediate(resolve));
        try {
          await expectOpenAIError(await app.fetch(request), status);
        } catch (error) {
          throw new Error(`${why}: ${(error as Error).message}`);
        }
      }
      const { worstMs, probes } = await probe.stop();
      if (process.env.CRUMB_HOSTILE_REPORT) console.error(`fuzz: worst /health ${worstMs.toFixed(1)} ms over ${probes} probes`);
      expect(probes).toBeGreaterThan(0);
      expect(worstMs).toBeLessThan(healthBoundMs(timed.forwards));
      expect(timed.counter.since(mark).length).toBe(0);
      expect(log.filter((line) => line.startsWith("error "))).toEqual([]);
      const ok = await (await app.fetch(jsonRequest("/v1/completions", { prompt: "Once", max_tokens: 3 }))).json();
      expect(ok.choices[0].finish_reason).toBe("length");
    },
    SLOW,
  );
});
