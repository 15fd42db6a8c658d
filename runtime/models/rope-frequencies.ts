/**
 * RoPE inverse frequencies, including the rope_scaling variants HF configs use.
 * inv_freq[i] = theta^(-2i/d); "linear" divides them by the factor (positions / factor);
 * "llama3" rescales only the low-frequency band and blends the middle band smoothly
 * (Llama 3.1 release; transformers' _compute_llama3_parameters).
 */
import type { RopeScaling } from "./config.ts";

export function ropeInverseFrequencies(headDim: number, theta: number, scaling: RopeScaling): Float32Array {
  const half = headDim / 2;
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const base = 1 / Math.pow(theta, (2 * i) / headDim);
    invFreq[i] = scaleFrequency(base, scaling);
  }
  return invFreq;
}

function scaleFrequency(freq: number, scaling: RopeScaling): number {
  switch (scaling.type) {
    case "none":
      return freq;
    case "linear":
      return freq / scaling.factor;
    case "llama3": {
      const lowFreqWavelen = scaling.originalMaxPositions / scaling.lowFreqFactor;
      const highFreqWavelen = scaling.originalMaxPositions / scaling.highFreqFactor;
      const wavelen = (2 * Math.PI) / freq;
      if (wavelen < highFreqWavelen) return freq;
      if (wavelen > lowFreqWavelen) return freq / scaling.factor;
      const smooth = (scaling.originalMaxPositions / wavelen - scaling.lowFreqFactor) /
        (scaling.highFreqFactor - scaling.lowFreqFactor);
      return (1 - smooth) * (freq / scaling.factor) + smooth * freq;
    }
  }
}
