/** The node:fs helpers: atomic writes that never leave partial files, and on-demand reads. */

import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CrumbError, FormatError, InvalidArgumentError } from "../errors.ts";
import { openCheckpoint, writeCheckpointFile } from "./file.ts";
import { serializeCheckpoint } from "./index.ts";
import { sampleInput } from "../../test/fixtures/format-samples.ts";

const dir = mkdtempSync(join(tmpdir(), "crumb-format-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("writeCheckpointFile / openCheckpoint", () => {
  const input = sampleInput();

  test("writes the same bytes as serializeCheckpoint, leaves no temp file, and reads back", async () => {
    const path = join(dir, "model.q2");
    await writeCheckpointFile(path, input);
    expect(new Uint8Array(readFileSync(path))).toEqual(serializeCheckpoint(input));
    expect(readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);

    const ckpt = await openCheckpoint(path);
    try {
      expect(ckpt.header).toEqual(input.header);
      expect(ckpt.tensors.length).toBe(input.tensors.length);
      for (const t of input.tensors) expect(await ckpt.readTensor(t.name)).toEqual(t.bytes);
      const record = ckpt.tensor(input.tensors[4].name);
      const target = new Uint8Array(record.byteLength);
      const seen: number[] = [];
      await ckpt.readTensorInto(record, target, { chunkSize: 100, onProgress: (done) => seen.push(done) });
      expect(target).toEqual(input.tensors[4].bytes);
      expect(seen.at(-1)).toBe(record.byteLength);
      let verified = 0;
      await ckpt.verify({ onProgress: (done, total) => (verified = done / total) });
      expect(verified).toBe(1);
      expect(() => ckpt.tensor("missing.weight")).toThrow(InvalidArgumentError);
    } finally {
      await ckpt.close();
    }
  });

  test("overwriting an existing checkpoint replaces it whole", async () => {
    const path = join(dir, "again.q2");
    writeFileSync(path, "old contents");
    await writeCheckpointFile(path, input);
    expect(new Uint8Array(readFileSync(path))).toEqual(serializeCheckpoint(input));
  });

  test("an unwritable destination fails and leaves no file behind", async () => {
    const missing = join(dir, "no-such-dir", "model.q2");
    await expect(writeCheckpointFile(missing, input)).rejects.toBeInstanceOf(CrumbError);
    expect(readdirSync(dir).some((f) => f.startsWith("no-such-dir"))).toBe(false);

    // The temp file is created, then the rename onto a non-empty directory fails: it must be removed.
    const blocked = join(dir, "blocked");
    mkdirSync(join(blocked, "occupied"), { recursive: true });
    const error = await writeCheckpointFile(blocked, input).catch((e) => e);
    expect(error).toBeInstanceOf(CrumbError);
    expect(error.message).toContain(blocked);
    expect(readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });

  test("invalid input is rejected before any file is created", async () => {
    const path = join(dir, "invalid.q2");
    const bad = { ...input, tensors: [{ ...input.tensors[0], bytes: new Uint8Array(3) }] };
    await expect(writeCheckpointFile(path, bad)).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(readdirSync(dir).filter((f) => f.startsWith("invalid"))).toEqual([]);
  });

  test("a truncated or corrupted file on disk names the file, offset and tensor", async () => {
    const good = serializeCheckpoint(input);
    const truncated = join(dir, "truncated.q2");
    writeFileSync(truncated, good.subarray(0, good.length - 10));
    const cut = await openCheckpoint(truncated).catch((e) => e);
    expect(cut).toBeInstanceOf(FormatError);
    expect(cut.file).toBe(truncated);
    expect(cut.offset).toBe(good.length - 10);
    expect(cut.tensor).toBe(input.tensors.at(-1)!.name);
    expect(cut.message).toContain(truncated);

    const corrupt = join(dir, "corrupt.q2");
    const damaged = good.slice();
    damaged[damaged.length - 1] ^= 0xff;
    writeFileSync(corrupt, damaged);
    const ckpt = await openCheckpoint(corrupt);
    try {
      const last = input.tensors.at(-1)!.name;
      const error = await ckpt.readTensor(last).catch((e) => e);
      expect(error).toBeInstanceOf(FormatError);
      expect(error.tensor).toBe(last);
      expect(error.message).toContain(`byte offset ${ckpt.tensor(last).offset}`);
    } finally {
      await ckpt.close();
    }
  });

  test("a missing file is an InvalidArgumentError naming the path", async () => {
    const path = join(dir, "absent.q2");
    await expect(openCheckpoint(path)).rejects.toThrow(path);
  });
});
