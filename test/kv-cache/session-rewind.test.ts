// Sessions and rewinds: a restored session continues exactly as the uninterrupted run would
// (greedy ids and logits), an XQuant session restores without a prefill, the file holds the
// compact form, and truncating (prefix reuse) then regenerating matches a fresh run: exactly
// for f32/f16 and after a reset, within a KL bound for compressed modes (positions that left
// the full-precision window before the rewind keep their quantised form).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeSession, modelKey, restoreSession, saveSession } from "../../runtime/engine/kv-cache/session-file.ts";
import { KV_MODES } from "../../runtime/engine/kv-cache/types.ts";
import type { WasmBackend } from "../../runtime/engine/wasm-backend.ts";
import { FormatError, InvalidArgumentError, ShapeError } from "../../runtime/errors.ts";
import { createRandomModel } from "../fixtures/random-model.ts";
import { backendFor, backends, compareStreams, GQA, MHA, randomTokens, streamLogits } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "crumb-kv-"));
afterAll(async () => {
  for (const b of backends) await b.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const OPTIONS = { kivi: { window: 8, group: 8 }, xquant: { window: 8 }, xquantCl: { window: 8 } };
const argmax = (a: Float32Array) => a.reduce((best, x, i) => (x > a[best] ? i : best), 0);

/** Greedy decoding from the backend's current state: `steps` ids and their logits. */
async function greedy(backend: WasmBackend, last: Float32Array, steps: number) {
  const ids: number[] = [];
  const logits: Float32Array[] = [];
  for (let i = 0; i < steps; i++) {
    ids.push(argmax(last));
    last = (await backend.forward([ids[i]])).slice();
    logits.push(last);
  }
  return { ids, logits };
}

describe("sessions", () => {
  for (const mode of KV_MODES) {
    test(`${mode}: a restored session continues exactly as the original`, async () => {
      const spec = mode === "xquant" ? GQA : MHA;
      const key = modelKey(createRandomModel(spec).config);
      const prompt = randomTokens(30, 211, 21);
      const original = await backendFor(spec, mode, { kvOptions: OPTIONS });
      const first = (await original.forward(prompt)).slice();
      const before = await greedy(original, first, 6);
      const tokens = [...prompt, ...before.ids];
      const path = join(dir, `${mode}.session`);
      const bytes = saveSession(path, key, tokens, original.cache);
      expect(statSync(path).size).toBe(bytes);
      const uninterrupted = await greedy(original, before.logits[5], 12);

      const restored = await backendFor(spec, mode, { kvOptions: OPTIONS });
      expect(restoreSession(path, key, restored.cache)).toEqual(tokens);
      expect(restored.cache.length()).toBe(tokens.length);
      const resumed = await greedy(restored, before.logits[5], 12);
      expect(resumed.ids).toEqual(uninterrupted.ids);
      resumed.logits.forEach((l, i) => expect(Array.from(l)).toEqual(Array.from(uninterrupted.logits[i])));
    });
  }

  test("the file holds the compact form and is refused by another model or mode", async () => {
    const key = modelKey(createRandomModel(MHA).config);
    const prompt = randomTokens(120, 211, 5);
    const sizes: Record<string, number> = {};
    for (const mode of ["f16", "q4", "xquant"] as const) {
      const b = await backendFor(MHA, mode, { kvOptions: OPTIONS });
      await b.forward(prompt);
      sizes[mode] = saveSession(join(dir, `size-${mode}.session`), key, prompt, b.cache);
    }
    // 120 positions: q4 codes (480 B/position) plus the f32 windows (up to 15 key and 8 value rows per layer).
    expect(sizes.q4).toBeLessThan(0.6 * sizes.f16);
    expect(sizes.xquant).toBeLessThan(sizes.q4);

    const q4 = await backendFor(MHA, "q4", { kvOptions: OPTIONS });
    expect(() => restoreSession(join(dir, "size-f16.session"), key, q4.cache)).toThrow(InvalidArgumentError);
    expect(() => restoreSession(join(dir, "size-q4.session"), "another model", q4.cache)).toThrow(InvalidArgumentError);
    const otherWindow = await backendFor(MHA, "q4");
    expect(() => restoreSession(join(dir, "size-q4.session"), key, otherWindow.cache)).toThrow(ShapeError);
    const bytes = readFileSync(join(dir, "size-q4.session"));
    writeFileSync(join(dir, "cut.session"), bytes.subarray(0, bytes.length - 100));
    expect(() => restoreSession(join(dir, "cut.session"), key, q4.cache)).toThrow(FormatError);
    expect(decodeSession(new Uint8Array(bytes)).tokens).toEqual(prompt);
  });
});

describe("truncate and regenerate (prefix reuse)", () => {
  for (const mode of KV_MODES) {
    test(`${mode}: rewinds regenerate as a fresh run (exactly for f32/f16 and after a full reset)`, async () => {
      const spec = mode === "xquant" ? GQA : MHA;
      const prefix = randomTokens(40, 211, 8);
      const detour = randomTokens(5, 211, 9);
      const next = randomTokens(10, 211, 10);
      const fresh = await backendFor(spec, mode, { kvOptions: OPTIONS });
      const want = await streamLogits(fresh, [...prefix, ...next], prefix.length);
      const exact = mode === "f32" || mode === "f16";

      const reused = await backendFor(spec, mode, { kvOptions: OPTIONS });
      await reused.forward(prefix);
      for (const t of detour) await reused.forward([t]);
      reused.truncate(prefix.length);
      expect(reused.cache.length()).toBe(prefix.length);
      const got: Float32Array[] = [];
      for (const t of next) got.push((await reused.forward([t])).slice());
      expect(reused.cache.length()).toBe(prefix.length + next.length);
      // The detour pushed a few positions out of the full-precision window; a rewind keeps
      // them quantised (the data to undo it is gone), so compressed modes are close, not equal.
      if (exact) got.forEach((l, i) => expect(Array.from(l)).toEqual(Array.from(want[prefix.length + i])));
      else expect(compareStreams(want.slice(prefix.length), got).meanKl).toBeLessThan(mode === "q8" ? 1e-3 : 0.02);

      // Rewind 25 positions, well past the 8-position window.
      reused.truncate(prefix.length - 25);
      const again = await streamLogits(reused, [...prefix.slice(-25), ...next], 25);
      expect(compareStreams(want.slice(prefix.length - 25), again).meanKl).toBeLessThan(exact || mode === "q8" ? 1e-3 : 0.05);

      // A full reset leaves nothing behind: the same stream again equals the fresh run.
      reused.truncate(0);
      expect(reused.cache.length()).toBe(0);
      const replay = await streamLogits(reused, [...prefix, ...next], prefix.length);
      replay.forEach((l, i) => expect(Array.from(l)).toEqual(Array.from(want[i])));
    });
  }
});
