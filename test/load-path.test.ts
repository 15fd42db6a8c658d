// The packed-file load path (runtime/engine/packed-model.ts over runtime/format/read-data.ts):
// every matrix sits in WASM memory at its file offset from one base, byte for byte the file's
// data, and 1-D weights equal their packed values; the memory grows once, before the read, to
// hold the weights and the reserve (the backend's cache then needs no growth); a refused file
// gives its region back; a private (unshared) memory loads the same and runs the row-shard pool
// with the same logits as the shared one; and under Deno (Deno.FsFile reads) the same file loads
// and a damaged one is refused naming the tensor.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadPackedModel } from "../runtime/engine/packed-model.ts";
import { createWasmBackend } from "../runtime/engine/wasm-backend.ts";
import { FormatError } from "../runtime/errors.ts";
import { xxhash32 } from "../runtime/format/checksum.ts";
import { openCheckpoint, writeCheckpointFile } from "../runtime/format/file.ts";
import { unpackF32 } from "../runtime/format/pack-f16.ts";
import { createKernels } from "../runtime/kernels/wasm.ts";
import { headerFor, packModel } from "./fixtures/pack-model.ts";
import { createRandomModel } from "./fixtures/random-model.ts";

const dir = mkdtempSync(join(tmpdir(), "crumb-load-path-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const source = createRandomModel({ arch: "llama", hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 256, seed: 8 });
const path = join(dir, "model.q2");
await writeCheckpointFile(path, {
  header: headerFor(source),
  tensors: packModel(source, { kind: "bitplane", bits: 2, group: 32, scales: "zero-point" }, { kind: "q8", group: 32 }),
});
const fileBytes = new Uint8Array(readFileSync(path));
const checkpoint = await openCheckpoint(path);
const records = checkpoint.tensors;
await checkpoint.close();
const RESERVE = 8 << 20;

describe("loadPackedModel", () => {
  for (const shared of [true, false]) {
    test(`${shared ? "shared" : "private"} memory: tensors at their file offsets, grown once for weights and reserve`, async () => {
      const kernels = createKernels({ shared });
      const model = await loadPackedModel(path, { kernels, reserveBytes: RESERVE });
      const size = kernels.memory.buffer.byteLength;
      expect(size).toBeGreaterThanOrEqual(kernels.arena.mark() + RESERVE);
      const memory = new Uint8Array(kernels.memory.buffer);
      let base: number | undefined;
      for (const r of records) {
        const data = fileBytes.subarray(r.offset, r.offset + r.byteLength);
        if (r.shape.length === 2) {
          const m = model.matrices.get(r.name)!;
          base ??= m.ptr - r.offset;
          expect({ name: r.name, at: m.ptr - r.offset, aligned: m.ptr % 64 }).toEqual({ name: r.name, at: base, aligned: 0 });
          expect(memory.subarray(m.ptr, m.ptr + r.byteLength)).toEqual(data);
        } else {
          expect(model.vectors.get(r.name)).toEqual(unpackF32(data, r.shape[0]));
        }
      }
      expect(model.weightBytes).toBe(fileBytes.length - records.reduce((min, r) => Math.min(min, r.offset), Infinity));
      const backend = await createWasmBackend(model, { contextLength: 64, kv: "f32", threads: 1 });
      expect(kernels.memory.buffer.byteLength).toBe(size);
      await backend.dispose();
    });
  }

  test("the row-shard pool over a private memory gives the shared pool's logits", async () => {
    const logits: Float32Array[] = [];
    for (const shared of [true, false]) {
      const model = await loadPackedModel(path, { kernels: createKernels({ shared }), reserveBytes: RESERVE });
      const backend = await createWasmBackend(model, { contextLength: 64, kv: "f32", threads: 2 });
      expect(backend.name).toContain(shared ? "2 threads" : "row shards");
      logits.push(Float32Array.from(await backend.forward([1, 7, 42])));
      await backend.dispose();
    }
    expect(logits[1]).toEqual(logits[0]);
  });

  test("a refused file gives its region back to the arena", async () => {
    const kernels = createKernels({ shared: true });
    const record = records.find((r) => r.shape.length === 2)!;
    const damaged = fileBytes.slice();
    damaged[record.offset + 3] ^= 0x80;
    const bad = join(dir, "damaged.q2");
    writeFileSync(bad, damaged);
    const mark = kernels.arena.mark();
    const error = await loadPackedModel(bad, { kernels }).catch((e) => e);
    expect(error).toBeInstanceOf(FormatError);
    expect((error as FormatError).tensor).toBe(record.name);
    expect(kernels.arena.mark()).toBe(mark);
  });
});

test(
  "under Deno the file loads through Deno.FsFile reads (several in flight), and a damaged one is refused naming the tensor",
  async () => {
    const record = records.find((r) => r.shape.length === 2 && r.name.includes("layers.1"))!;
    const damaged = fileBytes.slice();
    damaged[record.offset + (record.byteLength >> 1)] ^= 0x01;
    const bad = join(dir, "damaged-deno.q2");
    writeFileSync(bad, damaged);
    const script = fileURLToPath(new URL("./load-smoke.ts", import.meta.url));
    const proc = Bun.spawn(["npx", "--no-install", "deno", "run", "-A", "--quiet", script, path, bad], { stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect({ code, stderr: code === 0 ? "" : stderr }).toEqual({ code: 0, stderr: "" });
    const result = JSON.parse(stdout.trim()) as { api: string; section: string; matrices: Record<string, string>; refused: string | null };
    expect(result.api).toBe("Deno.FsFile");
    const dataOffset = records.reduce((min, r) => Math.min(min, r.offset), Infinity);
    expect(result.section).toBe(xxhash32(fileBytes.subarray(dataOffset)).toString(16));
    expect(result.refused).toBe(record.name);
    for (const r of records.filter((r) => r.shape.length === 2)) {
      expect({ name: r.name, hash: result.matrices[r.name] }).toEqual({ name: r.name, hash: r.checksum.toString(16) });
    }
  },
  60_000,
);
