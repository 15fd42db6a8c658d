/**
 * Parity of the LUT matmul kernels (kernels-wasm/src/{lut,gemm}.rs) with their TypeScript
 * twins (reference/matmul.ts) for every bit width, ternary plane count, group size, scale
 * scheme and scale type, in both kernel flavours (i16 relaxed dot and i32 relaxed dot-add),
 * on odd shapes: rows not a multiple of the 16-row tile, cols not a multiple of the group,
 * m = 11 tokens (token tiles of 4, 4, 2 and 1), and matrices wider than one 2048-column
 * block. Tables and integer sums must match exactly; the scaled outputs too (the twin
 * repeats the kernel's f32 operations in order). Against an f64 matmul on the dequantised
 * weights the LUT result is bounded by the int8 table rounding: each looked-up entry is off
 * by at most half a table step ts/2, so per row |err| <= sum_g (ts_g/2) * (G/4) * sum_p |c_p|
 * (plus f32 rounding), c_p being plane p's weight in w.
 */
import { afterAll, describe, expect, test } from "bun:test";
import process from "node:process";
import type { Encoding } from "../format/encoding.ts";
import { encodingName, matrixLayout } from "../format/encoding.ts";
import { dequantize } from "../format/pack-dequantize.ts";
import { type LutEncoding, packBitplane, unpackLut } from "../format/pack-lut.ts";
import { buildLut as buildLutWasm, createLut, createPackedMatrix, gemm, gemv, lutGroupSums as lutGroupSumsWasm } from "./matmul.ts";
import { quantizeRtn, randomFloats } from "../../test/fixtures/matmul-fixtures.ts";
import { buildLut, gemmLut, lutByteLength, lutGroupSums, matmulF64 } from "./reference/matmul.ts";
import { loadKernels } from "./wasm.ts";

const k = loadKernels();
const ROWS = 37;
const COLS = 200;
const M = 11;

const encodings: LutEncoding[] = [];
for (const group of [32, 64, 128] as const) {
  for (const bits of [1, 2, 3, 4] as const) {
    for (const scales of ["zero-point", "per-plane"] as const) {
      encodings.push({ kind: "bitplane", bits, group, scales });
      if (group === 64) encodings.push({ kind: "bitplane", bits, group, scales, scaleType: "bf16" });
    }
  }
  for (const planes of [1, 2] as const) encodings.push({ kind: "ternary", group, planes });
}
encodings.push({ kind: "ternary", group: 64, planes: 1, scaleType: "bf16" }, { kind: "ternary", group: 128, planes: 2, scaleType: "bf16" });
// Group 256 (ggml's super-block): chunked i16 accumulation for 3 and 4 planes, ternary.
for (const bits of [2, 3, 4] as const) encodings.push({ kind: "bitplane", bits, group: 256, scales: "zero-point" });
encodings.push({ kind: "bitplane", bits: 3, group: 256, scales: "per-plane" }, { kind: "ternary", group: 256, planes: 1 }, { kind: "ternary", group: 256, planes: 2 });

/** The kernel flavours this binary runs (the baseline build has only the i16 one). */
const FLAVORS = (["madd", "dot"] as const).filter((_, f) => k.exports.set_lut_flavor(f) === 0);
const DEFAULT_FLAVOR = process.arch === "arm64" && FLAVORS.includes("dot") ? 1 : 0;
afterAll(() => k.exports.set_lut_flavor(DEFAULT_FLAVOR));

/** Runs `body` with the kernels set to each flavour in turn. */
function eachFlavor(body: (flavor: string) => void): void {
  for (const [f, name] of FLAVORS.entries()) {
    expect(k.exports.set_lut_flavor(f)).toBe(0);
    body(name);
  }
  k.exports.set_lut_flavor(DEFAULT_FLAVOR);
}

function activations(m: number, cols: number, seed: number): Float32Array {
  const x = randomFloats(m * cols, seed);
  // A zero group (table scale 0) and an outlier exercise the table's edge cases.
  for (let c = 32; c < 64 && c < cols; c++) x[c] = 0;
  x[5] = 9;
  return x;
}

/** Worst-case table-rounding bound per (token, row), see the module comment. */
function lutBound(e: LutEncoding, bytes: Uint8Array, rows: number, cols: number, luts: Uint8Array, m: number): Float32Array {
  const { scales, vectors, layout: l } = unpackLut(e, bytes, rows, cols);
  const stride = lutByteLength(cols, e.group);
  const out = new Float32Array(m * rows);
  for (let t = 0; t < m; t++) {
    const meta = new DataView(luts.buffer, luts.byteOffset + t * stride + l.groups * 4 * e.group);
    for (let r = 0; r < rows; r++) {
      let b = 0;
      for (let g = 0; g < l.groups; g++) {
        const s = (r * l.groups + g) * vectors;
        let coef = 0;
        if (e.kind === "ternary") { for (let q = 0; q < e.planes; q++) coef += 3 * Math.abs(scales[s + q]); }
        else if (e.scales === "zero-point") coef = Math.abs(scales[s]) * ((1 << e.bits) - 1);
        else for (let p = 0; p < e.bits; p++) coef += Math.abs(scales[s + p]);
        b += (meta.getFloat32(8 * g, true) / 2) * (e.group / 4) * coef;
      }
      out[t * rows + r] = b * 1.001 + 1e-4;
    }
  }
  return out;
}

function checkParity(e: LutEncoding, rows: number, cols: number, m: number): void {
  const w = randomFloats(rows * cols, 7);
  const bytes = quantizeRtn(e, w, rows, cols, 3);
  const x = activations(m, cols, 11);
  const mark = k.arena.mark();
  try {
    const a = createPackedMatrix(k, e, rows, cols, bytes);
    const lut = createLut(k, cols, e.group, m);
    buildLutWasm(k, lut, x, m);
    const stride = lutByteLength(cols, e.group);
    const luts = new Uint8Array(m * stride);
    for (let t = 0; t < m; t++) luts.set(buildLut(x.subarray(t * cols, (t + 1) * cols), cols, e.group), t * stride);
    expect(new Uint8Array(k.memory.buffer, lut.ptr, m * stride)).toEqual(luts);

    const sums = lutGroupSums(e, bytes, rows, cols, luts.subarray(0, stride));
    const ref = gemmLut(e, bytes, rows, cols, luts, m);
    const exact = matmulF64(dequantize(e, bytes, rows, cols), x, m, rows, cols);
    const bound = lutBound(e, bytes, rows, cols, luts, m);
    eachFlavor(() => {
      expect(lutGroupSumsWasm(k, a, lut)).toEqual(sums);
      const y = gemm(k, a, lut, m) as Float32Array;
      expect(y).toEqual(ref);
      const y0 = gemv(k, a, x.subarray(0, cols)) as Float32Array;
      expect(y0).toEqual(ref.subarray(0, rows));
      for (let i = 0; i < exact.length; i++) expect(Math.abs(y[i] - exact[i])).toBeLessThanOrEqual(bound[i]);
    });
  } finally {
    k.arena.release(mark);
  }
}

describe("LUT kernels match their twins", () => {
  for (const e of encodings) {
    test(`${encodingName(e)}: tables, int sums, gemv, gemm (rows ${ROWS}, cols ${COLS}, m ${M}), ${FLAVORS.join(" and ")}`, () => {
      checkParity(e, ROWS, COLS, M);
    });
  }
  const wide: LutEncoding[] = [
    { kind: "bitplane", bits: 2, group: 64, scales: "zero-point" },
    { kind: "bitplane", bits: 3, group: 32, scales: "per-plane", scaleType: "bf16" },
    { kind: "ternary", group: 128, planes: 2 },
  ];
  for (const e of wide) {
    test(`${encodingName(e)}: two column blocks (rows 21, cols 2048 + 200, m 5)`, () => {
      checkParity(e, 21, 2248, 5);
    });
  }
});

describe("LUT kernels: shapes and accuracy", () => {
  test("one table serves several matrices (fused Q/K/V) and equals per-call tables", () => {
    const e: Encoding = { kind: "bitplane", bits: 2, group: 64, scales: "zero-point" };
    const cols = 130;
    const x = randomFloats(cols, 5);
    const mark = k.arena.mark();
    try {
      const lut = createLut(k, cols, 64);
      buildLutWasm(k, lut, x);
      for (const [rows, seed] of [[16, 1], [48, 2], [5, 3]]) {
        const a = createPackedMatrix(k, e, rows, cols, quantizeRtn(e, randomFloats(rows * cols, seed), rows, cols));
        expect(gemv(k, a, lut)).toEqual(gemv(k, a, x) as Float32Array);
      }
    } finally {
      k.arena.release(mark);
    }
  });

  test("m = 1..17 tokens: every gemm row equals gemv of that token", () => {
    const e: Encoding = { kind: "ternary", group: 32, planes: 2 };
    const rows = 33;
    const cols = 70;
    const mark = k.arena.mark();
    try {
      const a = createPackedMatrix(k, e, rows, cols, quantizeRtn(e, randomFloats(rows * cols, 9), rows, cols));
      for (const m of [1, 7, 8, 9, 17]) {
        const x = randomFloats(m * cols, 100 + m);
        const y = gemm(k, a, x, m) as Float32Array;
        for (let t = 0; t < m; t++) {
          expect(y.subarray(t * rows, (t + 1) * rows)).toEqual(gemv(k, a, x.subarray(t * cols, (t + 1) * cols)) as Float32Array);
        }
      }
    } finally {
      k.arena.release(mark);
    }
  });

  // The kernels accumulate lookups with plane weights in int16 (4 planes at group 128 in two
  // halves): codes all 2^b-1 (or 0) under equal activations make every lookup the table's
  // limit 127 (or 0), the largest sums the accumulators ever see.
  test("zero-point at the table limit: sums stay exact for every bits/group, both flavours", () => {
    for (const group of [32, 64, 128, 256] as const) {
      for (const bits of [1, 2, 3, 4] as const) {
        const e = { kind: "bitplane", bits, group, scales: "zero-point" } as const;
        const [rows, cols] = [32, 2 * group];
        const codes = Uint8Array.from({ length: rows * cols }, (_, i) => (Math.floor(i / cols) % 2 === 0 ? (1 << bits) - 1 : 0));
        const n = rows * 2;
        const bytes = packBitplane(e, codes, { scales: new Float32Array(n).fill(0.5), zeros: new Float32Array(n).fill(0.25) }, rows, cols);
        const x = new Float32Array(cols).fill(1.5);
        const lut = buildLut(x, cols, group);
        const mark = k.arena.mark();
        try {
          const a = createPackedMatrix(k, e, rows, cols, bytes);
          eachFlavor(() => {
            const y = gemv(k, a, x) as Float32Array;
            expect(y).toEqual(gemmLut(e, bytes, rows, cols, lut, 1));
            const exact = matmulF64(dequantize(e, bytes, rows, cols), x, 1, rows, cols);
            expect(Array.from(y, (v, i) => Math.abs(v - exact[i]) <= 1e-4 * Math.abs(exact[i]))).not.toContain(false);
          });
        } finally {
          k.arena.release(mark);
        }
      }
    }
  });

  test("2-bit g128 LUT result stays within 2% (relative RMS) of fp32 on the dequantised weights", () => {
    const e: Encoding = { kind: "bitplane", bits: 2, group: 128, scales: "zero-point" };
    const rows = 64;
    const cols = 512;
    const bytes = quantizeRtn(e, randomFloats(rows * cols, 21), rows, cols);
    const x = randomFloats(cols, 22);
    const mark = k.arena.mark();
    try {
      const y = gemv(k, createPackedMatrix(k, e, rows, cols, bytes), x) as Float32Array;
      const exact = matmulF64(dequantize(e, bytes, rows, cols), x, 1, rows, cols);
      let num = 0;
      let den = 0;
      for (let i = 0; i < rows; i++) {
        num += (y[i] - exact[i]) ** 2;
        den += exact[i] ** 2;
      }
      expect(Math.sqrt(num / den)).toBeLessThan(0.02);
      expect(matrixLayout(e, rows, cols).byteLength * 8 / (rows * cols)).toBe(2.25);
    } finally {
      k.arena.release(mark);
    }
  });
});
