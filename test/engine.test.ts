// The Engine contract on real weights (stories260K) and on a random model with a byte-level
// tokenizer: streaming text, stop strings across token boundaries, abort, logprobs,
// penalties, prefix reuse, context errors, embeddings.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { importModel } from "../runtime/import/index.ts";
import { createEngine } from "../runtime/engine/engine.ts";
import type { Engine, GenerateEvent, GenerateOptions } from "../runtime/engine/types.ts";
import { ContextLengthError, InvalidArgumentError } from "../runtime/errors.ts";
import { createRandomModel } from "./fixtures/random-model.ts";
import { loadFixtureTokenizer } from "./fixtures/write-model.ts";
import { haveFiles, modelPath } from "./shared-data.ts";

const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin", "stories260K/expected_greedy_t0.json");

async function storiesEngine(contextLength?: number): Promise<Engine> {
  const source = await importModel(modelPath("stories260K/stories260K.bin"), { tokenizer: modelPath("stories260K/tok512.bin") });
  return createEngine(source, { contextLength });
}

async function collect(stream: AsyncGenerator<GenerateEvent>) {
  const tokens: number[] = [];
  let text = "";
  let done: Extract<GenerateEvent, { type: "done" }> | undefined;
  const logprobs = [];
  for await (const event of stream) {
    if (event.type === "done") done = event;
    else {
      text += event.text;
      if (event.type === "token") {
        tokens.push(event.id);
        if (event.logprob) logprobs.push(event.logprob);
      }
    }
  }
  return { tokens, text, done: done!, logprobs };
}

const GREEDY: GenerateOptions = { temperature: 0 };

describe.skipIf(!available)("engine on stories260K", () => {
  const golden = available ? JSON.parse(readFileSync(modelPath("stories260K/expected_greedy_t0.json"), "utf8")) : undefined;

  test("greedy from an empty prompt streams the golden ids and text", async () => {
    const engine = await storiesEngine();
    const { tokens, text, done } = await collect(engine.generate("", { ...GREEDY, maxTokens: 100 }));
    expect(tokens).toEqual(golden.ids.slice(0, 100));
    expect(golden.text.startsWith(text)).toBe(true);
    expect(done.finishReason).toBe("length");
    expect(done.usage).toEqual({ promptTokens: 1, completionTokens: 100 });
    expect(done.text).toBe(text);
  });

  test("a stop string spanning several tokens ends generation before it and is never emitted", async () => {
    const engine = await storiesEngine();
    const { text, done } = await collect(engine.generate("", { ...GREEDY, maxTokens: 100, stop: ["little girl"] }));
    expect(text).toBe("Once upon a time, there was a ");
    expect(done.finishReason).toBe("stop");
  });

  test("aborting stops within one token", async () => {
    const engine = await storiesEngine();
    const controller = new AbortController();
    let seen = 0;
    let finish = "";
    for await (const event of engine.generate("", { ...GREEDY, maxTokens: 100, signal: controller.signal })) {
      if (event.type === "token" && ++seen === 3) controller.abort();
      if (event.type === "done") finish = event.finishReason;
    }
    expect(seen).toBe(3);
    expect(finish).toBe("abort");
  });

  test("logprobs: the greedy token is the top alternative and probabilities are sane", async () => {
    const engine = await storiesEngine();
    const { logprobs } = await collect(engine.generate("", { ...GREEDY, maxTokens: 5, logprobs: true, topLogprobs: 3 }));
    expect(logprobs.length).toBe(5);
    for (const lp of logprobs) {
      expect(lp.logprob).toBeLessThanOrEqual(0);
      expect(lp.top.length).toBe(3);
      expect(lp.top[0].id).toBe(lp.id);
      expect(lp.top[0].logprob).toBeGreaterThanOrEqual(lp.top[1].logprob);
    }
    expect(logprobs[0].token).toBe("Once");
  });

  test("a prompt extending the previous one reuses the cache and gives the same output as a fresh engine", async () => {
    const engine = await storiesEngine();
    await collect(engine.generate("Once upon a time, there was a dog", { ...GREEDY, maxTokens: 10 }));
    const reused = await collect(engine.generate("Once upon a time, there was a dog named Max. He", { ...GREEDY, maxTokens: 20 }));
    const fresh = await collect((await storiesEngine()).generate("Once upon a time, there was a dog named Max. He", { ...GREEDY, maxTokens: 20 }));
    expect(reused.tokens).toEqual(fresh.tokens);
    // And a shorter, different prompt after that.
    const other = await collect(engine.generate("Lily", { ...GREEDY, maxTokens: 10 }));
    const otherFresh = await collect((await storiesEngine()).generate("Lily", { ...GREEDY, maxTokens: 10 }));
    expect(other.tokens).toEqual(otherFresh.tokens);
  });

  test("penalties change the output; a seed reproduces sampling", async () => {
    const engine = await storiesEngine();
    const plain = await collect(engine.generate("", { ...GREEDY, maxTokens: 60 }));
    const penalised = await collect(engine.generate("", { ...GREEDY, maxTokens: 60, repetitionPenalty: 1.5, frequencyPenalty: 1 }));
    expect(penalised.tokens).not.toEqual(plain.tokens);
    const a = await collect(engine.generate("Tom", { temperature: 1, seed: 11, maxTokens: 30 }));
    const b = await collect(engine.generate("Tom", { temperature: 1, seed: 11, maxTokens: 30 }));
    expect(a.tokens).toEqual(b.tokens);
  });

  test("prompt plus max tokens beyond the context throws ContextLengthError before any work", async () => {
    const engine = await storiesEngine(32);
    expect(() => engine.generate("Once upon a time", { maxTokens: 30 })).toThrow(ContextLengthError);
    expect(() => engine.generate("Once", { temperature: -1 })).toThrow(InvalidArgumentError);
    expect(() => engine.generate("Once", { presencePenalty: 5 })).toThrow(/presence_penalty/);
  });

  test("embeddings are unit vectors, deterministic, and differ between texts and poolings", async () => {
    const engine = await storiesEngine();
    const [a, a2, b] = await engine.embed(["The cat sat on the mat.", "The cat sat on the mat.", "Lily went to the park."]);
    const dot = (x: Float32Array, y: Float32Array) => x.reduce((s, v, i) => s + v * y[i], 0);
    expect(a.length).toBe(64);
    expect(dot(a, a)).toBeCloseTo(1, 5);
    expect(Array.from(a2)).toEqual(Array.from(a));
    expect(dot(a, b)).toBeLessThan(0.9999);
    const [last] = await engine.embed(["The cat sat on the mat."], { pooling: "last" });
    expect(Array.from(last)).not.toEqual(Array.from(a));
    expect(engine.pooling).toBe("mean");
    // A model that declares last-token pooling gets it by default.
    const source = await importModel(modelPath("stories260K/stories260K.bin"), { tokenizer: modelPath("stories260K/tok512.bin") });
    const declared = createEngine({ ...source, pooling: "last" });
    expect(declared.pooling).toBe("last");
    expect(Array.from((await declared.embed(["The cat sat on the mat."]))[0])).toEqual(Array.from(last));
  });
});

describe("engine streaming with a byte-level tokenizer", () => {
  const withTokenizer = haveFiles("hf-tokenizers/gpt2/tokenizer.json");
  test.skipIf(!withTokenizer)("text deltas concatenate to the decoded ids, at high temperature", async () => {
    const source = createRandomModel(
      { arch: "qwen2", hidden: 32, intermediate: 64, layers: 1, heads: 2, vocab: 50257, seed: 3 },
      loadFixtureTokenizer("gpt2"),
    );
    const engine = createEngine(source, { contextLength: 128 });
    const { tokens, text } = await collect(engine.generate("Hello", { temperature: 2, seed: 5, maxTokens: 40, stopAtEos: false }));
    expect(tokens.length).toBe(40);
    expect(text).toBe(engine.tokenizer.decode(tokens, { skipSpecialTokens: true }));
  });
});
