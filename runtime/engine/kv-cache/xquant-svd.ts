/**
 * The SVD factors XQuant needs for grouped-query models (arXiv 2508.10395, §GQA): per layer
 * and projection W (kvDim, hidden), Wᵀ = U·Σ·Bᵀ with U (hidden, rank) and Σ·Bᵀ (rank, kvDim).
 * The quantizer stores them as f16 tensors `model.layers.{L}.self_attn.{k,v}_proj.xquant_u`
 * and `.xquant_sb` (header.extra.xquant, quantizer/xquant.ts); a checkpoint without them gets
 * them computed here at load time from the dequantised packed weights, with the same
 * routine. The codec packs them for the dense f16 GEMM:
 *   encode: X (n, hidden) · [Uk | Uv] → latents (n, 2·rank) = [X·Uk | X·Uv]
 *   decode: projectKv over latents with k_proj := [Σk·Bkᵀ ; 0]ᵀ and v_proj := [0 ; Σv·Bvᵀ]ᵀ,
 *           so the bias, k_norm and RoPE come from the architecture's own code.
 * The zero halves double the small rebuild GEMM; a kernel taking two inputs would avoid it.
 */
import { dequantize } from "../../format/pack-dequantize.ts";
import { packF16 } from "../../format/pack-f16.ts";
import { createPackedMatrix } from "../../kernels/matmul.ts";
import type { Kernels } from "../../kernels/wasm.ts";
import type { ModelArgs } from "../../models/registry.ts";
import type { Ops, WeightStore } from "../../ops/types.ts";
import type { WasmMatrix } from "../../ops/wasm-ops.ts";
import { xquantFactors, xquantNames } from "../../../quantizer/xquant.ts";

export interface LatentCodec {
  /** Latent channels per projection (kvDim). */
  readonly rank: number;
  /** (n, 2·rank): [X·Uk | X·Uv]. */
  encode(layer: number, x: Float32Array, n: number): Float32Array;
  /** K (RoPE at positions first..) and V from latents (n, 2·rank). */
  decode(layer: number, latents: Float32Array, n: number, first: number): { k: Float32Array; v: Float32Array };
}

export type ProjectKv = (
  args: ModelArgs,
  ctx: { ops: Ops<WasmMatrix>; weights: WeightStore<WasmMatrix> },
  layer: number,
  x: Float32Array,
  n: number,
  first: number,
) => { k: Float32Array; v: Float32Array };

/** Factors of one projection: u (hidden, rank) and sb (rank, kvDim), row-major f32. */
export function projectionFactors(kernels: Kernels, weights: WeightStore<WasmMatrix>, projection: string): { u: Float32Array; sb: Float32Array; stored: boolean } {
  const names = xquantNames(projection);
  const read = (m: WasmMatrix) => dequantize(m.encoding, new Uint8Array(kernels.memory.buffer, m.ptr, m.layout.byteLength), m.rows, m.cols);
  if (weights.has(names.u) && weights.has(names.sb)) {
    return { u: read(weights.matrix(names.u)), sb: read(weights.matrix(names.sb)), stored: true };
  }
  const w = weights.matrix(`${projection}.weight`);
  const f = xquantFactors(read(w), w.rows, w.cols);
  return { u: f.u, sb: f.sb, stored: false };
}

export function createLatentCodec(
  kernels: Kernels,
  ops: Ops<WasmMatrix>,
  weights: WeightStore<WasmMatrix>,
  args: ModelArgs,
  projectKv: ProjectKv,
): LatentCodec & { readonly storedFactors: boolean } {
  const hidden = args.hiddenSize;
  const kvDim = args.numKvHeads * args.headDim;
  const rank = kvDim;
  const encoders: WasmMatrix[] = [];
  const rebuild: { k: WasmMatrix; v: WasmMatrix }[] = [];
  let storedFactors = true;
  const matrix = (name: string, rows: number, cols: number, values: Float32Array): WasmMatrix =>
    ({ ...createPackedMatrix(kernels, { kind: "f16" }, rows, cols, packF16(values)), name });

  for (let l = 0; l < args.numLayers; l++) {
    const p = `model.layers.${l}.self_attn`;
    const fk = projectionFactors(kernels, weights, `${p}.k_proj`);
    const fv = projectionFactors(kernels, weights, `${p}.v_proj`);
    storedFactors &&= fk.stored && fv.stored;
    const enc = new Float32Array(2 * rank * hidden); // (2·rank, hidden): rows j = U[:, j]
    const kRe = new Float32Array(kvDim * 2 * rank); // (kvDim, 2·rank)
    const vRe = new Float32Array(kvDim * 2 * rank);
    for (let j = 0; j < rank; j++) {
      for (let h = 0; h < hidden; h++) {
        enc[j * hidden + h] = fk.u[h * rank + j];
        enc[(rank + j) * hidden + h] = fv.u[h * rank + j];
      }
      for (let c = 0; c < kvDim; c++) {
        kRe[c * 2 * rank + j] = fk.sb[j * kvDim + c];
        vRe[c * 2 * rank + rank + j] = fv.sb[j * kvDim + c];
      }
    }
    encoders.push(matrix(`${p}.xquant_encode`, 2 * rank, hidden, enc));
    rebuild.push({ k: matrix(`${p}.k_proj.weight`, kvDim, 2 * rank, kRe), v: matrix(`${p}.v_proj.weight`, kvDim, 2 * rank, vRe) });
  }

  return {
    rank,
    storedFactors,
    encode: (layer, x, n) => ops.linear(x, n, encoders[layer]),
    decode(layer, latents, n, first) {
      const p = `model.layers.${layer}.self_attn`;
      const overlay: WeightStore<WasmMatrix> = {
        has: weights.has,
        vector: weights.vector,
        matrix: (name) => name === `${p}.k_proj.weight` ? rebuild[layer].k : name === `${p}.v_proj.weight` ? rebuild[layer].v : weights.matrix(name),
      };
      return projectKv(args, { ops, weights: overlay }, layer, latents, n, first);
    },
  };
}
