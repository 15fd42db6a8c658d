/** Write → read round trips, determinism, streaming reads and writer input validation. */

import { describe, expect, test } from "bun:test";
import { FormatError, InvalidArgumentError } from "../errors.ts";
import {
  type ByteSource,
  bytesSource,
  type CheckpointSink,
  MAGIC,
  parseCheckpointHeader,
  planCheckpoint,
  readCheckpointHeader,
  readTensorBytes,
  readTensorInto,
  serializeCheckpoint,
  verifyCheckpoint,
  verifyTensor,
  writeCheckpoint,
} from "./index.ts";
import { packF16, packF32, unpackF16, unpackF32 } from "./pack-f16.ts";
import { SAMPLE_HEADER, sampleInput } from "../../test/fixtures/format-samples.ts";

describe("checkpoint round trip", () => {
  const input = sampleInput();
  const file = serializeCheckpoint(input);

  test("header, table and every tensor's bytes come back identical", async () => {
    const info = parseCheckpointHeader(file);
    expect(info.version).toBe(2);
    expect(info.header).toEqual(SAMPLE_HEADER);
    expect(Object.keys(info.header.chatTemplates)).toEqual(["default", "tool_use"]);
    expect(info.tensors.map((t) => t.name)).toEqual(input.tensors.map((t) => t.name));
    for (const [i, record] of info.tensors.entries()) {
      const src = input.tensors[i];
      expect(record.shape).toEqual([...src.shape]);
      expect(record.encoding).toEqual(src.encoding);
      expect(record.offset % 64).toBe(0);
      expect(record.byteLength).toBe(src.bytes.length);
      expect(await readTensorBytes(file, record)).toEqual(src.bytes);
      expect(() => verifyTensor(record, file.subarray(record.offset, record.offset + record.byteLength))).not.toThrow();
    }
    expect(file.subarray(0, 8)).toEqual(MAGIC);
    await verifyCheckpoint(file, info);
  });

  test("identical input gives a byte-identical file, whatever the encoding objects' key order", () => {
    const again = sampleInput();
    const reordered = {
      ...again,
      tensors: again.tensors.map((t) => ({ ...t, encoding: Object.fromEntries(Object.entries(t.encoding).reverse()) as typeof t.encoding })),
    };
    expect(serializeCheckpoint(again)).toEqual(file);
    expect(serializeCheckpoint(reordered)).toEqual(file);
    expect(serializeCheckpoint(sampleInput(2))).not.toEqual(file);
  });

  test("writeCheckpoint streams the same bytes to an async sink", async () => {
    const chunks: Uint8Array[] = [];
    const sink: CheckpointSink = {
      async write(chunk) {
        await Promise.resolve();
        chunks.push(chunk.slice());
      },
    };
    const plan = await writeCheckpoint(sink, input);
    const joined = new Uint8Array(plan.fileLength);
    let at = 0;
    for (const c of chunks) {
      joined.set(c, at);
      at += c.length;
    }
    expect(at).toBe(file.length);
    expect(joined).toEqual(file);
  });

  test("reading the header touches only the preamble, header and table", async () => {
    const info = parseCheckpointHeader(file);
    let furthest = 0;
    const inner = bytesSource(file);
    const counting: ByteSource = {
      size: file.length,
      read(target, position) {
        furthest = Math.max(furthest, position + target.length);
        return inner.read(target, position);
      },
    };
    const read = await readCheckpointHeader(counting);
    expect(read.header).toEqual(info.header);
    expect(furthest).toBeLessThanOrEqual(info.dataOffset);
  });

  test("readTensorInto streams in chunks into a larger target with monotonic progress", async () => {
    const info = parseCheckpointHeader(file);
    const record = info.tensors[2];
    const target = new Uint8Array(record.byteLength + 100);
    const progress: number[] = [];
    await readTensorInto(bytesSource(file), record, target, {
      chunkSize: 7,
      onProgress: (done, total) => {
        expect(total).toBe(record.byteLength);
        progress.push(done);
      },
    });
    expect(target.subarray(0, record.byteLength)).toEqual(input.tensors[2].bytes);
    expect(progress.length).toBe(Math.ceil(record.byteLength / 7));
    expect(progress.at(-1)).toBe(record.byteLength);
    expect(progress.every((d, i) => i === 0 || d > progress[i - 1])).toBe(true);
    await expect(readTensorInto(file, record, new Uint8Array(3))).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  test("tensors packed by the pack-* modules unpack to the same values after a round trip", async () => {
    const values = Float32Array.from({ length: 48 }, (_, i) => Math.sin(i) * 3);
    const packed = serializeCheckpoint({
      header: SAMPLE_HEADER,
      tensors: [
        { name: "w32", shape: [6, 8], encoding: { kind: "f32" }, bytes: packF32(values) },
        { name: "w16", shape: [48], encoding: { kind: "f16" }, bytes: packF16(values) },
      ],
    });
    const [w32, w16] = parseCheckpointHeader(packed).tensors;
    expect(unpackF32(await readTensorBytes(packed, w32), 48)).toEqual(values);
    expect(unpackF16(await readTensorBytes(packed, w16), 48)).toEqual(unpackF16(packF16(values), 48));
  });

  test("a checkpoint without tensors round-trips", () => {
    const empty = serializeCheckpoint({ header: { ...SAMPLE_HEADER, tokenizer: null }, tensors: [] });
    expect(empty.length % 64).toBe(0);
    const info = parseCheckpointHeader(empty);
    expect(info.tensors).toEqual([]);
    expect(info.header.tokenizer).toBeNull();
  });
});

describe("writer input validation", () => {
  const base = sampleInput();
  const withTensor = (patch: Record<string, unknown>) => ({
    header: base.header,
    tensors: [{ ...base.tensors[0], ...patch }],
  });

  test("rejects bytes that do not match the packed length", () => {
    expect(() => planCheckpoint(withTensor({ bytes: new Uint8Array(10) }))).toThrow(/packs to 2176/);
    expect(() => planCheckpoint(withTensor({ bytes: new Uint8Array(10) }))).toThrow(InvalidArgumentError);
  });

  test("rejects duplicate names, empty names, unknown encodings and bad shapes", () => {
    expect(() => planCheckpoint({ header: base.header, tensors: [base.tensors[0], base.tensors[0]] })).toThrow(/duplicate/);
    expect(() => planCheckpoint(withTensor({ name: "" }))).toThrow(InvalidArgumentError);
    expect(() => planCheckpoint(withTensor({ encoding: { kind: "q5" } }))).toThrow(/q5/);
    expect(() => planCheckpoint(withTensor({ shape: [17, -64] }))).toThrow(InvalidArgumentError);
  });

  test("rejects header values JSON cannot hold and malformed header sections", () => {
    expect(() => planCheckpoint({ ...base, header: { ...base.header, report: { kld: Number.NaN } } })).toThrow(/NaN/);
    const noConfig = { ...base.header, config: undefined } as unknown as typeof base.header;
    expect(() => planCheckpoint({ ...base, header: noConfig })).toThrow(/config/);
    const badTemplate = { ...base.header, chatTemplates: { default: 3 } } as unknown as typeof base.header;
    expect(() => planCheckpoint({ ...base, header: badTemplate })).toThrow(InvalidArgumentError);
  });

  test("reader errors are FormatError, writer input errors are not", () => {
    expect(() => parseCheckpointHeader(new Uint8Array(0))).toThrow(FormatError);
    expect(() => planCheckpoint(withTensor({ bytes: new Uint8Array(1) }))).not.toThrow(FormatError);
  });
});
