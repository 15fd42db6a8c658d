/**
 * Packing round trips for every encoding (runtime/format/pack-*.ts): codes and f16/bf16
 * scales come back unchanged from the native layout, dequantize applies each encoding's formula,
 * packedByteLength matches the packed size, and invalid inputs raise FormatError.
 */
import { describe, expect, test } from "bun:test";
import { FormatError } from "../errors.ts";
import { type Encoding, encodingName, matrixLayout, packedByteLength, validateEncoding } from "../format/encoding.ts";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, packF16, roundToF16 } from "../format/pack-f16.ts";
import { dequantize } from "../format/pack-dequantize.ts";
import { type BitplaneEncoding, packBitplane, packTernary, unpackLut } from "../format/pack-lut.ts";
import { packQ8, unpackQ8 } from "../format/pack-q8.ts";
import { rng } from "../../test/fixtures/matmul-fixtures.ts";

const ROWS = 19;
const COLS = 75;

describe("f16", () => {
  test("round-half-even conversion, exact back", () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00);
    expect(f32ToF16(2 ** -24)).toBe(1);
    expect(f32ToF16(2 ** -25)).toBe(0);
    expect(f32ToF16(3 * 2 ** -25)).toBe(2);
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00);
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    for (let h = 0; h < 0x7c00; h += 7) expect(f32ToF16(f16ToF32(h))).toBe(h);
    expect(Array.from(new Uint16Array(packF16(Float32Array.from([-2, 0.5])).buffer))).toEqual([0xc000, 0x3800]);
  });
});

describe("LUT encodings round trip", () => {
  const roundBf16 = (v: number) => bf16ToF32(f32ToBf16(v));
  for (const group of [32, 64, 128] as const) {
    for (const bits of [1, 2, 3, 4] as const) {
      for (const scales of ["zero-point", "per-plane"] as const) {
        for (const st of ["f16", "bf16"] as const) {
          const e = validateEncoding({ kind: "bitplane", bits, group, scales, scaleType: st });
          const round = st === "bf16" ? roundBf16 : roundToF16;
          test(encodingName(e), () => {
            const r = rng(bits * 100 + group);
            const groups = Math.ceil(COLS / group);
            const codes = Uint8Array.from({ length: ROWS * COLS }, () => Math.floor(r() * (1 << bits)));
            const perRow = scales === "zero-point" ? 1 : bits;
            const sc = Float32Array.from({ length: ROWS * groups * perRow }, () => r() * 0.1 + 0.001);
            const zeros = Float32Array.from({ length: ROWS * groups }, () => r() * 4 - 1);
            const bytes = packBitplane(e as BitplaneEncoding, codes, { scales: sc, zeros }, ROWS, COLS);
            expect(bytes.byteLength).toBe(packedByteLength(e, [ROWS, COLS]));
            const u = unpackLut(e as BitplaneEncoding, bytes, ROWS, COLS);
            const w = dequantize(e, bytes, ROWS, COLS);
            for (let row = 0; row < ROWS; row++) {
              for (let c = 0; c < COLS; c++) {
                const q = codes[row * COLS + c];
                expect(u.codes[row * u.layout.colsPadded + c]).toBe(q);
                const rg = row * groups + Math.floor(c / group);
                let want: number;
                // zero-point stores d and the offset m = -d*z (d as stored); per-plane stores the offset itself.
                if (scales === "zero-point") want = Math.fround(round(sc[rg]) * q) + round(-round(sc[rg]) * zeros[rg]);
                else {
                  want = round(zeros[rg]);
                  for (let p = 0; p < bits; p++) want += round(sc[rg * perRow + p]) * ((q >> p) & 1);
                }
                expect(w[row * COLS + c]).toBeCloseTo(want, 5);
              }
            }
          });
        }
      }
    }
    for (const planes of [1, 2] as const) {
      const e = { kind: "ternary", group, planes } as const;
      test(encodingName(e), () => {
        const r = rng(planes * 1000 + group);
        const groups = Math.ceil(COLS / group);
        const trits = Int8Array.from({ length: planes * ROWS * COLS }, () => Math.floor(r() * 3) - 1);
        const alphas = Float32Array.from({ length: ROWS * groups * planes }, () => r() + 0.01);
        const bytes = packTernary(e, trits, alphas, ROWS, COLS);
        expect(bytes.byteLength).toBe(packedByteLength(e, [ROWS, COLS]));
        const w = dequantize(e, bytes, ROWS, COLS);
        for (let i = 0; i < ROWS * COLS; i++) {
          const rg = Math.floor(i / COLS) * groups + Math.floor((i % COLS) / group);
          let want = roundToF16(alphas[rg * planes]) * trits[i];
          if (planes === 2) want += roundToF16(alphas[rg * planes + 1]) * trits[ROWS * COLS + i];
          expect(w[i]).toBeCloseTo(want, 5);
        }
      });
    }
  }

  test("offsets are stored exactly (a GGUF Q4_1-style d and min need no zero point)", () => {
    const e = { kind: "bitplane", bits: 4, group: 32, scales: "zero-point" } as const;
    const groups = Math.ceil(COLS / 32);
    const r = rng(9);
    const codes = Uint8Array.from({ length: ROWS * COLS }, () => Math.floor(r() * 16));
    const d = Float32Array.from({ length: ROWS * groups }, () => roundToF16(r() * 0.1 + 0.001));
    const m = Float32Array.from({ length: ROWS * groups }, () => roundToF16(r() - 0.5));
    const w = dequantize(e, packBitplane(e, codes, { scales: d, offsets: m }, ROWS, COLS), ROWS, COLS);
    for (let i = 0; i < ROWS * COLS; i++) {
      const rg = Math.floor(i / COLS) * groups + Math.floor((i % COLS) / 32);
      expect(w[i]).toBe(Math.fround(Math.fround(d[rg] * codes[i]) + m[rg]));
    }
  });

  test("a matrix wider than one column block round-trips (blocks of 2048 columns, the last one short)", () => {
    const e = { kind: "bitplane", bits: 3, group: 64, scales: "zero-point" } as const;
    const [rows, cols] = [21, 2048 + 192];
    const r = rng(11);
    const codes = Uint8Array.from({ length: rows * cols }, () => Math.floor(r() * 8));
    const groups = Math.ceil(cols / 64);
    const sc = Float32Array.from({ length: rows * groups }, () => r() + 0.01);
    const zeros = Float32Array.from({ length: rows * groups }, () => r() * 7);
    const u = unpackLut(e, packBitplane(e, codes, { scales: sc, zeros }, rows, cols), rows, cols);
    for (let row = 0; row < rows; row++) {
      for (let c = 0; c < cols; c++) expect(u.codes[row * u.layout.colsPadded + c]).toBe(codes[row * cols + c]);
    }
  });
});

describe("q8, f16, f32 round trip and sizes", () => {
  test("q8 codes and scales come back", () => {
    const e = { kind: "q8", group: 32 } as const;
    const r = rng(5);
    const codes = Int8Array.from({ length: ROWS * COLS }, () => Math.floor(r() * 255) - 127);
    const scales = Float32Array.from({ length: ROWS * 3 }, () => r());
    const bytes = packQ8(e, codes, scales, ROWS, COLS);
    expect(bytes.byteLength).toBe(packedByteLength(e, [ROWS, COLS]));
    const u = unpackQ8(e, bytes, ROWS, COLS);
    expect(u.codes).toEqual(codes);
    expect(u.scales).toEqual(scales.map(roundToF16));
    expect(dequantize(e, bytes, ROWS, COLS)[40]).toBeCloseTo(roundToF16(scales[1]) * codes[40], 6);
  });

  test("packedByteLength: layouts and rejections", () => {
    expect(packedByteLength({ kind: "f32" }, [7])).toBe(28);
    expect(packedByteLength({ kind: "f16" }, [3, 5])).toBe(30);
    const q2: Encoding = { kind: "bitplane", bits: 2, group: 128, scales: "zero-point" };
    expect(packedByteLength(q2, [2048, 5632])).toBe(2048 * 5632 * 2.25 / 8);
    expect(packedByteLength({ kind: "ternary", group: 64, planes: 1 }, [16, 64])).toBe(256 + 32);
    expect(matrixLayout(q2, 17, 129)).toMatchObject({ rowsPadded: 32, colsPadded: 256, groups: 2 });
    expect(() => packedByteLength(q2, [64])).toThrow(FormatError);
    expect(() => packedByteLength({ kind: "f32" }, [2, 3, 4])).toThrow(FormatError);
    expect(() => packedByteLength({ kind: "f32" }, [0])).toThrow(FormatError);
    expect(() => packedByteLength(q2, [3, 1.5])).toThrow(FormatError);
  });

  test("validateEncoding accepts the known kinds and rejects the rest", () => {
    expect(validateEncoding({ kind: "ternary", group: 32, planes: 2, extra: 1 })).toEqual({ kind: "ternary", group: 32, planes: 2 });
    for (
      const bad of [
        null,
        3,
        [],
        { kind: "q5" },
        { kind: "q8", group: 20 },
        { kind: "bitplane", bits: 0, group: 32, scales: "zero-point" },
        { kind: "bitplane", bits: 2, group: 16, scales: "zero-point" },
        { kind: "bitplane", bits: 2, group: 32, scales: "x" },
        { kind: "ternary", group: 32, planes: 3 },
      ]
    ) {
      expect(() => validateEncoding(bad)).toThrow(FormatError);
    }
  });

  test("packers reject out-of-range codes and non-f16 scales", () => {
    const e = { kind: "bitplane", bits: 2, group: 32, scales: "zero-point" } as const;
    const ones = new Float32Array(2);
    expect(() => packBitplane(e, Uint8Array.from([4, 0]), { scales: ones, zeros: ones }, 2, 1)).toThrow(FormatError);
    expect(() => packBitplane(e, Uint8Array.from([1, 0]), { scales: Float32Array.from([1e6, 1]), zeros: ones }, 2, 1)).toThrow(FormatError);
    expect(() => packTernary({ kind: "ternary", group: 32, planes: 1 }, Int8Array.from([2]), Float32Array.from([1]), 1, 1)).toThrow(
      FormatError,
    );
  });
});
