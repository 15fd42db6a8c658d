// Checksums through every loader of a packed file: one byte flipped inside one tensor's data
// (the header and tensor table untouched, so only the tensor's XXH32 can tell) is refused by
// loadPackedModel, by importModel(...) when that tensor is read, and by loadEngine, each with
// a FormatError naming the tensor. The undamaged file loads through all three (the control).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importModel } from "../runtime/import/index.ts";
import { loadEngine } from "../runtime/engine/load-engine.ts";
import { loadPackedModel } from "../runtime/engine/packed-model.ts";
import { FormatError } from "../runtime/errors.ts";
import { openCheckpoint, writeCheckpointFile } from "../runtime/format/file.ts";
import { headerFor, packModel } from "./fixtures/pack-model.ts";
import { createRandomModel } from "./fixtures/random-model.ts";
import { haveFiles, modelPath } from "./shared-data.ts";

const dir = mkdtempSync(join(tmpdir(), "crumb-checksums-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const withTokenizer = haveFiles("stories260K/tok512.bin");
const source = createRandomModel({ arch: "llama", hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 512, seed: 5 });
const good = join(dir, "good.q4");
await writeCheckpointFile(good, {
  header: headerFor(source),
  tensors: packModel(source, { kind: "bitplane", bits: 4, group: 32, scales: "zero-point" }, { kind: "q8", group: 32 }),
});

/** A copy of the good file with one byte flipped in the middle of `tensor`'s data. */
async function damaged(tensor: string): Promise<string> {
  const file = await openCheckpoint(good);
  const record = file.tensor(tensor);
  await file.close();
  const bytes = new Uint8Array(readFileSync(good));
  bytes[record.offset + (record.byteLength >> 1)] ^= 0x10;
  const path = join(dir, `${tensor}.q4`);
  writeFileSync(path, bytes);
  return path;
}

async function refusal(load: () => Promise<unknown>): Promise<FormatError> {
  let caught: unknown;
  try {
    await load();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(FormatError);
  return caught as FormatError;
}

function expectNamed(error: FormatError, tensor: string) {
  expect(error.tensor).toBe(tensor);
  expect(error.message).toContain(tensor);
  expect(error.message).toContain("checksum");
}

test("the undamaged file loads through every loader", async () => {
  const model = await loadPackedModel(good);
  expect(model.matrices.size + model.vectors.size).toBe(source.tensors.size);
  const imported = await importModel(good);
  for (const [name, entry] of imported.tensors) expect(entry.read().length).toBe(source.tensors.get(name)!.read().length);
  if (withTokenizer) await (await loadEngine(good, { tokenizer: modelPath("stories260K/tok512.bin") })).dispose();
});

// A matrix (streamed into WASM memory) and a 1-D weight (read into JS): loadPackedModel reads them on two paths.
for (const tensor of ["model.layers.1.mlp.down_proj.weight", "model.layers.0.input_layernorm.weight"]) {
  describe(`one byte flipped inside ${tensor}`, () => {
    test("loadPackedModel refuses the file, naming the tensor", async () => {
      expectNamed(await refusal(async () => loadPackedModel(await damaged(tensor))), tensor);
    });

    test("importModel opens it, and reading that tensor (only that one) is refused, naming it", async () => {
      const imported = await importModel(await damaged(tensor));
      for (const [name, entry] of imported.tensors) {
        if (name === tensor) expectNamed(await refusal(async () => entry.read()), tensor);
        else expect(entry.read().length).toBeGreaterThan(0);
      }
    });

    test.skipIf(!withTokenizer)("loadEngine refuses the file, naming the tensor", async () => {
      const path = await damaged(tensor);
      expectNamed(await refusal(() => loadEngine(path, { tokenizer: modelPath("stories260K/tok512.bin") })), tensor);
    });
  });
}
