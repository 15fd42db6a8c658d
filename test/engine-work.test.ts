// The work the engine does, counted at the backend (test/counting-backend.ts), not only the
// text it returns: a prompt extending the cached one feeds only its new tokens, a restored
// session is not prefilled again, and an abort costs at most one token beyond those read.
// Each break here leaves the output unchanged, so only counting catches it
// (test/mutations/work-done.ts).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importModel } from "../runtime/import/index.ts";
import { packedModelFromBytes } from "../runtime/engine/packed-model.ts";
import type { Engine, GenerateEvent, GenerateOptions } from "../runtime/engine/types.ts";
import type { KvMode } from "../runtime/engine/kv-cache/types.ts";
import type { ModelSource } from "../runtime/models/types.ts";
import { loadTokenizerFile } from "../runtime/tokenizer/load-file.ts";
import { countingReferenceEngine, countingWasmEngine } from "./counting-backend.ts";
import { headerFor, packModel } from "./fixtures/pack-model.ts";
import { createRandomModel, type RandomModelSpec } from "./fixtures/random-model.ts";
import { haveFiles, modelPath } from "./shared-data.ts";

const available = haveFiles("stories260K/stories260K.bin", "stories260K/tok512.bin");
const GREEDY: GenerateOptions = { temperature: 0, stopAtEos: false };

async function run(stream: AsyncGenerator<GenerateEvent>) {
  const ids: number[] = [];
  let done: Extract<GenerateEvent, { type: "done" }> | undefined;
  for await (const event of stream) {
    if (event.type === "token") ids.push(event.id);
    if (event.type === "done") done = event;
  }
  return { ids, done: done! };
}

async function stories(): Promise<ModelSource> {
  return importModel(modelPath("stories260K/stories260K.bin"), { tokenizer: modelPath("stories260K/tok512.bin") });
}

describe.skipIf(!available)("prefix reuse, counted (stories260K, reference backend)", () => {
  test("a prompt extending the cached tokens feeds only the tokens after them; a diverging one rewinds to the fork", async () => {
    const source = await stories();
    const { engine, counter } = countingReferenceEngine(source);
    const first = engine.tokenizer.encode("Once upon a time, there was a dog", { addSpecialTokens: true });
    const firstRun = await run(engine.generate(first, { ...GREEDY, maxTokens: 6 }));
    expect(firstRun.ids.length).toBe(6);
    // The cache now holds the prompt and every generated token but the last (never fed back).
    const cachedLength = first.length + firstRun.ids.length - 1;

    const second = [...first, ...firstRun.ids, ...engine.tokenizer.encode(" named Max. He", { addSpecialTokens: false })];
    const mark = counter.mark();
    const secondRun = await run(engine.generate(second, { ...GREEDY, maxTokens: 4 }));
    const [prefill, ...decode] = counter.since(mark);
    expect(prefill).toEqual({ tokens: second.slice(cachedLength), position: cachedLength });
    expect(decode.map((call) => call.tokens)).toEqual(secondRun.ids.slice(0, -1).map((id) => [id]));

    // The control: a fresh engine feeds the whole prompt and produces the same tokens.
    const fresh = countingReferenceEngine(source);
    expect((await run(fresh.engine.generate(second, { ...GREEDY, maxTokens: 4 }))).ids).toEqual(secondRun.ids);
    expect(fresh.counter.calls[0]).toEqual({ tokens: second, position: 0 });

    // A prompt that leaves the cached tokens at position 3 keeps 3 and feeds the rest.
    const diverging = [...first.slice(0, 3), first[3] === 7 ? 8 : 7, ...first.slice(4)];
    const rewindMark = counter.mark();
    await run(engine.generate(diverging, { ...GREEDY, maxTokens: 1 }));
    expect(counter.since(rewindMark)).toEqual([{ tokens: diverging.slice(3), position: 3 }]);
  });
});

describe.skipIf(!available)("abort, counted (stories260K, reference backend)", () => {
  test("an AbortSignal raised after reading 3 tokens costs at most the one forward of the last token read", async () => {
    const { engine, counter } = countingReferenceEngine(await stories());
    const controller = new AbortController();
    const read: number[] = [];
    let done: Extract<GenerateEvent, { type: "done" }> | undefined;
    const mark = counter.mark();
    for await (const event of engine.generate("Once", { ...GREEDY, maxTokens: 100, signal: controller.signal })) {
      if (event.type === "token" && read.push(event.id) === 3) controller.abort();
      if (event.type === "done") done = event;
    }
    expect(read.length).toBe(3);
    expect(done!.finishReason).toBe("abort");
    // At most one token more than was read is sampled...
    expect(done!.usage.completionTokens).toBeLessThanOrEqual(read.length + 1);
    // ...and the only decode work beyond what the reader needed is feeding back the last token read.
    const decode = counter.since(mark).slice(1).map((call) => call.tokens);
    expect(decode.length).toBeLessThanOrEqual(read.length);
    expect(decode).toEqual(read.slice(0, decode.length).map((id) => [id]));
  });
});

describe.skipIf(!available)("session restore, counted (random packed model, WASM backend)", () => {
  const dir = mkdtempSync(join(tmpdir(), "crumb-work-"));
  const engines: Engine[] = [];
  afterAll(async () => {
    for (const engine of engines) await engine.dispose();
    rmSync(dir, { recursive: true, force: true });
  });
  const spec: RandomModelSpec = { arch: "llama", hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 512, seed: 21 };

  for (const kv of ["f16", "q8", "xquant"] as const satisfies readonly KvMode[]) {
    test(`--kv ${kv}: the restored tokens are not fed again; only the tokens after them are`, async () => {
      const source = createRandomModel(spec, loadTokenizerFile(modelPath("stories260K/tok512.bin")));
      const tensors = packModel(source, { kind: "bitplane", bits: 4, group: 32, scales: "zero-point" }, { kind: "q8", group: 32 });
      const metadata = { path: "tiny.q4", tokenizer: source.tokenizer, chatTemplates: {}, generationConfig: {} };
      const open = async () => {
        const opened = await countingWasmEngine(packedModelFromBytes(headerFor(source), tensors), metadata, { kv, contextLength: 96, threads: 1 });
        engines.push(opened.engine);
        return opened;
      };
      const first = [1, 37, 80, 141, 205, 266, 301, 349, 402, 455, 13, 99];
      const saved = await open();
      const firstRun = await run(saved.engine.generate(first, { ...GREEDY, maxTokens: 6 }));
      const session = join(dir, `${kv}.session`);
      expect(await saved.engine.saveSession(session)).toBeGreaterThan(0);

      const restored = await open();
      const count = await restored.engine.restoreSession(session);
      expect(count).toBe(first.length + firstRun.ids.length - 1);
      expect(restored.counter.calls).toEqual([]);

      const second = [...first, ...firstRun.ids, 60, 61, 62, 63];
      const secondRun = await run(restored.engine.generate(second, { ...GREEDY, maxTokens: 4 }));
      const [prefill, ...decode] = restored.counter.calls;
      expect(prefill).toEqual({ tokens: second.slice(count), position: count });
      expect(decode.length).toBe(secondRun.ids.length - 1);

      // Same tokens as the engine that never stopped (its cache already held the prefix).
      const uninterrupted = await run(saved.engine.generate(second, { ...GREEDY, maxTokens: 4 }));
      expect(secondRun.ids).toEqual(uninterrupted.ids);
    });
  }
});
