// `--kv auto`: the fastest mode whose whole cache fits the budget at the context length, a
// clear error naming bytes when none does; and the sizes behind it for the 1.1B shape.
import { afterAll, describe, expect, test } from "bun:test";
import { AUTO_ORDER, chooseKvMode, kvCacheSize, parseBytes } from "../../runtime/engine/kv-cache/auto.ts";
import { InvalidArgumentError } from "../../runtime/errors.ts";
import { backendFor, backends, MHA } from "./helpers.ts";

afterAll(async () => {
  for (const b of backends) await b.dispose();
});

// 1.1B shape: hidden 2048, 22 layers, 32 query / 4 kv heads of 64, context 4096.
const TINYLLAMA = { numLayers: 22, numHeads: 32, numKvHeads: 4, headDim: 64, contextLength: 4096 };

describe("kv auto", () => {
  test("bytes per token of the 1.1B shape", () => {
    const perToken = Object.fromEntries(AUTO_ORDER.map((m) => [m, kvCacheSize(m, TINYLLAMA, 2048).bytesPerToken]));
    expect(perToken.f16).toBe(22 * 2 * 256 * 2); // 22528
    expect(perToken.q8).toBe(22 * (2 * 256 + (4 * 256) / 32 + 4 * 8)); // 12672
    expect(perToken.q4).toBe(22 * (2 * 128 + (4 * 256) / 32 + 4 * 8)); // 7040
    expect(perToken.xquant).toBe(22 * (128 + 32 + 128 + 8)); // latents, rank 256 at 4 bits: 6512
    expect(perToken["xquant-cl"]).toBe(1024 + 64 + 21 * (768 + 64)); // X of hidden 2048: 18560
  });

  test("picks the fastest mode that fits and refuses an impossible budget naming the bytes", () => {
    // 134M shape (multi-head: xquant caches X, half of K+V before quantisation).
    const shape = { numLayers: 12, numHeads: 12, numKvHeads: 12, headDim: 64, contextLength: 4096 };
    const sizes = Object.fromEntries(AUTO_ORDER.map((m) => [m, kvCacheSize(m, shape, 768).totalBytes]));
    expect(chooseKvMode(sizes.f16, shape, 768).mode).toBe("f16");
    expect(chooseKvMode(sizes.f16 - 1, shape, 768).mode).toBe("q8");
    expect(chooseKvMode(sizes.q8 - 1, shape, 768).mode).toBe("q4");
    expect(chooseKvMode(sizes.q4 - 1, shape, 768).mode).toBe("xquant");
    // On the grouped-query 1.1B shape the latent codec's matrices make xquant larger than q4 in total.
    const gqa = Object.fromEntries(AUTO_ORDER.map((m) => [m, kvCacheSize(m, TINYLLAMA, 2048).totalBytes]));
    expect(chooseKvMode(gqa.q8 - 1, TINYLLAMA, 2048).mode).toBe("q4");
    const smallest = Math.min(...Object.values(sizes));
    let error: unknown;
    try {
      chooseKvMode(smallest - 1, shape, 768);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(String(error)).toContain(`at least ${smallest} bytes`);
    expect(String(error)).toContain(`f16 needs ${sizes.f16} bytes`);
    expect(() => chooseKvMode(0, TINYLLAMA, 2048)).toThrow(InvalidArgumentError);
  });

  test("the backend builds the chosen mode", async () => {
    // A context long enough for the compact modes' per-token savings to outweigh their fixed
    // staging and scratch on this tiny model.
    const shape = { numLayers: 3, numHeads: 4, numKvHeads: 4, headDim: 32, contextLength: 4096 };
    const budget = kvCacheSize("f16", shape, 128).totalBytes - 1;
    const chosen = chooseKvMode(budget, shape, 128).mode;
    expect(chosen).not.toBe("f16");
    expect((await backendFor(MHA, "auto", { kvBudget: budget, contextLength: 4096 })).cache.mode).toBe(chosen);
    expect((await backendFor(MHA, "auto")).cache.mode).toBe("f16");
    await expect(backendFor(MHA, "auto", { kvBudget: 1000 })).rejects.toThrow(/no KV cache mode fits --kv-budget 1000 bytes/);
  });

  test("byte counts parse with units", () => {
    expect(parseBytes("200000")).toBe(200000);
    expect(parseBytes("64MB")).toBe(64 * 1024 ** 2);
    expect(parseBytes("1.5GiB")).toBe(1.5 * 1024 ** 3);
    expect(() => parseBytes("lots")).toThrow(InvalidArgumentError);
  });
});
