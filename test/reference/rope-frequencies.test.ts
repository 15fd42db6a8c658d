/**
 * crumb's RoPE inverse-frequency tables (runtime/models/rope-frequencies.ts, reached through
 * the config normaliser as a checkpoint reaches it) against values computed here from the
 * published formulas, with parameters of real configs:
 * - RoFormer (Su et al. 2021): θ_i = base^(-2i/d), i < d/2 (Llama-2-7B: 10000, d 128;
 *   Qwen3-0.6B: 1000000, d 128);
 * - linear position interpolation (Chen et al. 2023): positions divided by the factor, i.e.
 *   θ_i / factor (lmsys/vicuna-7b-v1.5-16k: 10000, d 128, factor 4);
 * - Llama 3.1's frequency-dependent scaling, as in Meta's reference `apply_scaling`
 *   (Llama-3.2-1B: 500000, d 64, factor 32, low_freq_factor 1, high_freq_factor 4,
 *   original_max_position_embeddings 8192): wavelengths shorter than original/high keep θ_i,
 *   longer than original/low get θ_i / factor, and between them
 *   s = (original/λ - low) / (high - low) blends (1 - s)·θ_i/factor + s·θ_i.
 * crumb stores float32, so the tolerance is 2e-7 relative (one float32 rounding is 6e-8).
 * Scaling types crumb does not implement must be refused, never run as plain RoPE.
 */
import { describe, expect, test } from "bun:test";
import { normalizeRopeScaling } from "../../runtime/models/config.ts";
import { ropeInverseFrequencies } from "../../runtime/models/rope-frequencies.ts";
import { UnsupportedModelError } from "../../runtime/errors.ts";
import { referenceInverseFrequencies } from "./hf-reference.ts";

const RELATIVE = 2e-7;

/** crumb's table for a config.json's rope fields. */
function crumbTable(headDim: number, theta: number, ropeScaling?: Record<string, unknown>): Float32Array {
  return ropeInverseFrequencies(headDim, theta, normalizeRopeScaling({ rope_scaling: ropeScaling }));
}

function roformer(headDim: number, base: number): number[] {
  return Array.from({ length: headDim / 2 }, (_, i) => 1 / base ** ((2 * i) / headDim));
}

/** Meta's apply_scaling, one frequency at a time. */
function llama3(freqs: number[], factor: number, low: number, high: number, original: number): number[] {
  const lowFreqWavelength = original / low;
  const highFreqWavelength = original / high;
  return freqs.map((freq) => {
    const wavelength = (2 * Math.PI) / freq;
    if (wavelength < highFreqWavelength) return freq;
    if (wavelength > lowFreqWavelength) return freq / factor;
    const smooth = (original / wavelength - low) / (high - low);
    return (1 - smooth) * (freq / factor) + smooth * freq;
  });
}

function maxRelativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let max = 0;
  for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(got[i] - want[i]) / Math.abs(want[i]));
  return max;
}

const LLAMA_3_2_1B = {
  theta: 500000,
  headDim: 64,
  scaling: { rope_type: "llama3", factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
};

describe("default RoPE (RoFormer)", () => {
  test("Llama-2-7B (theta 10000, head_dim 128) and Qwen3-0.6B (theta 1e6, head_dim 128)", () => {
    for (const theta of [10000, 1000000]) {
      expect(maxRelativeError(crumbTable(128, theta), roformer(128, theta))).toBeLessThan(RELATIVE);
      expect(maxRelativeError(crumbTable(128, theta, { rope_type: "default" }), roformer(128, theta))).toBeLessThan(RELATIVE);
    }
    const table = crumbTable(128, 10000);
    expect(table[0]).toBe(1);
    expect(table[1]).toBeCloseTo(0.8659643, 6); // 10000^(-2/128)
    expect(table[63]).toBeCloseTo(1.15478198e-4, 10); // 10000^(-126/128)
  });
});

describe("linear position interpolation", () => {
  test("vicuna-7b-v1.5-16k (theta 10000, head_dim 128, factor 4), with `type` and `rope_type` keys", () => {
    const want = roformer(128, 10000).map((f) => f / 4);
    expect(maxRelativeError(crumbTable(128, 10000, { type: "linear", factor: 4 }), want)).toBeLessThan(RELATIVE);
    expect(maxRelativeError(crumbTable(128, 10000, { rope_type: "linear", factor: 4 }), want)).toBeLessThan(RELATIVE);
  });
});

describe("Llama 3.1 frequency-dependent scaling", () => {
  const { theta, headDim, scaling } = LLAMA_3_2_1B;
  const base = roformer(headDim, theta);
  const want = llama3(base, 32, 1, 4, 8192);

  test("Llama-3.2-1B's table equals Meta's apply_scaling", () => {
    expect(maxRelativeError(crumbTable(headDim, theta, scaling), want)).toBeLessThan(RELATIVE);
  });

  test("Llama-3.2-1B: 15 frequencies kept, 3 blended, 14 divided by 32", () => {
    // Wavelengths 2π·500000^(i/32): below 8192/4 = 2048 up to i = 14, above 8192 from i = 18.
    const ratio = Array.from(crumbTable(headDim, theta, scaling), (f, i) => f / base[i]);
    const kept = ratio.filter((r) => Math.abs(r - 1) < 1e-6).length;
    const divided = ratio.filter((r) => Math.abs(r * 32 - 1) < 1e-6).length;
    expect([kept, headDim / 2 - kept - divided, divided]).toEqual([15, 3, 14]);
    // i = 16: λ = 2π·√500000 = 4442.9, s = (8192/λ - 1)/3 = 0.281283, scale (1 - s)/32 + s = 0.303743.
    expect(ratio[16]).toBeCloseTo(0.303743, 6);
  });

  test("the scale falls monotonically from 1 to 1/factor across the blend (dense sweep, head_dim 1024)", () => {
    // 512 frequencies put dozens inside the band; the blend must meet both neighbours.
    const table = crumbTable(1024, theta, scaling);
    const dense = roformer(1024, theta);
    const ratio = Array.from(table, (f, i) => f / dense[i]);
    const blended = ratio.filter((r) => r < 1 - 1e-6 && r > 1 / 32 + 1e-6).length;
    expect(blended).toBeGreaterThan(20);
    for (let i = 1; i < ratio.length; i++) expect(ratio[i]).toBeLessThanOrEqual(ratio[i - 1] + 1e-6);
    expect(ratio[0]).toBeCloseTo(1, 6);
    expect(ratio.at(-1)! * 32).toBeCloseTo(1, 6);
    expect(maxRelativeError(table, llama3(dense, 32, 1, 4, 8192))).toBeLessThan(RELATIVE);
  });
});

test("the model-level reference (hf-reference.ts) uses the same formulas", () => {
  expect(maxRelativeError(referenceInverseFrequencies(128, 10000, null), roformer(128, 10000))).toBeLessThan(1e-15);
  expect(maxRelativeError(referenceInverseFrequencies(128, 10000, { type: "linear", factor: 4 }), roformer(128, 10000).map((f) => f / 4)))
    .toBeLessThan(1e-15);
  const { theta, headDim, scaling } = LLAMA_3_2_1B;
  expect(maxRelativeError(referenceInverseFrequencies(headDim, theta, scaling), llama3(roformer(headDim, theta), 32, 1, 4, 8192)))
    .toBeLessThan(1e-15);
});

test("scaling types crumb does not implement are refused, not run as plain RoPE", () => {
  for (const type of ["dynamic", "yarn", "longrope", "su", "ntk"]) {
    expect(() => normalizeRopeScaling({ rope_scaling: { rope_type: type, factor: 4 } })).toThrow(UnsupportedModelError);
    expect(() => normalizeRopeScaling({ rope_scaling: { type, factor: 4 } })).toThrow(/linear.*llama3|llama3.*linear/);
  }
});
