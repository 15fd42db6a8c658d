// Quantising straight to a file through the tensor spool: the file's bytes equal the in-memory
// writer's for the same input (with and without calibration, with XQuant factors and the
// quality report), the file opens and verifies, and no temporary file remains after success,
// after a failure while quantising, or after a failure while copying the spool; planning from
// descriptors equals planning from bytes; both spools read back what they stored.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { quantizeTempPaths, quantizeToFile, writeSpooledCheckpoint } from "../../quantizer/output-file.ts";
import { quantizeModel, type QuantizeOptions } from "../../quantizer/quantize.ts";
import { createFileSpool, createMemorySpool } from "../../quantizer/tensor-spool.ts";
import { CrumbError, FormatError, InvalidArgumentError } from "../../runtime/errors.ts";
import { openCheckpoint } from "../../runtime/format/file.ts";
import { planCheckpoint, planCheckpointLayout, serializeCheckpoint } from "../../runtime/format/writer.ts";
import type { ModelSource, TensorEntry } from "../../runtime/models/types.ts";
import { createRandomModel } from "../fixtures/random-model.ts";

const spec = { arch: "llama", hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 2, vocab: 80, maxPositions: 64 };

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "crumb-output-file-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function clearDir(): void {
  for (const f of readdirSync(dir)) rmSync(join(dir, f), { force: true });
}

describe("quantizeToFile", () => {
  const cases: [string, QuantizeOptions][] = [
    ["rtn 2-bit, no report", { bits: 2, method: "rtn", report: false }],
    ["gptq 2-bit with calibration and report", { bits: 2, method: "gptq", calibrationTokens: 64, evaluationTokens: 40 }],
    ["imatrix 4-bit, f16 embeddings, no xquant", {
      bits: 4,
      method: "imatrix",
      calibrationTokens: 64,
      embeddings: "f16",
      xquant: false,
      report: false,
    }],
  ];
  for (const [label, options] of cases) {
    test(`${label}: byte-identical to the in-memory writer, and only the output is left`, async () => {
      clearDir();
      const source = createRandomModel(spec);
      const memory = await quantizeModel(source, options);
      const want = serializeCheckpoint({ header: memory.header, tensors: memory.tensors });
      const output = join(dir, "model.q2");
      const spooled = await quantizeToFile(source, output, options);
      const got = new Uint8Array(readFileSync(output));
      expect(got.length).toBe(want.length);
      expect(Buffer.compare(got, want)).toBe(0);
      expect(spooled.report).toEqual(memory.report);
      expect(spooled.report.bytes).toBe(got.length);
      expect(readdirSync(dir)).toEqual(["model.q2"]);
      const file = await openCheckpoint(output);
      try {
        await file.verify();
      } finally {
        await file.close();
      }
    });
  }

  test("copying in chunks smaller than a tensor (and than the 64-byte alignment) gives the same bytes", async () => {
    clearDir();
    const source = createRandomModel(spec);
    const options: QuantizeOptions = { bits: 3, method: "rtn", report: false };
    const memory = await quantizeModel(source, options);
    const want = serializeCheckpoint({ header: memory.header, tensors: memory.tensors });
    const spool = createFileSpool(join(dir, "spool.bin"));
    try {
      const q = await quantizeModel(source, { ...options, spool });
      for (const chunkBytes of [37, 100, 1 << 20]) {
        const output = join(dir, `chunk-${chunkBytes}.q3`);
        const plan = await writeSpooledCheckpoint(output, q.header, q.tensors, spool, { chunkBytes });
        expect(plan.fileLength).toBe(want.length);
        expect(Buffer.compare(new Uint8Array(readFileSync(output)), want)).toBe(0);
        rmSync(output);
      }
      await expect(writeSpooledCheckpoint(join(dir, "x.q3"), q.header, q.tensors, spool, { chunkBytes: 0 })).rejects.toThrow(
        /chunkBytes must be a positive integer/,
      );
    } finally {
      spool.dispose();
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  test("a failure while quantising leaves no output and no temporary file", async () => {
    clearDir();
    const source = createRandomModel(spec);
    const broken = "model.layers.1.mlp.up_proj.weight";
    const tensors = new Map<string, TensorEntry>(
      [...source.tensors].map(([name, t]) => [
        name,
        name === broken
          ? {
            ...t,
            read: () => {
              throw new FormatError("disk went away", { tensor: name });
            },
          }
          : t,
      ]),
    );
    const failing: ModelSource = { ...source, tensors };
    let sawSpool = false;
    const options: QuantizeOptions = {
      bits: 2,
      method: "gptq",
      calibrationTokens: 64,
      report: false,
      onProgress: () => void (sawSpool ||= readdirSync(dir).includes("model.q2.data-" + process.pid)),
    };
    await expect(quantizeToFile(failing, join(dir, "model.q2"), options)).rejects.toThrow(/disk went away/);
    expect(sawSpool).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("a spool changed under the writer fails the XXH32 check and leaves nothing", async () => {
    clearDir();
    const source = createRandomModel(spec);
    const output = join(dir, "model.q2");
    const total = source.tensors.size;
    const onProgress = (e: { index: number; phase: string }) => {
      if (e.phase !== "tensor" || e.index !== total) return;
      const fd = openSync(quantizeTempPaths(output).data, "r+");
      const head = new Uint8Array(4);
      readSync(fd, head, 0, 4, 0);
      writeSync(fd, head.map((v) => v ^ 0xff), 0, 4, 0);
      closeSync(fd);
    };
    const error = await quantizeToFile(source, output, { bits: 2, method: "rtn", report: false, xquant: false, onProgress }).catch((e) =>
      e
    );
    expect(error).toBeInstanceOf(FormatError);
    expect(error.message).toMatch(/XXH32 mismatch/);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("an unwritable output directory fails with a CrumbError before any file exists", async () => {
    const error = await quantizeToFile(createRandomModel(spec), join(dir, "no-such-dir", "model.q2"), { bits: 2, report: false }).catch((
      e,
    ) => e);
    expect(error).toBeInstanceOf(CrumbError);
    expect(error.message).toMatch(/temporary data file .*no-such-dir/);
  });
});

describe("planCheckpointLayout", () => {
  test("plans from descriptors exactly what planCheckpoint plans from bytes, and refuses bad descriptors", async () => {
    const q = await quantizeModel(createRandomModel(spec), { bits: 4, method: "rtn", report: false });
    const fromBytes = planCheckpoint({ header: q.header, tensors: q.tensors });
    const fromDescriptors = planCheckpointLayout(q.header, q.tensors);
    expect(fromDescriptors.meta).toEqual(fromBytes.meta);
    expect(fromDescriptors.records).toEqual(fromBytes.records);
    const first = q.tensors[0];
    const descriptor = {
      name: first.name,
      shape: first.shape,
      encoding: first.encoding,
      byteLength: first.byteLength,
      checksum: first.checksum,
    };
    expect(() => planCheckpointLayout(q.header, [{ ...descriptor, byteLength: first.byteLength + 1 }])).toThrow(
      /holds \d+ bytes, but shape/,
    );
    expect(() => planCheckpointLayout(q.header, [{ ...descriptor, checksum: -1 }])).toThrow(/checksum -1 is not a u32/);
    expect(() => planCheckpointLayout(q.header, [descriptor, descriptor])).toThrow(/duplicate tensor name/);
  });
});

describe("tensor spools", () => {
  for (const [label, make] of [["memory", () => createMemorySpool()], ["file", () => createFileSpool(join(dir, "spool.bin"))]] as const) {
    test(`${label}: reads back what was added, refuses duplicates and out-of-range reads, disposes`, () => {
      clearDir();
      const spool = make();
      const a = spool.add("a", [2, 3], { kind: "f16" }, Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
      const b = spool.add("b", [2], { kind: "f32" }, Uint8Array.from([21, 22, 23, 24, 25, 26, 27, 28]));
      expect(a.byteLength).toBe(12);
      expect(b.bytes).toEqual(Uint8Array.from([21, 22, 23, 24, 25, 26, 27, 28]));
      expect(a.bytes).toEqual(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
      const part = new Uint8Array(3);
      spool.readInto("a", 9, part);
      expect(part).toEqual(Uint8Array.from([10, 11, 12]));
      expect(() => spool.add("a", [1], { kind: "f32" }, new Uint8Array(4))).toThrow(InvalidArgumentError);
      expect(() => spool.readInto("a", 10, part)).toThrow(/outside its 12 bytes/);
      expect(() => spool.readInto("c", 0, part)).toThrow(/not in the spool/);
      spool.dispose();
      spool.dispose();
      expect(readdirSync(dir)).toEqual([]);
    });
  }
});
