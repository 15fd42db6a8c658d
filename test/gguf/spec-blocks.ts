/**
 * Blocks with known values for the decoder tests: each packer lays chosen struct fields out
 * as ggml-common.h's block struct does (scales as f16 bit patterns, codes, grid and sign
 * indices), and `expected` gives the weights those fields stand for by the format's formula
 * (ggml-quants.c's reference arithmetic, binary32 at every step). Independent of the
 * importer's decoders; the grid tables are shared data.
 */
import { IQ1S_GRID } from "../../runtime/import/ggml-grid-iq1s.ts";
import { IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS, KVALUES_IQ4NL } from "../../runtime/import/ggml-grids.ts";
import { halfToNumber } from "./spec-decoders.ts";

const r = Math.fround;

/** Fields of one block: f16 scales as bit patterns, everything else as small integers. */
export interface BlockFields {
  readonly d: number;
  /** Second f16 (Q4_1/Q5_1 m, K-quant dmin). */
  readonly dmin?: number;
  /** Q8_K's f32 scale. */
  readonly d32?: number;
  /** Sub-block scales (format-specific range). */
  readonly sc?: readonly number[];
  /** Sub-block mins (Q2_K, Q4_K, Q5_K). */
  readonly m?: readonly number[];
  /** Per-weight codes (legacy, K, IQ4, ternary: t + 1). */
  readonly q?: readonly number[];
  /** Per-group grid indices (IQ2: 32 groups of 8; IQ3: 64 points of 4; IQ1: 32 groups of 8). */
  readonly grid?: readonly number[];
  /** Per-group sign bytes (IQ2_S, IQ3_S) or sign-pattern indices 0..127 (IQ2_XXS, IQ2_XS, IQ3_XXS). */
  readonly signs?: readonly number[];
  /** IQ1 delta signs per group (IQ1_M) or per sub-block (IQ1_S): true = −0.125. */
  readonly negDelta?: readonly boolean[];
}

interface Packer {
  readonly bytes: number;
  pack(f: BlockFields, out: Uint8Array): void;
  expected(f: BlockFields): number[];
}

const h = (bits: number) => halfToNumber(bits);
const put16 = (out: Uint8Array, at: number, v: number) => {
  out[at] = v & 255;
  out[at + 1] = (v >> 8) & 255;
};
const put32 = (out: Uint8Array, at: number, v: number) => {
  for (let k = 0; k < 4; k++) out[at + k] = Math.floor(v / 2 ** (8 * k)) & 255;
};
const nib = (out: Uint8Array, at: number, q: readonly number[], base = 0) => {
  for (let j = 0; j < 16; j++) out[at + j] = (q[base + j]! & 15) | ((q[base + 16 + j]! & 15) << 4);
};
const signOf = (byte: number, j: number) => ((byte >> j) & 1) === 1 ? -1 : 1;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Q2_K / Q3_K / TQ2_0 placement of 2-bit codes: weight i at bits 2((i>>5)&3) of byte 32(i>>7) + (i&31). */
function pack2bit(out: Uint8Array, at: number, codes: readonly number[]): void {
  for (let i = 0; i < 256; i++) out[at + 32 * (i >> 7) + (i & 31)] |= (codes[i]! & 3) << (2 * ((i >> 5) & 3));
}

/** Q4_K/Q5_K 12-byte scale/min packing (inverse of get_scale_min_k4). */
function packScaleMin(out: Uint8Array, at: number, sc: readonly number[], m: readonly number[]): void {
  for (let j = 0; j < 4; j++) {
    out[at + j] = (sc[j]! & 63) | ((sc[j + 4]! >> 4) << 6);
    out[at + j + 4] = (m[j]! & 63) | ((m[j + 4]! >> 4) << 6);
    out[at + j + 8] = (sc[j + 4]! & 15) | ((m[j + 4]! & 15) << 4);
  }
}

export const PACKERS: Readonly<Record<string, Packer>> = {
  Q4_0: {
    bytes: 18,
    pack: (f, o) => (put16(o, 0, f.d), nib(o, 2, f.q!)),
    expected: (f) => f.q!.map((q) => r((q - 8) * h(f.d))),
  },
  Q4_1: {
    bytes: 20,
    pack: (f, o) => (put16(o, 0, f.d), put16(o, 2, f.dmin!), nib(o, 4, f.q!)),
    expected: (f) => f.q!.map((q) => r(r(q * h(f.d)) + h(f.dmin!))),
  },
  Q5_0: {
    bytes: 22,
    pack: (f, o) => (put16(o, 0, f.d), put32(o, 2, f.q!.reduce((a, q, i) => a + (q >> 4) * 2 ** i, 0)), nib(o, 6, f.q!)),
    expected: (f) => f.q!.map((q) => r((q - 16) * h(f.d))),
  },
  Q5_1: {
    bytes: 24,
    pack: (f, o) => (put16(o, 0, f.d), put16(o, 2, f.dmin!), put32(o, 4, f.q!.reduce((a, q, i) => a + (q >> 4) * 2 ** i, 0)), nib(o, 8, f.q!)),
    expected: (f) => f.q!.map((q) => r(r(q * h(f.d)) + h(f.dmin!))),
  },
  Q8_0: {
    bytes: 34,
    pack: (f, o) => (put16(o, 0, f.d), f.q!.forEach((q, i) => (o[2 + i] = q & 255))),
    expected: (f) => f.q!.map((q) => r(q * h(f.d))),
  },
  Q2_K: {
    bytes: 84,
    pack(f, o) {
      for (let s = 0; s < 16; s++) o[s] = f.sc![s]! | (f.m![s]! << 4);
      pack2bit(o, 16, f.q!);
      put16(o, 80, f.d);
      put16(o, 82, f.dmin!);
    },
    expected: (f) => f.q!.map((q, i) => r(r(r(h(f.d) * f.sc![i >> 4]!) * q) - r(h(f.dmin!) * f.m![i >> 4]!))),
  },
  Q3_K: {
    bytes: 110,
    pack(f, o) {
      // q is the 3-bit code 0..7 (weight factor q − 4): low 2 bits in qs, bit 2 in hmask.
      for (let i = 0; i < 256; i++) o[i & 31] |= (f.q![i]! >> 2) << (4 * (i >> 7) + ((i >> 5) & 3));
      pack2bit(o, 32, f.q!);
      for (let s = 0; s < 16; s++) {
        const v = f.sc![s]!; // unsigned 0..63, the weight uses v − 32
        o[96 + (s & 7)] |= (v & 15) << (s < 8 ? 0 : 4);
        o[96 + 8 + (s & 3)] |= (v >> 4) << (2 * (s >> 2));
      }
      put16(o, 108, f.d);
    },
    expected: (f) => f.q!.map((q, i) => r(r(h(f.d) * (f.sc![i >> 4]! - 32)) * (q - 4))),
  },
  Q4_K: {
    bytes: 144,
    pack(f, o) {
      put16(o, 0, f.d);
      put16(o, 2, f.dmin!);
      packScaleMin(o, 4, f.sc!, f.m!);
      for (let i = 0; i < 256; i++) o[16 + 32 * (i >> 6) + (i & 31)] |= f.q![i]! << (4 * ((i >> 5) & 1));
    },
    expected: (f) => f.q!.map((q, i) => r(r(r(h(f.d) * f.sc![i >> 5]!) * q) - r(h(f.dmin!) * f.m![i >> 5]!))),
  },
  Q5_K: {
    bytes: 176,
    pack(f, o) {
      put16(o, 0, f.d);
      put16(o, 2, f.dmin!);
      packScaleMin(o, 4, f.sc!, f.m!);
      for (let i = 0; i < 256; i++) {
        o[48 + 32 * (i >> 6) + (i & 31)] |= (f.q![i]! & 15) << (4 * ((i >> 5) & 1));
        o[16 + (i & 31)] |= (f.q![i]! >> 4) << (i >> 5);
      }
    },
    expected: (f) => f.q!.map((q, i) => r(r(r(h(f.d) * f.sc![i >> 5]!) * q) - r(h(f.dmin!) * f.m![i >> 5]!))),
  },
  Q6_K: {
    bytes: 210,
    pack(f, o) {
      for (let i = 0; i < 256; i++) {
        const [half, k, l] = [i >> 7, (i >> 5) & 3, i & 31];
        o[64 * half + 32 * (k & 1) + l] |= (f.q![i]! & 15) << (4 * (k >> 1));
        o[128 + 32 * half + l] |= (f.q![i]! >> 4) << (2 * k);
      }
      f.sc!.forEach((s, k) => (o[192 + k] = s & 255));
      put16(o, 208, f.d);
    },
    expected: (f) => f.q!.map((q, i) => r(r(h(f.d) * f.sc![i >> 4]!) * (q - 32))),
  },
  Q8_K: {
    bytes: 292,
    pack(f, o) {
      new DataView(o.buffer, o.byteOffset).setFloat32(0, f.d32!, true);
      f.q!.forEach((q, i) => (o[4 + i] = q & 255));
    },
    expected: (f) => f.q!.map((q) => r(r(f.d32!) * q)),
  },
  IQ4_NL: {
    bytes: 18,
    pack: (f, o) => (put16(o, 0, f.d), nib(o, 2, f.q!)),
    expected: (f) => f.q!.map((q) => r(h(f.d) * KVALUES_IQ4NL[q]!)),
  },
  IQ4_XS: {
    bytes: 136,
    pack(f, o) {
      put16(o, 0, f.d);
      put16(o, 2, f.sc!.reduce((a, s, ib) => a | ((s >> 4) << (2 * ib)), 0));
      f.sc!.forEach((s, ib) => (o[4 + (ib >> 1)] |= (s & 15) << (4 * (ib & 1))));
      for (let ib = 0; ib < 8; ib++) nib(o, 8 + 16 * ib, f.q!, 32 * ib);
    },
    expected: (f) => f.q!.map((q, i) => r(r(h(f.d) * (f.sc![i >> 5]! - 32)) * KVALUES_IQ4NL[q]!)),
  },
  TQ2_0: {
    bytes: 66,
    pack: (f, o) => (pack2bit(o, 0, f.q!), put16(o, 64, f.d)),
    expected: (f) => f.q!.map((q) => r((q - 1) * h(f.d))),
  },
  TQ1_0: {
    bytes: 54,
    pack(f, o) {
      // Fixed-point base 3: trits t0..t(n-1), t0 most significant, become ceil(Σ t_k 3^(n-1-k) · 256 / 3^n).
      const packTrits = (ts: number[], count: number) => {
        const v = ts.reduce((a, t, k) => a + t * 3 ** (count - 1 - k), 0);
        return Math.ceil((v * 256) / 3 ** count);
      };
      for (let m = 0; m < 32; m++) o[m] = packTrits(range(5).map((n) => f.q![32 * n + m]!), 5);
      for (let m = 0; m < 16; m++) o[32 + m] = packTrits(range(5).map((n) => f.q![160 + 16 * n + m]!), 5);
      for (let j = 0; j < 4; j++) o[48 + j] = packTrits(range(4).map((n) => f.q![240 + 4 * n + j]!), 4);
      put16(o, 52, f.d);
    },
    expected: (f) => f.q!.map((q) => r((q - 1) * h(f.d))),
  },
  IQ2_XXS: {
    bytes: 66,
    pack(f, o) {
      put16(o, 0, f.d);
      for (let ib = 0; ib < 8; ib++) {
        for (let l = 0; l < 4; l++) o[2 + 8 * ib + l] = f.grid![4 * ib + l]!;
        const w = range(4).reduce((a, l) => a + f.signs![4 * ib + l]! * 2 ** (7 * l), 0) + f.sc![ib]! * 2 ** 28;
        put32(o, 2 + 8 * ib + 4, w);
      }
    },
    expected: (f) => range(256).map((i) => {
      const g = i >> 3;
      const dl = r(r(h(f.d) * (0.5 + f.sc![i >> 5]!)) * 0.25);
      return r(dl * IQ2XXS_GRID[8 * f.grid![g]! + (i & 7)]!) * signOf(KSIGNS_IQ2XS[f.signs![g]!]!, i & 7);
    }),
  },
  IQ2_XS: {
    bytes: 74,
    pack(f, o) {
      put16(o, 0, f.d);
      for (let g = 0; g < 32; g++) put16(o, 2 + 2 * g, f.grid![g]! | (f.signs![g]! << 9));
      for (let ib = 0; ib < 8; ib++) o[66 + ib] = f.sc![2 * ib]! | (f.sc![2 * ib + 1]! << 4);
    },
    expected: (f) => range(256).map((i) => {
      const g = i >> 3;
      const dl = r(r(h(f.d) * (0.5 + f.sc![g >> 1]!)) * 0.25);
      return r(dl * IQ2XS_GRID[8 * f.grid![g]! + (i & 7)]!) * signOf(KSIGNS_IQ2XS[f.signs![g]!]!, i & 7);
    }),
  },
  IQ2_S: {
    bytes: 82,
    pack(f, o) {
      put16(o, 0, f.d);
      for (let g = 0; g < 32; g++) {
        o[2 + g] = f.grid![g]! & 255;
        o[34 + g] = f.signs![g]!;
        o[66 + (g >> 2)] |= (f.grid![g]! >> 8) << (2 * (g & 3));
      }
      for (let ib = 0; ib < 8; ib++) o[74 + ib] = f.sc![2 * ib]! | (f.sc![2 * ib + 1]! << 4);
    },
    expected: (f) => range(256).map((i) => {
      const g = i >> 3;
      const dl = r(r(h(f.d) * (0.5 + f.sc![g >> 1]!)) * 0.25);
      return r(dl * IQ2S_GRID[8 * f.grid![g]! + (i & 7)]!) * signOf(f.signs![g]!, i & 7);
    }),
  },
  IQ3_XXS: {
    bytes: 98,
    pack(f, o) {
      put16(o, 0, f.d);
      for (let p = 0; p < 64; p++) o[2 + p] = f.grid![p]!;
      for (let ib = 0; ib < 8; ib++) {
        put32(o, 66 + 4 * ib, range(4).reduce((a, l) => a + f.signs![4 * ib + l]! * 2 ** (7 * l), 0) + f.sc![ib]! * 2 ** 28);
      }
    },
    expected: (f) => range(256).map((i) => {
      const dl = r(r(h(f.d) * (0.5 + f.sc![i >> 5]!)) * 0.5);
      return r(dl * IQ3XXS_GRID[4 * f.grid![i >> 2]! + (i & 3)]!) * signOf(KSIGNS_IQ2XS[f.signs![i >> 3]!]!, i & 7);
    }),
  },
  IQ3_S: {
    bytes: 110,
    pack(f, o) {
      put16(o, 0, f.d);
      for (let p = 0; p < 64; p++) {
        o[2 + p] = f.grid![p]! & 255;
        o[66 + (p >> 3)] |= (f.grid![p]! >> 8) << (p & 7);
      }
      for (let g = 0; g < 32; g++) o[74 + g] = f.signs![g]!;
      for (let k = 0; k < 4; k++) o[106 + k] = f.sc![2 * k]! | (f.sc![2 * k + 1]! << 4);
    },
    expected: (f) => range(256).map((i) => {
      const dl = r(h(f.d) * (1 + 2 * f.sc![i >> 5]!));
      return r(dl * IQ3S_GRID[4 * f.grid![i >> 2]! + (i & 3)]!) * signOf(f.signs![i >> 3]!, i & 7);
    }),
  },
  IQ1_S: {
    bytes: 50,
    pack(f, o) {
      put16(o, 0, f.d);
      for (let g = 0; g < 32; g++) o[2 + g] = f.grid![g]! & 255;
      for (let ib = 0; ib < 8; ib++) {
        const high = range(4).reduce((a, l) => a | ((f.grid![4 * ib + l]! >> 8) << (3 * l)), 0);
        put16(o, 34 + 2 * ib, high | (f.sc![ib]! << 12) | (f.negDelta![ib] ? 0x8000 : 0));
      }
    },
    expected: (f) => range(256).map((i) => {
      const dl = r(h(f.d) * (2 * f.sc![i >> 5]! + 1));
      return r(dl * r(IQ1S_GRID[8 * f.grid![i >> 3]! + (i & 7)]! + (f.negDelta![i >> 5] ? -0.125 : 0.125)));
    }),
  },
  IQ1_M: {
    bytes: 56,
    pack(f, o) {
      for (let g = 0; g < 32; g++) {
        o[g] = f.grid![g]! & 255;
        const nibble = (f.grid![g]! >> 8) | (f.negDelta![g] ? 8 : 0);
        o[32 + (g >> 1)] |= nibble << (4 * (g & 1));
      }
      // sc[k] (u16): bits 0-2 / 3-5 / 6-8 / 9-11 are the scales of group pairs 4k..4k+3, bits 12-15 a nibble of d.
      for (let k = 0; k < 4; k++) {
        const word = range(4).reduce((a, p) => a | (f.sc![4 * k + p]! << (3 * p)), 0) | (((f.d >> (4 * k)) & 15) << 12);
        put16(o, 48 + 2 * k, word);
      }
    },
    expected: (f) => range(256).map((i) => {
      const dl = r(h(f.d) * (2 * f.sc![i >> 4]! + 1));
      return r(dl * r(IQ1S_GRID[8 * f.grid![i >> 3]! + (i & 7)]! + (f.negDelta![i >> 3] ? -0.125 : 0.125)));
    }),
  },
};

/** Packs one block of `type` from its fields. */
export function packBlock(type: string, fields: BlockFields): Uint8Array {
  const p = PACKERS[type]!;
  const out = new Uint8Array(p.bytes);
  p.pack(fields, out);
  return out;
}
