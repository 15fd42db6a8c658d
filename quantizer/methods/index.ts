/**
 * The quantisation methods by name, what each needs and what it encodes to. `rtn`, `hlq`,
 * `absmean` and `ptqtp` are data-free; `imatrix` needs per-channel importance and `gptq`
 * the Hessian of each linear layer's calibration inputs (calibrate.ts collects both).
 */
import { quantizeAbsmean } from "./absmean.ts";
import { quantizeGptq } from "./gptq.ts";
import { quantizeHlq } from "./hlq.ts";
import { quantizeImatrix } from "./imatrix.ts";
import { quantizePtqtp } from "./ptqtp.ts";
import { quantizeRtn } from "./rtn.ts";
import type { QuantizeMethod } from "./types.ts";

export type MethodName = "rtn" | "imatrix" | "gptq" | "hlq" | "absmean" | "ptqtp";

export interface MethodInfo {
  readonly quantize: QuantizeMethod;
  /** Bit-plane methods take --bits 1-4; ternary ones produce trit-planes. */
  readonly kind: "bitplane" | "ternary";
  readonly needs: "none" | "importance" | "hessian";
}

export const METHODS: Readonly<Record<MethodName, MethodInfo>> = {
  rtn: { quantize: quantizeRtn, kind: "bitplane", needs: "none" },
  imatrix: { quantize: quantizeImatrix, kind: "bitplane", needs: "importance" },
  gptq: { quantize: quantizeGptq, kind: "bitplane", needs: "hessian" },
  hlq: { quantize: quantizeHlq, kind: "bitplane", needs: "none" },
  absmean: { quantize: quantizeAbsmean, kind: "ternary", needs: "none" },
  ptqtp: { quantize: quantizePtqtp, kind: "ternary", needs: "none" },
};

export const METHOD_NAMES = Object.keys(METHODS) as MethodName[];

export { quantizeAbsmean, quantizeGptq, quantizeHlq, quantizeImatrix, quantizePtqtp, quantizeRtn };
export { quantizeMinMax } from "./rtn.ts";
export { quantizeQ8 } from "./q8.ts";
export * from "./types.ts";
