/**
 * Typed wrappers over the elementwise and attention WASM kernels (kernels-wasm/src/{norm,rope,
 * softmax,activation,attention,f16}.rs). Arguments are byte offsets into the kernels' shared
 * memory plus sizes; every wrapper checks shapes (ShapeError) and that each region is aligned,
 * inside the memory and not partly overlapping another (KernelError) before calling the export,
 * because the kernels themselves trust their arguments. `*CallArgs` does the checks and returns
 * the export's argument list, so a call plan (runtime/ops/wasm-ops.ts) checks once and runs the
 * list many times; the plain wrappers check and call. Twins: ./reference/elementwise.ts.
 */
import { ShapeError } from "../errors.ts";
import type { KernelInstance } from "./wasm.ts";
import { call, checkCount, checkOverlap, checkRegion, f32Region } from "./regions.ts";

export interface RmsnormArgs {
  x: number; // (rows, n) f32
  weight: number | null; // (n) f32, null for none
  out: number; // (rows, n) f32, may be x
  rows?: number;
  n: number;
  eps: number;
}

/** Validates rmsnorm_f32's arguments and returns its argument list. */
export function rmsnormCallArgs(kern: KernelInstance, a: RmsnormArgs): number[] {
  const op = "rmsnorm_f32";
  const rows = a.rows ?? 1;
  checkCount(op, "rows", rows);
  checkCount(op, "n", a.n);
  if (!(a.eps >= 0)) throw new ShapeError(op, "eps ≥ 0", String(a.eps));
  const x = f32Region(kern, op, "x", a.x, rows * a.n);
  const out = f32Region(kern, op, "out", a.out, rows * a.n);
  const w = a.weight === null ? [] : [f32Region(kern, op, "weight", a.weight, a.n)];
  checkOverlap(op, [out], [x, ...w], true);
  return [a.x, a.weight ?? 0, a.out, rows, a.n, a.eps];
}

/** RMSNorm of each row: out = x / sqrt(mean(x²) + eps) · weight (HF Llama, in f32). */
export function rmsnormF32(kern: KernelInstance, a: RmsnormArgs): void {
  call(kern, "rmsnorm_f32", rmsnormCallArgs(kern, a));
}

export interface LayernormArgs extends RmsnormArgs {
  bias: number | null; // (n) f32, null for none
}

/** LayerNorm of each row: out = (x − mean)/sqrt(var + eps) · weight + bias (torch semantics). */
export function layernormF32(kern: KernelInstance, a: LayernormArgs): void {
  const op = "layernorm_f32";
  const rows = a.rows ?? 1;
  checkCount(op, "rows", rows);
  checkCount(op, "n", a.n);
  const x = f32Region(kern, op, "x", a.x, rows * a.n);
  const out = f32Region(kern, op, "out", a.out, rows * a.n);
  const w = a.weight === null ? [] : [f32Region(kern, op, "weight", a.weight, a.n)];
  const b = a.bias === null ? [] : [f32Region(kern, op, "bias", a.bias, a.n)];
  checkOverlap(op, [out], [x, ...w, ...b], true);
  call(kern, op, [a.x, a.weight ?? 0, a.bias ?? 0, a.out, rows, a.n, a.eps]);
}

export interface RopeTableArgs {
  invFreq: number; // (half) f32
  half: number; // rotDim / 2
  pos0: number;
  nTokens?: number;
  factor?: number; // cos/sin multiplier (YaRN attention scaling), default 1
  table: number; // (nTokens, 2·half) f32 out
}

/** Writes the cos/sin table of positions pos0..pos0+nTokens for `ropeF32`. */
export function ropeTableF32(kern: KernelInstance, a: RopeTableArgs): void {
  const op = "rope_table_f32";
  const nTokens = a.nTokens ?? 1;
  checkCount(op, "half", a.half);
  checkCount(op, "nTokens", nTokens);
  checkCount(op, "pos0", a.pos0, 0);
  if (a.pos0 + nTokens > 2 ** 24) {
    throw new ShapeError(op, "positions below 2^24 (exact in f32)", String(a.pos0 + nTokens));
  }
  const invFreq = f32Region(kern, op, "invFreq", a.invFreq, a.half);
  const table = f32Region(kern, op, "table", a.table, nTokens * 2 * a.half);
  checkOverlap(op, [table], [invFreq], false);
  call(kern, op, [a.invFreq, a.half, a.pos0, nTokens, a.factor ?? 1, a.table]);
}

export interface RopeArgs {
  x: number; // (nTokens, nHeads, headDim) f32, rotated in place
  table: number; // (nTokens, rotDim) f32 from ropeTableF32
  nTokens?: number;
  nHeads: number;
  headDim: number;
  rotDim?: number; // default headDim (partial rotary when smaller)
}

/** Rotate-half RoPE in place (HF Llama/Qwen convention). */
export function ropeF32(kern: KernelInstance, a: RopeArgs): void {
  call(kern, "rope_f32", ropeCallArgs(kern, a));
}

/** Validates rope_f32's arguments and returns its argument list (for a worker pool task). */
export function ropeCallArgs(kern: KernelInstance, a: RopeArgs): number[] {
  const op = "rope_f32";
  const nTokens = a.nTokens ?? 1;
  const rotDim = a.rotDim ?? a.headDim;
  checkCount(op, "nTokens", nTokens);
  checkCount(op, "nHeads", a.nHeads);
  checkCount(op, "headDim", a.headDim);
  if (!Number.isInteger(rotDim) || rotDim < 2 || rotDim % 2 !== 0 || rotDim > a.headDim) {
    throw new ShapeError(op, `rotDim even and in 2..headDim (${a.headDim})`, String(rotDim));
  }
  const x = f32Region(kern, op, "x", a.x, nTokens * a.nHeads * a.headDim);
  const table = f32Region(kern, op, "table", a.table, nTokens * rotDim);
  checkOverlap(op, [x], [table], false);
  return [a.x, a.table, nTokens, a.nHeads, a.headDim, rotDim];
}

/** Softmax of each row of x (rows, n), in place. */
export function softmaxF32(kern: KernelInstance, a: { x: number; rows?: number; n: number }): void {
  const op = "softmax_f32";
  const rows = a.rows ?? 1;
  checkCount(op, "rows", rows);
  checkCount(op, "n", a.n);
  f32Region(kern, op, "x", a.x, rows * a.n);
  call(kern, op, [a.x, rows, a.n]);
}

export type Activation = "silu" | "geluTanh" | "geluErf" | "relu2";

const ACTIVATION_EXPORTS: Record<Activation, string> = {
  silu: "silu",
  geluTanh: "gelu_tanh",
  geluErf: "gelu_erf",
  relu2: "relu2",
};

function activationExport(op: string, name: Activation): string {
  const stem = ACTIVATION_EXPORTS[name];
  if (stem === undefined) {
    throw new ShapeError(op, `an activation in ${Object.keys(ACTIVATION_EXPORTS).join(", ")}`, String(name));
  }
  return stem;
}

/** out = act(x) elementwise; out may be x. */
export function activationF32(kern: KernelInstance, name: Activation, a: { x: number; out: number; n: number }): void {
  const op = `${activationExport("activation", name)}_f32`;
  checkCount(op, "n", a.n);
  const x = f32Region(kern, op, "x", a.x, a.n);
  const out = f32Region(kern, op, "out", a.out, a.n);
  checkOverlap(op, [out], [x], true);
  call(kern, op, [a.x, a.out, a.n]);
}

/** Validates a gated activation's arguments; returns the export's name and argument list. */
export function gatedActivationCall(
  kern: KernelInstance,
  name: Activation,
  a: { gate: number; up: number; out: number; n: number },
): { exportName: string; args: number[] } {
  const op = `${activationExport("gated activation", name)}_mul_f32`;
  checkCount(op, "n", a.n);
  const gate = f32Region(kern, op, "gate", a.gate, a.n);
  const up = f32Region(kern, op, "up", a.up, a.n);
  const out = f32Region(kern, op, "out", a.out, a.n);
  checkOverlap(op, [out], [gate, up], true);
  return { exportName: op, args: [a.gate, a.up, a.out, a.n] };
}

/** out = act(gate) · up elementwise (SwiGLU for "silu"); out may be gate or up. */
export function gatedActivationF32(
  kern: KernelInstance,
  name: Activation,
  a: { gate: number; up: number; out: number; n: number },
): void {
  const { exportName, args } = gatedActivationCall(kern, name, a);
  call(kern, exportName, args);
}

/** SwiGLU: out = silu(gate) · up. */
export function swigluF32(kern: KernelInstance, a: { gate: number; up: number; out: number; n: number }): void {
  gatedActivationF32(kern, "silu", a);
}

function binaryCallArgs(kern: KernelInstance, op: string, a: { a: number; b: number; out: number; n: number }): number[] {
  checkCount(op, "n", a.n);
  const ra = f32Region(kern, op, "a", a.a, a.n);
  const rb = f32Region(kern, op, "b", a.b, a.n);
  const out = f32Region(kern, op, "out", a.out, a.n);
  checkOverlap(op, [out], [ra, rb], true);
  return [a.a, a.b, a.out, a.n];
}

/** Validates add_f32's arguments and returns its argument list. */
export function addCallArgs(kern: KernelInstance, a: { a: number; b: number; out: number; n: number }): number[] {
  return binaryCallArgs(kern, "add_f32", a);
}

/** out = a + b (residual add); out may be a or b. */
export function addF32(kern: KernelInstance, a: { a: number; b: number; out: number; n: number }): void {
  call(kern, "add_f32", addCallArgs(kern, a));
}

/** out = a · b elementwise; out may be a or b. */
export function mulF32(kern: KernelInstance, a: { a: number; b: number; out: number; n: number }): void {
  call(kern, "mul_f32", binaryCallArgs(kern, "mul_f32", a));
}

/** Validates scale_f32's arguments and returns its argument list. */
export function scaleCallArgs(kern: KernelInstance, a: { x: number; s: number; out: number; n: number }): number[] {
  const op = "scale_f32";
  checkCount(op, "n", a.n);
  const x = f32Region(kern, op, "x", a.x, a.n);
  const out = f32Region(kern, op, "out", a.out, a.n);
  checkOverlap(op, [out], [x], true);
  return [a.x, a.s, a.out, a.n];
}

/** out = x · s; out may be x. */
export function scaleF32(kern: KernelInstance, a: { x: number; s: number; out: number; n: number }): void {
  call(kern, "scale_f32", scaleCallArgs(kern, a));
}

/** Validates f32_to_f16's arguments and returns its argument list. */
export function f32ToF16CallArgs(kern: KernelInstance, a: { src: number; dst: number; n: number }): number[] {
  const op = "f32_to_f16";
  checkCount(op, "n", a.n);
  const src = f32Region(kern, op, "src", a.src, a.n);
  const dst = checkRegion(kern, op, { name: "dst", ptr: a.dst, bytes: a.n * 2 }, 2);
  checkOverlap(op, [dst], [src], false);
  return [a.src, a.dst, a.n];
}

/** dst (n u16) = f16 bits of src (n f32), round to nearest even. */
export function f32ToF16(kern: KernelInstance, a: { src: number; dst: number; n: number }): void {
  call(kern, "f32_to_f16", f32ToF16CallArgs(kern, a));
}

/** Validates f16_to_f32's arguments and returns its argument list. */
export function f16ToF32CallArgs(kern: KernelInstance, a: { src: number; dst: number; n: number }): number[] {
  const op = "f16_to_f32";
  checkCount(op, "n", a.n);
  const src = checkRegion(kern, op, { name: "src", ptr: a.src, bytes: a.n * 2 }, 2);
  const dst = f32Region(kern, op, "dst", a.dst, a.n);
  checkOverlap(op, [dst], [src], false);
  return [a.src, a.dst, a.n];
}

/** dst (n f32) = values of the f16 bits at src (n u16). */
export function f16ToF32(kern: KernelInstance, a: { src: number; dst: number; n: number }): void {
  call(kern, "f16_to_f32", f16ToF32CallArgs(kern, a));
}

export interface AttentionArgs {
  q: number; // (nHeads, headDim) f32
  kCache: number; // (≥ kvLen, nKvHeads, headDim) f32 or f16
  vCache: number; // same layout as kCache
  out: number; // (nHeads, headDim) f32
  scratch: number; // (headEnd − headBegin) · kvLen f32
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  kvLen: number; // positions 0..kvLen-1 are attended (the query sits at kvLen − 1)
  scale?: number; // default 1/sqrt(headDim)
  headBegin?: number; // default 0
  headEnd?: number; // default nHeads
}

export type CacheType = "f32" | "f16";

/** Largest head dimension the attention kernels take (MAX_HEAD_DIM in attention.rs). */
export const MAX_HEAD_DIM = 512;

/** Scratch floats `attention*` needs for heads [headBegin, headEnd). */
export function attentionScratchFloats(heads: number, kvLen: number): number {
  return heads * kvLen;
}

/** The head shape and range checks both attention kernels share; returns [headBegin, headEnd). */
function checkHeads(op: string, a: { nHeads: number; nKvHeads: number; headDim: number; headBegin?: number; headEnd?: number }): [number, number] {
  for (const key of ["nHeads", "nKvHeads", "headDim"] as const) checkCount(op, key, a[key]);
  if (a.headDim > MAX_HEAD_DIM) throw new ShapeError(op, `headDim ≤ ${MAX_HEAD_DIM}`, String(a.headDim));
  if (a.nHeads % a.nKvHeads !== 0) throw new ShapeError(op, `nHeads a multiple of nKvHeads (${a.nKvHeads})`, String(a.nHeads));
  const headBegin = a.headBegin ?? 0;
  const headEnd = a.headEnd ?? a.nHeads;
  if (!Number.isInteger(headBegin) || !Number.isInteger(headEnd) || headBegin < 0 || headEnd <= headBegin || headEnd > a.nHeads) {
    throw new ShapeError(op, `0 ≤ headBegin < headEnd ≤ nHeads (${a.nHeads})`, `[${headBegin}, ${headEnd})`);
  }
  return [headBegin, headEnd];
}

/** Validates attention arguments and returns the export's argument list (for the worker pool). */
export function attentionCallArgs(kern: KernelInstance, cache: CacheType, a: AttentionArgs): number[] {
  const op = `attention_${cache}`;
  checkCount(op, "kvLen", a.kvLen);
  const [headBegin, headEnd] = checkHeads(op, a);
  const elem = cache === "f32" ? 4 : 2;
  const cacheBytes = a.kvLen * a.nKvHeads * a.headDim * elem;
  const q = f32Region(kern, op, "q", a.q, a.nHeads * a.headDim);
  const k = checkRegion(kern, op, { name: "kCache", ptr: a.kCache, bytes: cacheBytes }, elem);
  const v = checkRegion(kern, op, { name: "vCache", ptr: a.vCache, bytes: cacheBytes }, elem);
  const out = checkRegion(kern, op, {
    name: "out",
    ptr: a.out + headBegin * a.headDim * 4,
    bytes: (headEnd - headBegin) * a.headDim * 4,
  }, 4);
  const scratch = f32Region(kern, op, "scratch", a.scratch, attentionScratchFloats(headEnd - headBegin, a.kvLen));
  checkOverlap(op, [out, scratch], [q, k, v], false);
  const scale = a.scale ?? 1 / Math.sqrt(a.headDim);
  return [a.q, a.kCache, a.vCache, a.out, a.scratch, a.nHeads, a.nKvHeads, a.headDim, a.kvLen, scale, headBegin, headEnd];
}

/** Attention of one query token over an f32 or f16 KV cache (GQA, causal over 0..kvLen-1). */
export function attention(kern: KernelInstance, cache: CacheType, a: AttentionArgs): void {
  if (cache !== "f32" && cache !== "f16") throw new ShapeError("attention", "cache type f32 or f16", String(cache));
  call(kern, `attention_${cache}`, attentionCallArgs(kern, cache, a));
}

export interface AttentionTokensArgs {
  q: number; // (nTokens, nHeads, headDim) f32
  kCache: number; // (≥ end0 + nTokens − 1, nKvHeads, headDim) f32 or f16, position 0 first
  vCache: number; // same layout as kCache
  out: number; // (nTokens, nHeads, headDim) f32
  scratch: number; // attentionTokensScratchFloats(end0 + nTokens − 1) f32
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  end0: number; // token 0 attends positions [first, end0); token t up to end0 + t
  nTokens: number;
  window?: number; // sliding window (0 or undefined: none): first = max(0, end − window)
  scale?: number; // default 1/sqrt(headDim)
  headBegin?: number;
  headEnd?: number;
}

/** Scratch floats `attention_tokens_*` needs (any head range) when the last query reads kvMax positions. */
export function attentionTokensScratchFloats(kvMax: number): number {
  return 4 * kvMax;
}

/** Validates the arguments of a prefill block's attention and returns the export's argument list. */
export function attentionTokensCallArgs(kern: KernelInstance, cache: CacheType, a: AttentionTokensArgs): number[] {
  const op = `attention_tokens_${cache}`;
  for (const key of ["end0", "nTokens"] as const) checkCount(op, key, a[key]);
  const window = a.window ?? 0;
  if (!Number.isInteger(window) || window < 0) throw new ShapeError(op, "window a whole number ≥ 0 (0: none)", String(window));
  const [headBegin, headEnd] = checkHeads(op, a);
  const elem = cache === "f32" ? 4 : 2;
  const kvMax = a.end0 + a.nTokens - 1;
  const cacheBytes = kvMax * a.nKvHeads * a.headDim * elem;
  const qFloats = a.nTokens * a.nHeads * a.headDim;
  const q = f32Region(kern, op, "q", a.q, qFloats);
  const k = checkRegion(kern, op, { name: "kCache", ptr: a.kCache, bytes: cacheBytes }, elem);
  const v = checkRegion(kern, op, { name: "vCache", ptr: a.vCache, bytes: cacheBytes }, elem);
  // Only heads [headBegin, headEnd) of each token row are written; the region spans them all.
  const rowFloats = a.nHeads * a.headDim;
  const out = checkRegion(kern, op, {
    name: "out",
    ptr: a.out + headBegin * a.headDim * 4,
    bytes: ((a.nTokens - 1) * rowFloats + (headEnd - headBegin) * a.headDim) * 4,
  }, 4);
  const scratch = f32Region(kern, op, "scratch", a.scratch, attentionTokensScratchFloats(kvMax));
  checkOverlap(op, [out, scratch], [q, k, v], false);
  const scale = a.scale ?? 1 / Math.sqrt(a.headDim);
  return [a.q, a.kCache, a.vCache, a.out, a.scratch, a.nHeads, a.nKvHeads, a.headDim, a.end0, a.nTokens, window, scale, headBegin, headEnd];
}

/**
 * Attention of nTokens consecutive query tokens (a prefill block) over an f32 or f16 KV cache:
 * equal, bit for bit, to `attention` called for each token with its own kvLen.
 */
export function attentionTokens(kern: KernelInstance, cache: CacheType, a: AttentionTokensArgs): void {
  if (cache !== "f32" && cache !== "f16") throw new ShapeError("attentionTokens", "cache type f32 or f16", String(cache));
  call(kern, `attention_tokens_${cache}`, attentionTokensCallArgs(kern, cache, a));
}
