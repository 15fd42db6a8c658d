/** XXH32 against the published test vectors and, chunked and unaligned, against Bun's own XXH32. */

import { describe, expect, test } from "bun:test";
import { formatChecksum, xxhash32, XxHash32 } from "./checksum.ts";
import { seededBytes } from "../../test/fixtures/format-samples.ts";

const text = (s: string) => new TextEncoder().encode(s);

describe("xxhash32", () => {
  test("matches the published vectors", () => {
    // xxHash reference values (XXH32, seed 0), as listed by xxhsum and python-xxhash.
    expect(xxhash32(text(""))).toBe(0x02cc5d05);
    expect(xxhash32(text("a"))).toBe(0x550d7456);
    expect(xxhash32(text("abc"))).toBe(0x32d153ff);
    expect(xxhash32(text("Nobody inspects the spammish repetition"))).toBe(0xe2293b2f);
  });

  test("honours the seed (values cross-checked with Bun.hash.xxHash32)", () => {
    expect(xxhash32(text(""), 0x9e3779b1)).toBe(0x36b78ae7);
    expect(xxhash32(text("abc"), 0x9e3779b1)).toBe(0xa1ae7709);
  });

  test("equals Bun.hash.xxHash32 for every length 0..300, aligned and unaligned", () => {
    const data = seededBytes(301, 7);
    for (let n = 0; n <= 300; n++) {
      expect(xxhash32(data.subarray(0, n), 5)).toBe(Bun.hash.xxHash32(data.subarray(0, n), 5));
      expect(xxhash32(data.subarray(1, n + 1))).toBe(Bun.hash.xxHash32(data.subarray(1, n + 1)));
    }
  });

  test("incremental updates in chunks of any size give the one-shot hash", () => {
    const data = seededBytes(4099, 11);
    const expected = xxhash32(data);
    for (const step of [1, 3, 4, 15, 16, 17, 64, 1000, 4099]) {
      const h = new XxHash32();
      for (let at = 0; at < data.length; at += step) h.update(data.subarray(at, at + step));
      expect(h.digest()).toBe(expected);
    }
  });

  test("formats as 8 hex digits", () => {
    expect(formatChecksum(0x2cc5d05)).toBe("0x02cc5d05");
  });
});
