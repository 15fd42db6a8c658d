/**
 * Plain TypeScript twins of the elementwise and attention kernels (kernels-wasm/src/{norm,rope,
 * softmax,activation,attention,f16}.rs): the oracle the parity tests compare against. Written for
 * clarity, computed in f64 and rounded to f32 at the end, with library Math functions rather than
 * the kernels' polynomials, so an agreement is evidence and not a shared mistake.
 * Conventions follow Hugging Face transformers (Llama/Qwen RMSNorm and rotate-half RoPE, torch
 * LayerNorm, GELU "gelu" = erf form, "gelu_pytorch_tanh" = tanh form).
 */

const f32 = Math.fround;

/** RMSNorm per row: y = x / sqrt(mean(x²) + eps) · w. x (rows, n); weight (n) or null. */
export function rmsnormRef(x: Float32Array, weight: Float32Array | null, rows: number, n: number, eps: number): Float32Array {
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let sumSquares = 0;
    for (let i = 0; i < n; i++) sumSquares += x[r * n + i] ** 2;
    const inv = 1 / Math.sqrt(sumSquares / n + eps);
    for (let i = 0; i < n; i++) out[r * n + i] = x[r * n + i] * inv * (weight === null ? 1 : weight[i]);
  }
  return out;
}

/** LayerNorm per row: y = (x − mean) / sqrt(var + eps) · w + b (biased variance). */
export function layernormRef(
  x: Float32Array,
  weight: Float32Array | null,
  bias: Float32Array | null,
  rows: number,
  n: number,
  eps: number,
): Float32Array {
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += x[r * n + i];
    const mean = sum / n;
    let sumSq = 0;
    for (let i = 0; i < n; i++) sumSq += (x[r * n + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(sumSq / n + eps);
    for (let i = 0; i < n; i++) {
      const y = (x[r * n + i] - mean) * inv * (weight === null ? 1 : weight[i]);
      out[r * n + i] = y + (bias === null ? 0 : bias[i]);
    }
  }
  return out;
}

/** RoPE cos/sin table (nTokens, 2·half): factor·cos θ then factor·sin θ, θ_i = f32(pos · invFreq[i]). */
export function ropeTableRef(invFreq: Float32Array, pos0: number, nTokens: number, factor = 1): Float32Array {
  const half = invFreq.length;
  const table = new Float32Array(nTokens * 2 * half);
  for (let t = 0; t < nTokens; t++) {
    for (let i = 0; i < half; i++) {
      const theta = f32((pos0 + t) * invFreq[i]);
      table[t * 2 * half + i] = f32(f32(Math.cos(theta)) * factor);
      table[t * 2 * half + half + i] = f32(f32(Math.sin(theta)) * factor);
    }
  }
  return table;
}

/**
 * Rotate-half RoPE of x (nTokens, nHeads, headDim) with a table from `ropeTableRef`; the first
 * rotDim dims of each head rotate (pair i with i + rotDim/2), the rest pass through. Rounds each
 * product to f32 like the kernel, so the two agree exactly for the same table.
 */
export function ropeRef(
  x: Float32Array,
  table: Float32Array,
  nTokens: number,
  nHeads: number,
  headDim: number,
  rotDim: number,
): Float32Array {
  const out = Float32Array.from(x);
  const half = rotDim / 2;
  for (let t = 0; t < nTokens; t++) {
    for (let h = 0; h < nHeads; h++) {
      const base = (t * nHeads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const a = x[base + i];
        const b = x[base + half + i];
        const c = table[t * rotDim + i];
        const s = table[t * rotDim + half + i];
        out[base + i] = f32(f32(a * c) - f32(b * s));
        out[base + half + i] = f32(f32(b * c) + f32(a * s));
      }
    }
  }
  return out;
}

/** Default inverse frequencies of RoPE: theta^(−2i/rotDim) for i < rotDim/2. */
export function ropeInvFreqRef(rotDim: number, theta: number): Float32Array {
  const invFreq = new Float32Array(rotDim / 2);
  for (let i = 0; i < rotDim / 2; i++) invFreq[i] = 1 / theta ** ((2 * i) / rotDim);
  return invFreq;
}

/** Softmax of each row of x (rows, n), max-subtracted. */
export function softmaxRef(x: Float32Array, rows: number, n: number): Float32Array {
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let i = 0; i < n; i++) max = Math.max(max, x[r * n + i]);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Math.exp(x[r * n + i] - max);
    for (let i = 0; i < n; i++) out[r * n + i] = Math.exp(x[r * n + i] - max) / sum;
  }
  return out;
}

/** erf by its Maclaurin series in f64 (|x| < 4; accurate to ~1e-9 there) and ±1 beyond (erfc(4) < 2e-8). */
export function erfRef(x: number): number {
  if (Math.abs(x) >= 4) return Math.sign(x);
  // erf x = 2/√π Σ (−1)^k x^(2k+1) / (k! (2k+1))
  let term = x;
  let sum = x;
  for (let k = 1; k < 200; k++) {
    term *= (-x * x) / k;
    const next = term / (2 * k + 1);
    sum += next;
    if (Math.abs(next) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

export const activationsRef = {
  silu: (x: number): number => x / (1 + Math.exp(-x)),
  geluTanh: (x: number): number => {
    const u = Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3);
    // For u < 0, 1 + tanh u cancels; 2e^{2u}/(1 + e^{2u}) is the same number without cancellation.
    return u >= 0 ? 0.5 * x * (1 + Math.tanh(u)) : (x * Math.exp(2 * u)) / (1 + Math.exp(2 * u));
  },
  geluErf: (x: number): number => 0.5 * x * (1 + erfRef(x / Math.SQRT2)),
  relu2: (x: number): number => Math.max(x, 0) ** 2,
} as const;

export type ActivationName = keyof typeof activationsRef;

/** act(x) elementwise. */
export function activationRef(name: ActivationName, x: Float32Array): Float32Array {
  return x.map((v) => activationsRef[name](v));
}

/** act(gate) · up elementwise (SwiGLU when act is SiLU). */
export function gatedActivationRef(name: ActivationName, gate: Float32Array, up: Float32Array): Float32Array {
  return gate.map((g, i) => activationsRef[name](g) * up[i]);
}

export function addRef(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((v, i) => v + b[i]);
}

export function mulRef(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((v, i) => v * b[i]);
}

export function scaleRef(x: Float32Array, s: number): Float32Array {
  return x.map((v) => v * s);
}

/** IEEE binary16 bits of a number, rounded to nearest even (computed with powers of two, not bit tricks). */
export function f32ToF16Ref(value: number): number {
  if (Number.isNaN(value)) return 0x7e00;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const a = Math.abs(value);
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24); // subnormal (1024 becomes the smallest normal)
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  if (2 ** (e + 1) <= a) e += 1;
  let m = roundHalfEven((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    e += 1;
    m = 0;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | m;
}

/** Value of IEEE binary16 bits. */
export function f16ToF32Ref(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m === 0 ? sign * Infinity : NaN;
  return sign * 2 ** (e - 15) * (1 + m / 1024);
}

function roundHalfEven(v: number): number {
  const floor = Math.floor(v);
  const diff = v - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * Decode attention of one query token over a cache (kvLen, nKvHeads, headDim), GQA head mapping
 * h → h / (nHeads / nKvHeads). Cache values are numbers (the f16 case passes decoded f16 values).
 * Returns out (nHeads, headDim).
 */
export function attentionRef(
  q: Float32Array,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  nHeads: number,
  nKvHeads: number,
  headDim: number,
  kvLen: number,
  scale: number,
): Float32Array {
  const out = new Float32Array(nHeads * headDim);
  const group = nHeads / nKvHeads;
  for (let h = 0; h < nHeads; h++) {
    const kvh = Math.floor(h / group);
    const scores = new Float64Array(kvLen);
    for (let t = 0; t < kvLen; t++) {
      let dot = 0;
      for (let i = 0; i < headDim; i++) dot += q[h * headDim + i] * k[(t * nKvHeads + kvh) * headDim + i];
      scores[t] = dot * scale;
    }
    const max = scores.reduce((m, s) => Math.max(m, s), -Infinity);
    let sum = 0;
    for (let t = 0; t < kvLen; t++) sum += Math.exp(scores[t] - max);
    for (let i = 0; i < headDim; i++) {
      let acc = 0;
      for (let t = 0; t < kvLen; t++) acc += (Math.exp(scores[t] - max) / sum) * v[(t * nKvHeads + kvh) * headDim + i];
      out[h * headDim + i] = acc;
    }
  }
  return out;
}

/**
 * Attention of nTokens consecutive query tokens (a prefill block) over a cache whose row 0 is
 * position 0: token t attends positions [first, end0 + t), first = 0 or, with a sliding window
 * w > 0, max(0, end0 + t − w); each token is `attentionRef` over its own rows. Returns out
 * (nTokens, nHeads, headDim).
 */
export function attentionTokensRef(
  q: Float32Array,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  shape: { nHeads: number; nKvHeads: number; headDim: number; end0: number; nTokens: number; window: number },
  scale: number,
): Float32Array {
  const { nHeads, nKvHeads, headDim, end0, nTokens, window } = shape;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const out = new Float32Array(nTokens * qDim);
  for (let t = 0; t < nTokens; t++) {
    const end = end0 + t;
    const first = window > 0 ? Math.max(0, end - window) : 0;
    const rows = (c: ArrayLike<number>) => Array.prototype.slice.call(c, first * kvDim, end * kvDim) as number[];
    out.set(attentionRef(q.subarray(t * qDim, (t + 1) * qDim), rows(k), rows(v), nHeads, nKvHeads, headDim, end - first, scale), t * qDim);
  }
  return out;
}
