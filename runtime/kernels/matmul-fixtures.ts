/**
 * Test fixtures for the matmul kernels: a seeded RNG and simple round-to-nearest quantisers
 * that turn random floats into codes + scales for every encoding (tests only; the real
 * quantizer lives in quantizer/).
 */
import { type Encoding, matrixLayout } from "../format/encoding.ts";
import { packF16, packF32 } from "../format/pack-f16.ts";
import { type BitplaneEncoding, packBitplane, packTernary, type TernaryEncoding } from "../format/pack-lut.ts";
import { packQ8, type Q8Encoding } from "../format/pack-q8.ts";

/** mulberry32: deterministic uniform [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Roughly normal values (sum of uniforms) times `scale`. */
export function randomFloats(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() + r() + r() - 1.5) * 2 * scale;
  return out;
}

function groupRange(w: Float32Array, cols: number, r: number, start: number, end: number): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let c = start; c < end; c++) {
    lo = Math.min(lo, w[r * cols + c]);
    hi = Math.max(hi, w[r * cols + c]);
  }
  return [lo, hi];
}

/** Packs random weights `w` (rows, cols) in encoding `e` with a round-to-nearest quantiser. */
export function quantizeRtn(e: Encoding, w: Float32Array, rows: number, cols: number, seed = 1): Uint8Array {
  switch (e.kind) {
    case "f32":
      return packF32(w);
    case "f16":
      return packF16(w);
    case "q8":
      return rtnQ8(e, w, rows, cols);
    case "bitplane":
      return rtnBitplane(e, w, rows, cols, seed);
    case "ternary":
      return rtnTernary(e, w, rows, cols);
  }
}

function rtnQ8(e: Q8Encoding, w: Float32Array, rows: number, cols: number): Uint8Array {
  const groups = Math.ceil(cols / e.group);
  const codes = new Int8Array(rows * cols);
  const scales = new Float32Array(rows * groups);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const [lo, hi] = groupRange(w, cols, r, g * e.group, Math.min(cols, (g + 1) * e.group));
      const d = Math.max(Math.abs(lo), Math.abs(hi)) / 127 || 1;
      scales[r * groups + g] = d;
      for (let c = g * e.group; c < Math.min(cols, (g + 1) * e.group); c++) {
        codes[r * cols + c] = Math.max(-127, Math.min(127, Math.round(w[r * cols + c] / d)));
      }
    }
  }
  return packQ8(e, codes, scales, rows, cols);
}

/** zero-point: d = range/(2^b-1), z = -min/d; per-plane: s_p = d*2^p jittered, offset = min. */
function rtnBitplane(e: BitplaneEncoding, w: Float32Array, rows: number, cols: number, seed: number): Uint8Array {
  const { groups } = matrixLayout(e, rows, cols);
  const levels = (1 << e.bits) - 1;
  const perRow = e.scales === "zero-point" ? 1 : e.bits;
  const codes = new Uint8Array(rows * cols);
  const scales = new Float32Array(rows * groups * perRow);
  const zeros = new Float32Array(rows * groups);
  const jitter = rng(seed);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const start = g * e.group;
      const end = Math.min(cols, start + e.group);
      const [lo, hi] = groupRange(w, cols, r, start, end);
      const d = (hi - lo) / levels || 1;
      const rg = r * groups + g;
      if (e.scales === "zero-point") {
        scales[rg] = d;
        zeros[rg] = -lo / d;
      } else {
        for (let p = 0; p < e.bits; p++) scales[rg * perRow + p] = d * 2 ** p * (0.9 + 0.2 * jitter());
        zeros[rg] = lo;
      }
      for (let c = start; c < end; c++) {
        codes[r * cols + c] = Math.max(0, Math.min(levels, Math.round((w[r * cols + c] - lo) / d)));
      }
    }
  }
  return packBitplane(e, codes, { scales, zeros }, rows, cols);
}

/** BitNet absmean per group for plane 1; plane 2 (PTQTP-like) fits the residual the same way. */
function rtnTernary(e: TernaryEncoding, w: Float32Array, rows: number, cols: number): Uint8Array {
  const { groups } = matrixLayout(e, rows, cols);
  const n = rows * cols;
  const trits = new Int8Array(e.planes * n);
  const alphas = new Float32Array(rows * groups * e.planes);
  const residual = Float32Array.from(w);
  for (let k = 0; k < e.planes; k++) {
    for (let r = 0; r < rows; r++) {
      for (let g = 0; g < groups; g++) {
        const start = g * e.group;
        const end = Math.min(cols, start + e.group);
        let mean = 0;
        for (let c = start; c < end; c++) mean += Math.abs(residual[r * cols + c]);
        const alpha = mean / (end - start) || 1;
        alphas[(r * groups + g) * e.planes + k] = alpha;
        for (let c = start; c < end; c++) {
          const t = Math.max(-1, Math.min(1, Math.round(residual[r * cols + c] / alpha)));
          trits[k * n + r * cols + c] = t;
          residual[r * cols + c] -= alpha * t;
        }
      }
    }
  }
  return packTernary(e, trits, alphas, rows, cols);
}
