// lutRow (pack-lut.ts): one row of a LUT-encoded matrix dequantised straight from the packed
// bytes, as the embedding lookup of a tied table stored in the head's encoding reads it. Every
// row must equal that row of dequantizeLut bit for bit, for every LUT encoding, with partial
// row tiles, padded last groups and more than one 2048-column block.
import { describe, expect, test } from "bun:test";
import { type Encoding, encodingName } from "./encoding.ts";
import { dequantizeLut, type LutEncoding, lutRow } from "./pack-lut.ts";
import { quantizeRtn, randomFloats } from "../../test/fixtures/matmul-fixtures.ts";

const ENCODINGS: LutEncoding[] = [
  { kind: "bitplane", bits: 4, group: 64, scales: "zero-point" },
  { kind: "bitplane", bits: 4, group: 32, scales: "zero-point", scaleType: "bf16" },
  { kind: "bitplane", bits: 3, group: 128, scales: "zero-point" },
  { kind: "bitplane", bits: 2, group: 64, scales: "per-plane" },
  { kind: "bitplane", bits: 1, group: 32, scales: "zero-point" },
  { kind: "ternary", group: 64, planes: 1 },
  { kind: "ternary", group: 32, planes: 2, scaleType: "bf16" },
];

/** (rows, cols): a partial last tile; a padded last group; two column blocks with a partial second. */
const SHAPES: [number, number][] = [[37, 96], [21, 200], [18, 2176]];

describe("lutRow", () => {
  for (const e of ENCODINGS) {
    test(`${encodingName(e)}: every row equals dequantizeLut's, bit for bit`, () => {
      for (const [rows, cols] of SHAPES) {
        const bytes = quantizeRtn(e as Encoding, randomFloats(rows * cols, rows + cols), rows, cols);
        const all = dequantizeLut(e, bytes, rows, cols);
        for (let r = 0; r < rows; r++) {
          const row = lutRow(e, bytes, rows, cols, r);
          const want = all.subarray(r * cols, (r + 1) * cols);
          const bad = row.findIndex((v, c) => !Object.is(v, want[c]));
          expect({ rows, cols, r, bad }).toEqual({ rows, cols, r, bad: -1 });
        }
      }
    });
  }

  test("reads the bytes in place (an offset view into a larger buffer)", () => {
    const e = ENCODINGS[0];
    const bytes = quantizeRtn(e, randomFloats(40 * 128, 3), 40, 128);
    const buffer = new Uint8Array(bytes.length + 100);
    buffer.set(bytes, 64);
    expect(lutRow(e, buffer.subarray(64, 64 + bytes.length), 40, 128, 33)).toEqual(lutRow(e, bytes, 40, 128, 33));
  });

  test("a row outside the matrix or a short buffer is refused", () => {
    const e = ENCODINGS[0];
    const bytes = quantizeRtn(e, randomFloats(20 * 64, 4), 20, 64);
    expect(() => lutRow(e, bytes, 20, 64, 20)).toThrow(/row 20 is outside the 20 rows/);
    expect(() => lutRow(e, bytes, 20, 64, -1)).toThrow(/row -1/);
    expect(() => lutRow(e, bytes.subarray(0, bytes.length - 1), 20, 64, 0)).toThrow();
  });
});
