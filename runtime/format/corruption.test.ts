/**
 * Damaged checkpoints: truncation at every section boundary and inside every section, a
 * flipped byte in every metadata byte and in each tensor's data, and forged (correctly
 * checksummed) files whose table or header is inconsistent. Every case must be a
 * FormatError whose message names the byte offset, and the tensor when there is one.
 */

import { describe, expect, test } from "bun:test";
import { FormatError } from "../errors.ts";
import {
  type ByteSource,
  bytesSource,
  parseCheckpointHeader,
  planCheckpoint,
  readCheckpointHeader,
  readTensorBytes,
  readTensorInto,
  serializeCheckpoint,
  verifyCheckpoint,
} from "./index.ts";
import { PREAMBLE, PREAMBLE_SIZE } from "./header.ts";
import { assemble, SAMPLE_HEADER, sampleInput, seededBytes } from "../../test/fixtures/format-samples.ts";

const input = sampleInput();
const file = serializeCheckpoint(input);
const info = parseCheckpointHeader(file);
const view = new DataView(file.buffer);
const headerLength = Number(view.getBigUint64(PREAMBLE.headerLength, true));
const tableLength = Number(view.getBigUint64(PREAMBLE.tableLength, true));
const headerEnd = PREAMBLE_SIZE + headerLength;
const metaEnd = headerEnd + tableLength;

/** Runs `fn`, asserts a FormatError that names its offset (and `tensor` when given), returns it. */
function expectFormatError(fn: () => unknown, tensor?: string): FormatError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(FormatError);
  const error = caught as FormatError;
  expect(error.offset).toBeNumber();
  expect(error.message).toContain(`byte offset ${error.offset}`);
  if (tensor !== undefined) {
    expect(error.tensor).toBe(tensor);
    expect(error.message).toContain(tensor);
  }
  return error;
}

async function expectFormatErrorAsync(promise: Promise<unknown>, tensor?: string): Promise<FormatError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  return expectFormatError(() => {
    if (caught !== undefined) throw caught;
  }, tensor);
}

function flipped(at: number, mask = 0x01): Uint8Array {
  const copy = file.slice();
  copy[at] ^= mask;
  return copy;
}

describe("truncation", () => {
  const boundaries = [0, 4, 8, 12, 16, 24, 32, 40, 48, 52, 60, 63, PREAMBLE_SIZE, headerEnd, metaEnd, info.dataOffset];
  const inside = [1, 10, 30, 62, PREAMBLE_SIZE + 1, (PREAMBLE_SIZE + headerEnd) >> 1, headerEnd - 1, headerEnd + 1];
  inside.push((headerEnd + metaEnd) >> 1, metaEnd - 1, metaEnd + 1);
  const tensorCuts = info.tensors.flatMap((t) => [
    { at: t.offset, tensor: t.name },
    { at: t.offset + 1, tensor: t.name },
    { at: t.offset + (t.byteLength >> 1), tensor: t.name },
    { at: t.offset + t.byteLength - 1, tensor: t.name },
  ]);

  test("at every section boundary and inside the preamble, header and table", async () => {
    for (const at of [...boundaries, ...inside]) {
      const cut = file.slice(0, at);
      expect(expectFormatError(() => parseCheckpointHeader(cut)).offset).toBe(at);
      expect((await expectFormatErrorAsync(readCheckpointHeader(bytesSource(cut)))).offset).toBe(at);
    }
  });

  test("inside each tensor's data names the tensor that is cut", async () => {
    for (const { at, tensor } of tensorCuts) {
      const cut = file.slice(0, at);
      expect(expectFormatError(() => parseCheckpointHeader(cut), tensor).offset).toBe(at);
      await expectFormatErrorAsync(readCheckpointHeader(bytesSource(cut)), tensor);
    }
  });

  test("a source that shrinks while being read is reported as truncation", async () => {
    const lying = (end: number): ByteSource => ({ size: file.length, read: bytesSource(file.subarray(0, end)).read });
    expect((await expectFormatErrorAsync(readCheckpointHeader(lying(headerEnd - 5)))).offset).toBe(headerEnd - 5);
    const record = info.tensors[3];
    const end = record.offset + 10;
    const error = await expectFormatErrorAsync(readTensorBytes(lying(end), record, { chunkSize: 4 }), record.name);
    expect(error.offset).toBe(end);
  });
});

describe("flipped bytes", () => {
  test("every byte of the preamble, JSON header and tensor table is caught", () => {
    for (let at = 0; at < metaEnd; at++) {
      for (const mask of [0x01, 0x80]) expectFormatError(() => parseCheckpointHeader(flipped(at, mask)));
    }
  });

  test("each section reports its own kind of damage", () => {
    for (let at = 0; at < 8; at++) expect(expectFormatError(() => parseCheckpointHeader(flipped(at))).offset).toBe(0);
    expect(expectFormatError(() => parseCheckpointHeader(flipped(PREAMBLE.version, 0x01))).message).toContain(
      "file version 3 is newer than this crumb (2): upgrade crumb",
    );
    expect(expectFormatError(() => parseCheckpointHeader(flipped(PREAMBLE.flags))).message).toContain("unknown flags");
    for (const at of [PREAMBLE.metaChecksum, PREAMBLE_SIZE, headerEnd - 1, headerEnd, metaEnd - 1]) {
      const error = expectFormatError(() => parseCheckpointHeader(flipped(at)));
      expect(error.message).toContain("header checksum mismatch");
      expect(error.offset).toBe(PREAMBLE.metaChecksum);
    }
  });

  test("a flipped byte in each tensor's data fails verification, naming the tensor and its offset", async () => {
    for (const record of info.tensors) {
      for (const at of [record.offset, record.offset + (record.byteLength >> 1), record.offset + record.byteLength - 1]) {
        const damaged = flipped(at);
        const meta = parseCheckpointHeader(damaged);
        const error = await expectFormatErrorAsync(readTensorBytes(damaged, meta.tensors.find((t) => t.name === record.name)!), record.name);
        expect(error.offset).toBe(record.offset);
        expect(error.message).toContain("checksum mismatch");
        await expectFormatErrorAsync(verifyCheckpoint(damaged, meta), record.name);
        const unverified = await readTensorBytes(damaged, record, { verify: false });
        expect(unverified[at - record.offset]).toBe(damaged[at]);
      }
    }
  });

  test("a tensor verified while streamed in chunks is caught too", async () => {
    const record = info.tensors[4];
    const damaged = flipped(record.offset + record.byteLength - 2);
    await expectFormatErrorAsync(readTensorInto(damaged, record, new Uint8Array(record.byteLength), { chunkSize: 5 }), record.name);
  });
});

describe("forged files (valid checksum, inconsistent contents)", () => {
  const a = seededBytes(64, 1);
  const b = seededBytes(64, 2);
  const base = planCheckpoint({
    header: SAMPLE_HEADER,
    tensors: [
      { name: "a", shape: [4, 4], encoding: { kind: "f32" }, bytes: a },
      { name: "b", shape: [32], encoding: { kind: "f16" }, bytes: b },
    ],
  });
  const [ra, rb] = base.records;
  const payloads = { a, b };
  const forge = (records: Array<Record<string, unknown>>, extra: Record<string, unknown> = {}) =>
    assemble({ records: records as never, payloads, ...extra });

  test("the forging helper reproduces the writer's file when nothing is changed", () => {
    const original = serializeCheckpoint({
      header: SAMPLE_HEADER,
      tensors: [
        { name: "a", shape: [4, 4], encoding: { kind: "f32" }, bytes: a },
        { name: "b", shape: [32], encoding: { kind: "f16" }, bytes: b },
      ],
    });
    expect(forge([ra, rb])).toEqual(original);
  });

  test("misaligned data offset", () => {
    const forged = forge([ra, { ...rb, offset: rb.offset + 4 }]);
    const error = expectFormatError(() => parseCheckpointHeader(forged), "b");
    expect(error.message).toContain(`offset ${rb.offset + 4} is not 64-byte aligned`);
    const forgedView = new DataView(forged.buffer, forged.byteOffset);
    const tableStart = PREAMBLE_SIZE + Number(forgedView.getBigUint64(PREAMBLE.headerLength, true));
    const tableEnd = tableStart + Number(forgedView.getBigUint64(PREAMBLE.tableLength, true));
    // The offset named is that of record b's data-offset field, inside the table.
    expect(error.offset).toBeGreaterThan(tableStart);
    expect(error.offset).toBeLessThan(tableEnd);
    expect(forgedView.getBigUint64(error.offset!, true)).toBe(BigInt(rb.offset + 4));
  });

  test("overlapping tensors", () => {
    const error = expectFormatError(() => parseCheckpointHeader(forge([ra, { ...rb, offset: ra.offset }])), "b");
    expect(error.message).toContain("overlaps");
  });

  test("data past the end of the file", () => {
    const error = expectFormatError(
      () => parseCheckpointHeader(forge([ra, { ...rb, offset: rb.offset + 64 }], { fileLength: rb.offset + 64 })),
      "b",
    );
    expect(error.message).toContain("past the end of the file");
  });

  test("byte length that does not match shape and encoding", () => {
    const error = expectFormatError(() => parseCheckpointHeader(forge([ra, { ...rb, byteLength: 66 }])), "b");
    expect(error.message).toContain("does not match shape [32]");
  });

  test("unknown encoding kind and invalid encoding parameters", () => {
    const unknown = expectFormatError(() => parseCheckpointHeader(forge([{ ...ra, encoding: { kind: "q5" } }, rb])), "a");
    expect(unknown.message).toContain('"q5"');
    expect(unknown.message).toContain("upgrade crumb");
    const bad = { kind: "bitplane", bits: 5, group: 64, scales: "zero-point" };
    expect(expectFormatError(() => parseCheckpointHeader(forge([{ ...ra, encoding: bad }, rb])), "a").message).toContain("bits");
    const oneD = { ...rb, encoding: { kind: "q8", group: 32 } };
    expectFormatError(() => parseCheckpointHeader(forge([ra, oneD])), "b");
  });

  test("duplicate tensor names", () => {
    expect(expectFormatError(() => parseCheckpointHeader(forge([ra, { ...rb, name: "a" }]))).message).toContain("duplicate");
  });

  test("header JSON that is not JSON, not UTF-8, or lacks a section", () => {
    const bytes = (s: string) => new TextEncoder().encode(s);
    const notJson = expectFormatError(() => parseCheckpointHeader(forge([ra, rb], { headerBytes: bytes("{not json") })));
    expect(notJson.offset).toBe(PREAMBLE_SIZE);
    expect(notJson.message).toContain("does not parse");
    expectFormatError(() => parseCheckpointHeader(forge([ra, rb], { headerBytes: Uint8Array.of(0x7b, 0xff, 0x7d) })));
    const { config: _config, ...noConfig } = SAMPLE_HEADER;
    const missing = expectFormatError(() => parseCheckpointHeader(forge([ra, rb], { headerBytes: bytes(JSON.stringify(noConfig)) })));
    expect(missing.message).toContain('"config"');
  });

  test("future and impossible versions", () => {
    const future = expectFormatError(() => parseCheckpointHeader(forge([ra, rb], { version: 3 })));
    expect(future.message).toContain("file version 3 is newer than this crumb (2): upgrade crumb");
    expect(future.offset).toBe(PREAMBLE.version);
    expectFormatError(() => parseCheckpointHeader(forge([ra, rb], { version: 0 })));
  });

  test("a version-1 file reads when it holds no LUT tensor; its bit-plane or ternary tensors are refused by name", () => {
    expect(parseCheckpointHeader(forge([ra, rb], { version: 1 })).tensors.map((t) => t.name)).toEqual(["a", "b"]);
    const v1 = sampleInput();
    const lut = v1.tensors.find((t) => t.encoding.kind === "bitplane")!;
    const forged = assemble({
      header: v1.header,
      records: parseCheckpointHeader(serializeCheckpoint(v1)).tensors,
      payloads: Object.fromEntries(v1.tensors.map((t) => [t.name, t.bytes])),
      version: 1,
    });
    const error = expectFormatError(() => parseCheckpointHeader(forged));
    expect(error.tensor).toBe(lut.name);
    expect(error.message).toContain("version-1 LUT layout");
    expect(error.message).toContain("re-quantize");
  });

  test("trailing bytes and an inconsistent file length field", () => {
    const good = forge([ra, rb]);
    const longer = new Uint8Array(good.length + 3);
    longer.set(good);
    expect(expectFormatError(() => parseCheckpointHeader(longer)).offset).toBe(good.length);
    const padded = forge([ra, rb], { fileLength: good.length + 64 });
    expect(expectFormatError(() => parseCheckpointHeader(padded)).offset).toBe(PREAMBLE.fileLength);
  });

  test("corrupt length fields never cause a giant allocation or a RangeError", async () => {
    for (const [field, value] of [
      [PREAMBLE.headerLength, 1n << 50n],
      [PREAMBLE.tableLength, 1n << 40n],
      [PREAMBLE.headerLength, (1n << 64n) - 1n],
      [PREAMBLE.fileLength, 1n << 63n],
      [PREAMBLE.dataOffset, 1n << 52n],
    ] as const) {
      const damaged = file.slice();
      new DataView(damaged.buffer).setBigUint64(field, value, true);
      expectFormatError(() => parseCheckpointHeader(damaged));
      await expectFormatErrorAsync(readCheckpointHeader(bytesSource(damaged)));
    }
    const count = file.slice();
    new DataView(count.buffer).setUint32(PREAMBLE.tensorCount, 0xffffffff, true);
    expectFormatError(() => parseCheckpointHeader(count));
    const forgedCount = forge([ra, rb]);
    new DataView(forgedCount.buffer).setUint32(PREAMBLE.tensorCount, 0xffffffff, true);
    expect(expectFormatError(() => parseCheckpointHeader(forgedCount)).message).toMatch(/checksum|cannot hold/);
  });

  test("wrong magic explains text-mode damage and foreign formats", () => {
    const lf = new Uint8Array(file.length - 1);
    lf.set(file.subarray(0, 6));
    lf.set(file.subarray(7), 6);
    expect(expectFormatError(() => parseCheckpointHeader(lf)).message).toContain("text-mode");
    const gguf = new TextEncoder().encode("GGUF\x03\x00\x00\x00 and more bytes");
    expect(expectFormatError(() => parseCheckpointHeader(gguf)).message).toContain("GGUF");
    expect(expectFormatError(() => parseCheckpointHeader(new Uint8Array(100))).message).toContain("not a crumb checkpoint");
  });
});
