/**
 * Independent ggml block decoders for the tests, written from the block structs of
 * ggml-common.h and the value formulas of ggml's reference dequantisers (ggml-quants.c), in a
 * different form from the importer's: each block is first parsed into its struct fields, then
 * its weights are emitted in storage order by walking the struct the way the layout describes
 * it. They share no code with quantizer/import/ggml-*.ts (only the grid tables, which are data).
 * Arithmetic is binary32 at every step (ggml's float math), so results compare bit for bit.
 */
import { IQ1S_GRID } from "../../runtime/import/ggml-grid-iq1s.ts";
import { IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS, KVALUES_IQ4NL } from "../../runtime/import/ggml-grids.ts";

const r = Math.fround;

/** IEEE binary16 bits → number, from the format's definition. */
export function halfToNumber(bits: number): number {
  const sign = (bits & 0x8000) !== 0 ? -1 : 1;
  const exponent = (bits >> 10) & 31;
  const fraction = bits & 1023;
  if (exponent === 31) return fraction === 0 ? sign * Infinity : NaN;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  return sign * (1024 + fraction) * 2 ** (exponent - 25);
}

/** A little-endian struct reader over one block. */
class Fields {
  private at = 0;
  constructor(private readonly b: Uint8Array) {}
  half(): number {
    const v = halfToNumber(this.b[this.at]! + 256 * this.b[this.at + 1]!);
    this.at += 2;
    return v;
  }
  float(): number {
    const v = new DataView(this.b.buffer, this.b.byteOffset + this.at, 4).getFloat32(0, true);
    this.at += 4;
    return v;
  }
  bytes(n: number): number[] {
    const v = Array.from(this.b.subarray(this.at, this.at + n));
    this.at += n;
    return v;
  }
  ints(n: number): number[] {
    return this.bytes(n).map((x) => (x > 127 ? x - 256 : x));
  }
  u16s(n: number): number[] {
    const raw = this.bytes(2 * n);
    return Array.from({ length: n }, (_, k) => raw[2 * k]! + 256 * raw[2 * k + 1]!);
  }
  u32s(n: number): number[] {
    const raw = this.bytes(4 * n);
    return Array.from({ length: n }, (_, k) => raw[4 * k]! + 256 * raw[4 * k + 1]! + 65536 * raw[4 * k + 2]! + 16777216 * raw[4 * k + 3]!);
  }
}

type Decoder = (f: Fields) => number[];

const bit = (value: number, k: number) => Math.floor(value / 2 ** k) % 2;
const neg = (signByte: number, j: number) => (bit(signByte, j) === 1 ? -1 : 1);

/** Splits 16 nibble bytes into the 32 codes of a block: low nibbles first, then high. */
const nibbles = (qs: number[]) => [...qs.map((q) => q & 15), ...qs.map((q) => q >> 4)];

const q4_0: Decoder = (f) => {
  const d = f.half();
  return nibbles(f.bytes(16)).map((q) => r((q - 8) * d));
};
const q4_1: Decoder = (f) => {
  const d = f.half();
  const m = f.half();
  return nibbles(f.bytes(16)).map((q) => r(r(q * d) + m));
};
const q5 = (withMin: boolean): Decoder => (f) => {
  const d = f.half();
  const m = withMin ? f.half() : 0;
  const [qh] = f.u32s(1);
  return nibbles(f.bytes(16)).map((low, k) => {
    const q = low + 16 * bit(qh!, k);
    return withMin ? r(r(q * d) + m) : r((q - 16) * d);
  });
};
const q8_0: Decoder = (f) => {
  const d = f.half();
  return f.ints(32).map((q) => r(q * d));
};

/** Q2_K/Q3_K: 2 halves × 4 bit-pairs × 32 bytes, emitted as 16-weight runs. */
function twoBitRuns(qs: number[], emit: (q: number, half: number, pair: number, l: number) => void): void {
  for (let half = 0; half < 2; half++) for (let pair = 0; pair < 4; pair++) for (let l = 0; l < 32; l++) {
    emit((qs[32 * half + l]! >> (2 * pair)) & 3, half, pair, l);
  }
}

const q2_K: Decoder = (f) => {
  const scales = f.bytes(16);
  const qs = f.bytes(64);
  const d = f.half();
  const dmin = f.half();
  const out: number[] = [];
  twoBitRuns(qs, (q) => {
    const sc = scales[out.length >> 4]!;
    out.push(r(r(r(d * (sc & 15)) * q) - r(dmin * (sc >> 4))));
  });
  return out;
};

const q3_K: Decoder = (f) => {
  const hmask = f.bytes(32);
  const qs = f.bytes(64);
  const packed = f.bytes(12);
  const d = f.half();
  // 16 six-bit scales: low nibbles from bytes 0..7 (low nibble first, then high), top bit pairs from bytes 8..11.
  const low = [...packed.slice(0, 8).map((b) => b & 15), ...packed.slice(0, 8).map((b) => b >> 4)];
  const scales = low.map((v, s) => v + 16 * ((packed[8 + (s % 4)]! >> (2 * Math.floor(s / 4))) & 3) - 32);
  const out: number[] = [];
  twoBitRuns(qs, (q, half, pair, l) => {
    const high = bit(hmask[l]!, 4 * half + pair);
    out.push(r(r(d * scales[out.length >> 4]!) * (q - (high === 1 ? 0 : 4))));
  });
  return out;
};

/** Q4_K/Q5_K six-bit (scale, min) pairs of the 8 sub-blocks. */
function scaleMins(packed: number[]): [number, number][] {
  return Array.from({ length: 8 }, (_, j): [number, number] => {
    if (j < 4) return [packed[j]! & 63, packed[j + 4]! & 63];
    return [(packed[j + 4]! & 15) | ((packed[j - 4]! >> 6) << 4), (packed[j + 4]! >> 4) | ((packed[j]! >> 6) << 4)];
  });
}

const q45_K = (five: boolean): Decoder => (f) => {
  const d = f.half();
  const dmin = f.half();
  const sm = scaleMins(f.bytes(12));
  const qh = five ? f.bytes(32) : [];
  const qs = f.bytes(128);
  const out: number[] = [];
  for (let chunk = 0; chunk < 4; chunk++) {
    for (let hi = 0; hi < 2; hi++) {
      const sub = 2 * chunk + hi;
      const [sc, m] = sm[sub]!;
      for (let l = 0; l < 32; l++) {
        const q = ((qs[32 * chunk + l]! >> (4 * hi)) & 15) + (five ? 16 * bit(qh[l]!, sub) : 0);
        out.push(r(r(r(d * sc) * q) - r(dmin * m)));
      }
    }
  }
  return out;
};

const q6_K: Decoder = (f) => {
  const ql = f.bytes(128);
  const qh = f.bytes(64);
  const sc = f.ints(16);
  const d = f.half();
  const out = new Array<number>(256);
  for (let half = 0; half < 2; half++) {
    for (let l = 0; l < 32; l++) {
      const h = qh[32 * half + l]!;
      const codes = [
        (ql[64 * half + l]! & 15) | ((h & 3) << 4),
        (ql[64 * half + 32 + l]! & 15) | (((h >> 2) & 3) << 4),
        (ql[64 * half + l]! >> 4) | (((h >> 4) & 3) << 4),
        (ql[64 * half + 32 + l]! >> 4) | (((h >> 6) & 3) << 4),
      ];
      codes.forEach((q, k) => {
        const i = 128 * half + 32 * k + l;
        out[i] = r(r(d * sc[8 * half + 2 * k + (l >> 4)]!) * (q - 32));
      });
    }
  }
  return out;
};

const q8_K: Decoder = (f) => {
  const d = f.float();
  return f.ints(256).map((q) => r(d * q));
};

const iq2_xxs: Decoder = (f) => {
  const d = f.half();
  const out: number[] = [];
  for (let ib = 0; ib < 8; ib++) {
    const idx = f.bytes(4);
    const [w] = f.u32s(1);
    const dl = r(r(d * (0.5 + Math.floor(w! / 2 ** 28))) * 0.25);
    idx.forEach((g, l) => {
      const signs = KSIGNS_IQ2XS[Math.floor(w! / 2 ** (7 * l)) % 128]!;
      for (let j = 0; j < 8; j++) out.push(r(dl * IQ2XXS_GRID[8 * g + j]!) * neg(signs, j));
    });
  }
  return out;
};

const iq2_xs: Decoder = (f) => {
  const d = f.half();
  const qs = f.u16s(32);
  const scales = f.bytes(8);
  const out: number[] = [];
  qs.forEach((q, k) => {
    const nib = (scales[k >> 2]! >> (4 * ((k >> 1) & 1))) & 15;
    const dl = r(r(d * (0.5 + nib)) * 0.25);
    for (let j = 0; j < 8; j++) out.push(r(dl * IQ2XS_GRID[8 * (q % 512) + j]!) * neg(KSIGNS_IQ2XS[q >> 9]!, j));
  });
  return out;
};

const iq2_s: Decoder = (f) => {
  const d = f.half();
  const low = f.bytes(32);
  const signs = f.bytes(32);
  const qh = f.bytes(8);
  const scales = f.bytes(8);
  const out: number[] = [];
  low.forEach((lo, k) => {
    const ib = k >> 2;
    const index = lo + 256 * ((qh[ib]! >> (2 * (k & 3))) & 3);
    const dl = r(r(d * (0.5 + ((scales[ib]! >> (4 * ((k >> 1) & 1))) & 15))) * 0.25);
    for (let j = 0; j < 8; j++) out.push(r(dl * IQ2S_GRID[8 * index + j]!) * neg(signs[k]!, j));
  });
  return out;
};

const iq3_xxs: Decoder = (f) => {
  const d = f.half();
  const qs = f.bytes(64);
  const words = f.u32s(8);
  const out: number[] = [];
  words.forEach((w, ib) => {
    const dl = r(r(d * (0.5 + Math.floor(w / 2 ** 28))) * 0.5);
    for (let l = 0; l < 4; l++) {
      const signs = KSIGNS_IQ2XS[Math.floor(w / 2 ** (7 * l)) % 128]!;
      const points = [qs[8 * ib + 2 * l]!, qs[8 * ib + 2 * l + 1]!];
      for (let j = 0; j < 8; j++) out.push(r(dl * IQ3XXS_GRID[4 * points[j >> 2]! + (j & 3)]!) * neg(signs, j));
    }
  });
  return out;
};

const iq3_s: Decoder = (f) => {
  const d = f.half();
  const qs = f.bytes(64);
  const qh = f.bytes(8);
  const signs = f.bytes(32);
  const scales = f.bytes(4);
  const out: number[] = [];
  for (let ib = 0; ib < 8; ib++) {
    const dl = r(d * (1 + 2 * ((scales[ib >> 1]! >> (4 * (ib % 2))) & 15)));
    for (let l = 0; l < 4; l++) {
      for (let j = 0; j < 8; j++) {
        const p = 2 * l + (j >> 2);
        const index = qs[8 * ib + p]! + 256 * bit(qh[ib]!, p);
        out.push(r(dl * IQ3S_GRID[4 * index + (j & 3)]!) * neg(signs[4 * ib + l]!, j));
      }
    }
  }
  return out;
};

const iq1_s: Decoder = (f) => {
  const d = f.half();
  const qs = f.bytes(32);
  const qh = f.u16s(8);
  const out: number[] = [];
  qh.forEach((h, ib) => {
    const dl = r(d * (2 * ((h >> 12) & 7) + 1));
    const delta = bit(h, 15) === 1 ? -0.125 : 0.125;
    for (let l = 0; l < 4; l++) {
      const index = qs[4 * ib + l]! + 256 * ((h >> (3 * l)) & 7);
      for (let j = 0; j < 8; j++) out.push(r(dl * r(IQ1S_GRID[8 * index + j]! + delta)));
    }
  });
  return out;
};

const iq1_m: Decoder = (f) => {
  const qs = f.bytes(32);
  const qh = f.bytes(16);
  const sc = f.u16s(4);
  const d = halfToNumber((sc[0]! >> 12) | (((sc[1]! >> 12) & 15) << 4) | (((sc[2]! >> 12) & 15) << 8) | (((sc[3]! >> 12) & 15) << 12));
  const out: number[] = [];
  for (let ib = 0; ib < 8; ib++) {
    for (let l = 0; l < 4; l++) {
      const nib = (qh[2 * ib + (l >> 1)]! >> (4 * (l % 2))) & 15;
      const s = (sc[ib >> 1]! >> (6 * (ib % 2) + 3 * (l >> 1))) & 7;
      const dl = r(d * (2 * s + 1));
      const delta = bit(nib, 3) === 1 ? -0.125 : 0.125;
      const index = qs[4 * ib + l]! + 256 * (nib & 7);
      for (let j = 0; j < 8; j++) out.push(r(dl * r(IQ1S_GRID[8 * index + j]! + delta)));
    }
  }
  return out;
};

const iq4_nl: Decoder = (f) => {
  const d = f.half();
  return nibbles(f.bytes(16)).map((q) => r(d * KVALUES_IQ4NL[q]!));
};

const iq4_xs: Decoder = (f) => {
  const d = f.half();
  const [high] = f.u16s(1);
  const low = f.bytes(4);
  const out: number[] = [];
  for (let ib = 0; ib < 8; ib++) {
    const ls = ((low[ib >> 1]! >> (4 * (ib % 2))) & 15) + 16 * ((high! >> (2 * ib)) & 3);
    const dl = r(d * (ls - 32));
    for (const q of nibbles(f.bytes(16))) out.push(r(dl * KVALUES_IQ4NL[q]!));
  }
  return out;
};

/** Base-3 digits of a TQ1_0 byte, most significant first: ceil(b·3^5 / 256) written in base 3. */
function trits(byte: number, count: number): number[] {
  const out: number[] = [];
  for (let n = 0; n < count; n++) out.push(Math.floor((((byte * 3 ** n) % 256) * 3) / 256));
  return out;
}

const tq1_0: Decoder = (f) => {
  const qs = f.bytes(48);
  const qh = f.bytes(4);
  const d = f.half();
  const out: number[] = [];
  const emit = (bytes: number[], count: number) => {
    const digits = bytes.map((b) => trits(b, count));
    for (let n = 0; n < count; n++) for (const t of digits) out.push(r((t[n]! - 1) * d));
  };
  emit(qs.slice(0, 32), 5);
  emit(qs.slice(32, 48), 5);
  emit(qh, 4);
  return out;
};

const tq2_0: Decoder = (f) => {
  const qs = f.bytes(64);
  const d = f.half();
  const out: number[] = [];
  for (let half = 0; half < 2; half++) for (let pair = 0; pair < 4; pair++) for (let l = 0; l < 32; l++) {
    out.push(r((((qs[32 * half + l]! >> (2 * pair)) & 3) - 1) * d));
  }
  return out;
};

/** Bytes per block and decoder of every block type. */
export const SPEC: Readonly<Record<string, { bytes: number; weights: number; decode: Decoder }>> = {
  Q4_0: { bytes: 18, weights: 32, decode: q4_0 },
  Q4_1: { bytes: 20, weights: 32, decode: q4_1 },
  Q5_0: { bytes: 22, weights: 32, decode: q5(false) },
  Q5_1: { bytes: 24, weights: 32, decode: q5(true) },
  Q8_0: { bytes: 34, weights: 32, decode: q8_0 },
  Q2_K: { bytes: 84, weights: 256, decode: q2_K },
  Q3_K: { bytes: 110, weights: 256, decode: q3_K },
  Q4_K: { bytes: 144, weights: 256, decode: q45_K(false) },
  Q5_K: { bytes: 176, weights: 256, decode: q45_K(true) },
  Q6_K: { bytes: 210, weights: 256, decode: q6_K },
  Q8_K: { bytes: 292, weights: 256, decode: q8_K },
  IQ2_XXS: { bytes: 66, weights: 256, decode: iq2_xxs },
  IQ2_XS: { bytes: 74, weights: 256, decode: iq2_xs },
  IQ2_S: { bytes: 82, weights: 256, decode: iq2_s },
  IQ3_XXS: { bytes: 98, weights: 256, decode: iq3_xxs },
  IQ3_S: { bytes: 110, weights: 256, decode: iq3_s },
  IQ1_S: { bytes: 50, weights: 256, decode: iq1_s },
  IQ1_M: { bytes: 56, weights: 256, decode: iq1_m },
  IQ4_NL: { bytes: 18, weights: 32, decode: iq4_nl },
  IQ4_XS: { bytes: 136, weights: 256, decode: iq4_xs },
  TQ1_0: { bytes: 54, weights: 256, decode: tq1_0 },
  TQ2_0: { bytes: 66, weights: 256, decode: tq2_0 },
};

/** Decodes consecutive blocks of `type`. */
export function specDecode(type: string, bytes: Uint8Array): Float32Array {
  const spec = SPEC[type]!;
  const blocks = bytes.length / spec.bytes;
  const out = new Float32Array(blocks * spec.weights);
  for (let b = 0; b < blocks; b++) {
    const values = spec.decode(new Fields(bytes.subarray(b * spec.bytes, (b + 1) * spec.bytes)));
    if (values.length !== spec.weights) throw new Error(`${type}: decoded ${values.length} weights`);
    out.set(values, b * spec.weights);
  }
  return out;
}
