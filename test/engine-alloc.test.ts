// A decode step of the WASM backend leaves nothing behind in the JS heap: the activations live
// in the run state in WASM memory, the call plans are built during warm-up, and the logits come
// back as a view. Counted two ways, never timed:
// - under Bun (JavaScriptCore), the live heap after a full collection does not grow over 200
//   decode tokens (values, compiled code aside; bytes within 1 KiB), for 1 and 2 threads and
//   for an f16 and a q8 cache;
// - under Deno (V8, which counts allocations as they happen until the next collection,
//   test/fixtures/alloc-probe.ts), the bytes allocated over 200 tokens stay below what a single
//   copy of the logits per token would cost. V8 boxes an f32 argument of a WebAssembly call
//   (RMSNorm's eps, attention's scale) in a 16-byte number per call, and each clock reading of
//   a spinning pool thread: engine costs that are neither the activations nor the plans, which
//   JavaScriptCore (NaN-boxing) does not have.
import { afterAll, describe, expect, test } from "bun:test";
import { fullGC, heapStats } from "bun:jsc";
import { fileURLToPath } from "node:url";
import { packedModelFromBytes } from "../runtime/engine/packed-model.ts";
import { createWasmBackend, type WasmBackend } from "../runtime/engine/wasm-backend.ts";
import { headerFor, packModel } from "./fixtures/pack-model.ts";
import { createRandomModel } from "./fixtures/random-model.ts";

const SPEC = { arch: "qwen2", hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 512, seed: 3 } as const;
const backends: WasmBackend[] = [];
afterAll(async () => {
  for (const b of backends) await b.dispose();
});

/** Cells the JIT makes while code tiers up (compiled code, shapes): not the program's values. */
const COMPILER_CELLS = /CodeBlock|Executable|Structure|PropertyTable|SymbolTable|LexicalEnvironment|JSScope/;

/**
 * Live values (objects, arrays, typed arrays, closures, strings, ...) after a full collection,
 * compiler cells aside (the live byte total moves with them, so it is not compared). Only a
 * number is kept: the stats object itself (a table of hundreds of entries) is garbage by the
 * next collection.
 */
function liveHeap(): { objects: number } {
  fullGC();
  let objects = 0;
  for (const [type, count] of Object.entries(heapStats().objectTypeCounts)) if (!COMPILER_CELLS.test(type)) objects += count;
  return { objects };
}

function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

describe("live heap over 200 decode tokens (Bun)", () => {
  for (const [kv, threads] of [["f16", 1], ["f16", 2], ["q8", 1]] as const) {
    test(`--kv ${kv}, ${threads} thread(s): no live value more after a full collection`, async () => {
      const source = createRandomModel(SPEC);
      const tensors = packModel(source, { kind: "bitplane", bits: 2, group: 32, scales: "zero-point" }, { kind: "q8", group: 32 });
      const backend = await createWasmBackend(packedModelFromBytes(headerFor(source), tensors), { kv, threads, contextLength: 1024 });
      backends.push(backend);
      const step = [1];
      const decode = (tokens: number) => {
        for (let t = 0; t < tokens; t++) step[0] = argmax(backend.forward(step));
      };
      backend.forward([1, 5, 9, 13, 17, 21]);
      decode(300); // warm-up: plans built, functions compiled, the q8 cache's first blocks quantised
      const before = liveHeap();
      decode(200);
      const after = liveHeap();
      // The q8 cache keeps its compact rows in JS arrays allocated up front; nothing grows per
      // token. A handful of cells may come and go with the engine itself (a lazily made string,
      // a deoptimisation's objects): far below the 200 one retained object per token would add.
      expect(after.objects - before.objects).toBeLessThan(20);
    });
  }

  test("the check sees retained objects (it is not vacuous)", () => {
    const kept: Float32Array[] = [];
    const before = liveHeap();
    for (let t = 0; t < 200; t++) kept.push(new Float32Array(4));
    const after = liveHeap();
    expect(after.objects - before.objects).toBeGreaterThanOrEqual(200);
    expect(kept.length).toBe(200);
  });
});

describe("bytes allocated per decode token (Deno, V8)", () => {
  // One thread: a waiting pool thread polls the clock, and V8 boxes each reading.
  for (const threads of [1]) {
    test(`--kv f16, ${threads} thread: under a logits copy per token`, async () => {
      const script = fileURLToPath(new URL("./fixtures/alloc-probe.ts", import.meta.url));
      const proc = Bun.spawn(["npx", "--no-install", "deno", "run", "-A", "--quiet", "--v8-flags=--expose-gc", script, "f16", String(threads)], {
        stdout: "pipe",
        stderr: "pipe",
      });
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      expect({ code, stderr: code === 0 ? "" : stderr }).toEqual({ code: 0, stderr: "" });
      const { windows } = JSON.parse(stdout) as { windows: Record<string, number> };
      // A copy of the probe's logits (4096 floats, 16 KiB) per token: 160 KiB over 10 tokens (a
      // window short enough for no collection to hide it), 3.2 MiB over 200.
      const logitsBytes = 4096 * 4;
      expect(windows["10"] / 10).toBeLessThan(logitsBytes / 4);
      expect(windows["200"] / 200).toBeLessThan(logitsBytes / 4);
    }, 60_000);
  }
});
