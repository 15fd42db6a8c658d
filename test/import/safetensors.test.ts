/** safetensors reader/writer: round trips per dtype, deterministic layout, corrupt files. */

import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError } from "../../runtime/errors.ts";
import { f16ToF32, f32ToBf16, f32ToF16 } from "../../runtime/import/dtypes.ts";
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from "../../runtime/import/safetensors.ts";
import { expectTypedError, tempDir } from "./import-util.ts";

const VALUES = new Float32Array([0, 1, -2.5, 3.140625, 65504, -1e-3, 0.1, 1 / 3]);

function writeSample(file: string): void {
  writeSafetensors(
    file,
    [
      { name: "b.weight", shape: [2, 4], data: VALUES },
      { name: "a.half", shape: [8], data: VALUES, dtype: "F16" },
      { name: "c.brain", shape: [4, 2], data: VALUES, dtype: "BF16" },
    ],
    { format: "pt" },
  );
}

function header(bytes: Uint8Array): Record<string, unknown> {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
}

describe("safetensors", () => {
  test("round trip F32 exactly, F16 and BF16 to their rounding", () => {
    const file = path.join(tempDir(), "m.safetensors");
    writeSample(file);
    const { header: h, tensors } = readSafetensors(file);
    expect(h.metadata).toEqual({ format: "pt" });
    expect(tensors.get("b.weight")!.shape).toEqual([2, 4]);
    expect(tensors.get("b.weight")!.dtype).toBe("F32");
    expect(Array.from(tensors.get("b.weight")!.read())).toEqual(Array.from(VALUES));
    const half = tensors.get("a.half")!.read();
    expect(Array.from(half)).toEqual(Array.from(VALUES, (v) => f16ToF32(f32ToF16(v))));
    expect(half[3]).toBe(3.140625);
    expect(half[4]).toBe(65504);
    const bf = tensors.get("c.brain")!.read();
    expect(bf[2]).toBe(-2.5);
    expect(bf[6]).toBeCloseTo(0.1, 2);
    expect(f32ToBf16(1)).toBe(0x3f80);
  });

  test("writer is deterministic: sorted names, 8-byte aligned space-padded header", () => {
    const dir = tempDir();
    writeSample(path.join(dir, "1.safetensors"));
    writeSample(path.join(dir, "2.safetensors"));
    const a = fs.readFileSync(path.join(dir, "1.safetensors"));
    expect(a.equals(fs.readFileSync(path.join(dir, "2.safetensors")))).toBe(true);
    const n = Number(a.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const text = a.subarray(8, 8 + n).toString("utf8");
    expect(text.trimEnd().endsWith("}")).toBe(true);
    expect(/^ *$/.test(text.slice(text.trimEnd().length))).toBe(true);
    const keys = Object.keys(header(new Uint8Array(a)));
    expect(keys).toEqual(["__metadata__", "a.half", "b.weight", "c.brain"]);
    const parsed = readSafetensorsHeader(new Uint8Array(a), "mem");
    expect(parsed.tensors.map((t) => t.offset)).toEqual([8 + n, 8 + n + 16, 8 + n + 48]);
  });

  test("F16 conversion rounds to nearest even and handles subnormals and overflow", () => {
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f16ToF32(f32ToF16(2 ** -24))).toBe(2 ** -24);
    expect(f32ToF16(1e6)).toBe(0x7c00);
    expect(f32ToF16(-0)).toBe(0x8000);
  });
});

describe("safetensors: corrupt files raise FormatError with file and offset", () => {
  const dir = tempDir();
  const good = path.join(dir, "good.safetensors");
  writeSample(good);
  const bytes = new Uint8Array(fs.readFileSync(good));
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));

  function variant(name: string, data: Uint8Array): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, data);
    return file;
  }

  test("truncated inside the 8-byte length", async () => {
    const file = variant("short.safetensors", bytes.slice(0, 5));
    await expectTypedError(() => readSafetensors(file), FormatError, { file, offset: 0 });
  });

  test("header length beyond the file", async () => {
    const copy = bytes.slice();
    new DataView(copy.buffer).setBigUint64(0, 1n << 40n, true);
    const file = variant("hugeheader.safetensors", copy);
    await expectTypedError(() => readSafetensors(file), FormatError, { file, offset: 0, message: /header length/ });
  });

  test("tensor bytes run past the end of the file", async () => {
    const file = variant("cut.safetensors", bytes.slice(0, bytes.length - 4));
    const err = await expectTypedError(() => readSafetensors(file), FormatError, { file, tensor: "c.brain" });
    expect((err as FormatError).offset).toBe(8 + n + 48);
  });

  test("unknown dtype", async () => {
    const h = header(bytes) as Record<string, { dtype: string }>;
    h["b.weight"]!.dtype = "Q9_X";
    const json = new TextEncoder().encode(JSON.stringify(h).padEnd(n, " "));
    const copy = bytes.slice();
    copy.set(json, 8);
    const file = variant("dtype.safetensors", copy);
    await expectTypedError(() => readSafetensors(file), FormatError, { file, tensor: "b.weight", offset: 8, message: /Q9_X/ });
  });

  test("header that is not JSON, and offsets that disagree with the shape", async () => {
    const copy = bytes.slice();
    copy[8] = 0x5b; // "["
    const file = variant("json.safetensors", copy);
    await expectTypedError(() => readSafetensors(file), FormatError, { file, offset: 8 });
    const h = header(bytes) as Record<string, { shape: number[] }>;
    h["b.weight"]!.shape = [4, 4];
    const copy2 = bytes.slice();
    copy2.set(new TextEncoder().encode(JSON.stringify(h).padEnd(n, " ")), 8);
    const file2 = variant("shape.safetensors", copy2);
    await expectTypedError(() => readSafetensors(file2), FormatError, { file: file2, tensor: "b.weight" });
  });

  test("every truncation point gives a FormatError, never a RangeError", () => {
    for (let cut = 0; cut < bytes.length; cut += 7) {
      const file = variant("t.safetensors", bytes.slice(0, cut));
      let err: unknown;
      try {
        readSafetensors(file);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FormatError);
    }
  });

  test("a non-existent path names the path", async () => {
    const file = path.join(dir, "nope.safetensors");
    await expectTypedError(() => readSafetensors(file), FormatError, { file });
  });
});
