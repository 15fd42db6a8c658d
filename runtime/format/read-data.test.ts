/**
 * readDataSection: the whole data section lands byte for byte at `offset - dataOffset` for
 * every chunk size and number of reads in flight, with reads finishing out of order and short;
 * tensors are hashed one at a time in file order whatever the table order; one flipped byte in
 * any tensor, or a file that ends early, is refused naming the tensor, and only after every
 * read in flight has finished.
 */
import { describe, expect, test } from "bun:test";
import { FormatError, InvalidArgumentError } from "../errors.ts";
import { XxHash32 } from "./checksum.ts";
import { type ByteSource, bytesSource, parseCheckpointHeader } from "./reader.ts";
import { dataSectionBytes, readDataSection } from "./read-data.ts";
import { serializeCheckpoint } from "./writer.ts";
import { assemble, sampleInput, seededBytes } from "../../test/fixtures/format-samples.ts";

const file = serializeCheckpoint(sampleInput());
const info = parseCheckpointHeader(file);
const section = () => file.subarray(info.dataOffset, info.fileLength);

/**
 * A source whose reads finish in a scrambled order (each waits a seeded number of microtask
 * turns) and return at most `most` bytes; it counts reads in flight.
 */
function scrambledSource(bytes: Uint8Array, seed: number, most = Infinity) {
  const inner = bytesSource(bytes);
  const rng = seededBytes(4096, seed);
  let reads = 0;
  const state = { inFlight: 0, maxInFlight: 0, outOfOrder: false, lastDone: -1 };
  const source: ByteSource = {
    size: bytes.length,
    async read(target, position) {
      state.inFlight++;
      state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
      try {
        for (let i = rng[reads++ % rng.length] % 5; i > 0; i--) await null;
        if (position < state.lastDone) state.outOfOrder = true;
        state.lastDone = position;
        return inner.read(target.subarray(0, Math.min(target.length, most)), position) as number;
      } finally {
        state.inFlight--;
      }
    },
  };
  return { source, state };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

describe("readDataSection", () => {
  for (const [chunkSize, concurrency, most] of [[64, 1, Infinity], [100, 3, Infinity], [7, 4, 5], [1 << 20, 2, 333], [4096, 8, Infinity]]) {
    test(`chunks of ${chunkSize}, ${concurrency} in flight, reads of at most ${most}: the section lands byte for byte`, async () => {
      const { source, state } = scrambledSource(file, chunkSize + concurrency, most);
      const target = new Uint8Array(dataSectionBytes(info) + 10).fill(0xee);
      const seen: [string, number][] = [];
      await readDataSection(source, info, target, { chunkSize, concurrency, onTensor: (r, done) => seen.push([r.name, done]) });
      expect(target.subarray(0, dataSectionBytes(info))).toEqual(section());
      expect(target.subarray(dataSectionBytes(info))).toEqual(new Uint8Array(10).fill(0xee));
      const inFileOrder = [...info.tensors].sort((a, b) => a.offset - b.offset);
      expect(seen).toEqual(inFileOrder.map((t) => [t.name, t.offset + t.byteLength - info.dataOffset]));
      expect(state.maxInFlight).toBeLessThanOrEqual(concurrency);
      if (concurrency > 1 && chunkSize < 200) expect([state.maxInFlight > 1, state.outOfOrder]).toEqual([true, true]);
      expect(state.inFlight).toBe(0);
    });
  }

  test("hashes one tensor at a time: each digest is taken before the next hash starts", async () => {
    let open = 0;
    let created = 0;
    const createHash = () => {
      expect(open).toBe(0);
      open++;
      created++;
      const inner = new XxHash32();
      return {
        update: (bytes: Uint8Array) => inner.update(bytes),
        digest: () => {
          open--;
          return inner.digest();
        },
      };
    };
    await readDataSection(scrambledSource(file, 3).source, info, new Uint8Array(dataSectionBytes(info)), {
      chunkSize: 50,
      concurrency: 4,
      createHash,
    });
    expect(created).toBe(info.tensors.length);
  });

  test("a table in another order than the data, with gaps between tensors", async () => {
    const a = seededBytes(100, 1);
    const b = seededBytes(64, 2);
    const base = parseCheckpointHeader(assemble({ records: [] })).dataOffset + 1024; // room for the table
    const records = [
      { name: "b", shape: [16], encoding: { kind: "f32" }, offset: base + 512, byteLength: 64 },
      { name: "a", shape: [25], encoding: { kind: "f32" }, offset: base + 128, byteLength: 100 },
    ];
    const bytes = assemble({ records, payloads: { a, b } });
    const meta = parseCheckpointHeader(bytes);
    const target = new Uint8Array(dataSectionBytes(meta));
    const seen: string[] = [];
    await readDataSection(scrambledSource(bytes, 9).source, meta, target, {
      chunkSize: 48,
      concurrency: 3,
      onTensor: (r) => seen.push(r.name),
    });
    expect(seen).toEqual(["a", "b"]);
    expect(target.subarray(base - meta.dataOffset + 128, base - meta.dataOffset + 228)).toEqual(a);
    expect(target.subarray(base - meta.dataOffset + 512, base - meta.dataOffset + 576)).toEqual(b);
  });

  test("a checkpoint without tensors has an empty section", async () => {
    const empty = assemble({ records: [] });
    const meta = parseCheckpointHeader(empty);
    expect(dataSectionBytes(meta)).toBe(0);
    await readDataSection(bytesSource(empty), meta, new Uint8Array(0));
  });

  describe("one flipped byte in each tensor is refused, naming it, after every read has finished", () => {
    for (const record of info.tensors) {
      test(record.name, async () => {
        for (const at of [record.offset, record.offset + (record.byteLength >> 1), record.offset + record.byteLength - 1]) {
          const damaged = file.slice();
          damaged[at] ^= 0x04;
          const { source, state } = scrambledSource(damaged, at);
          const error = await rejection(
            readDataSection(source, info, new Uint8Array(dataSectionBytes(info)), { chunkSize: 96, concurrency: 4 }),
          );
          expect(error).toBeInstanceOf(FormatError);
          expect((error as FormatError).tensor).toBe(record.name);
          expect((error as FormatError).message).toContain(`tensor "${record.name}" checksum mismatch`);
          expect(state.inFlight).toBe(0);
        }
      });
    }
  });

  test("a file that ends early (it shrank after its header was read) is refused, naming the tensor cut", async () => {
    const cutRecord = info.tensors[3];
    const cut = cutRecord.offset + 10;
    const { source, state } = scrambledSource(file.subarray(0, cut), 4);
    const error = await rejection(readDataSection(source, info, new Uint8Array(dataSectionBytes(info)), { chunkSize: 64, concurrency: 3 }));
    expect(error).toBeInstanceOf(FormatError);
    expect((error as FormatError).tensor).toBe(cutRecord.name);
    expect((error as FormatError).offset).toBe(cut);
    expect((error as FormatError).message).toContain("truncated");
    expect(state.inFlight).toBe(0);
  });

  test("refuses a target too small for the section, and chunk sizes or read counts that are not positive integers", async () => {
    const source = bytesSource(file);
    expect(rejection(readDataSection(source, info, new Uint8Array(dataSectionBytes(info) - 1)))).resolves.toBeInstanceOf(
      InvalidArgumentError,
    );
    for (const bad of [0, -1, 1.5, NaN]) {
      const target = new Uint8Array(dataSectionBytes(info));
      expect(await rejection(readDataSection(source, info, target, { chunkSize: bad }))).toBeInstanceOf(InvalidArgumentError);
      expect(await rejection(readDataSection(source, info, target, { concurrency: bad }))).toBeInstanceOf(InvalidArgumentError);
    }
  });
});
