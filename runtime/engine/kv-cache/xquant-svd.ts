/**
 * The SVD factors XQuant needs for grouped-query models (arXiv 2508.10395, §GQA): per layer
 * and projection W (kvDim, hidden), Wᵀ = U·Σ·Bᵀ with U (hidden, rank) and Σ·Bᵀ (rank, kvDim).
 * The quantizer stores them as f16 tensors `model.layers.{L}.self_attn.{k,v}_proj.xquant_u`
 * and `.xquant_sb` (header.extra.xquant, quantizer/quantize.ts); a checkpoint without them gets
 * them computed here at load time from the dequantised packed weights, with the same
 * routine (./xquant-factors.ts). The codec packs them for the dense f16 GEMM:
 *   encode: X (n, hidden) · [Uk | Uv] → latents (n, 2·rank) = [X·Uk | X·Uv]
 *   decode: projectKv over latents with k_proj := [Σk·Bkᵀ ; 0]ᵀ and v_proj := [0 ; Σv·Bvᵀ]ᵀ,
 *           so the bias, k_norm and RoPE come from the architecture's own code.
 * The zero halves double the small rebuild GEMM; a kernel taking two inputs would avoid it.
 */
import { dequantize } from "../../format/pack-dequantize.ts";
import { packF16 } from "../../format/pack-f16.ts";
import { createPackedMatrix } from "../../kernels/matmul.ts";
import type { Kernels } from "../../kernels/wasm.ts";
import type { Architecture, ModelArgs } from "../../models/registry.ts";
import type { ForwardContext, WeightStore } from "../../ops/types.ts";
import { MAX_TOKENS_PER_CALL, type WasmActivation, type WasmMatrix, type WasmOps, type WasmVector } from "../../ops/wasm-ops.ts";
import { xquantFactors, xquantNames } from "./xquant-factors.ts";

export interface LatentCodec {
  /** Latent channels per projection (kvDim). */
  readonly rank: number;
  /** (n, 2·rank): [X·Uk | X·Uv] of x (n rows); a view valid until the next op. */
  encode(layer: number, x: WasmActivation, n: number): Float32Array;
  /** K (RoPE at positions first..) and V from latents (n rows, 2·rank wide) into k and v (queued). */
  decode(layer: number, latents: WasmActivation, n: number, first: number, k: WasmActivation, v: WasmActivation): void;
}

/** Factors of one projection: u (hidden, rank) and sb (rank, kvDim), row-major f32. */
export function projectionFactors(kernels: Kernels, weights: WeightStore<WasmMatrix, WasmVector>, projection: string): { u: Float32Array; sb: Float32Array; stored: boolean } {
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
  ops: WasmOps,
  weights: WeightStore<WasmMatrix, WasmVector>,
  args: ModelArgs,
  projectKv: Architecture["projectKv"],
): LatentCodec & { readonly storedFactors: boolean } {
  const kernels = ops.queue.kernels;
  const hidden = args.hiddenSize;
  const kvDim = args.numKvHeads * args.headDim;
  const rank = kvDim;
  const encoders: WasmMatrix[] = [];
  const rebuild: { k: WasmMatrix; v: WasmMatrix }[] = [];
  let storedFactors = true;
  const matrix = (name: string, rows: number, cols: number, values: Float32Array): WasmMatrix =>
    ({ ...createPackedMatrix(kernels, { kind: "f16" }, rows, cols, packF16(values)), name });

  // One set of staging arrays for every layer (each is packed into WASM memory before the next).
  const enc = new Float32Array(2 * rank * hidden); // (2·rank, hidden): rows j = U[:, j]
  const kRe = new Float32Array(kvDim * 2 * rank); // (kvDim, 2·rank)
  const vRe = new Float32Array(kvDim * 2 * rank);
  for (let l = 0; l < args.numLayers; l++) {
    const p = `model.layers.${l}.self_attn`;
    const fk = projectionFactors(kernels, weights, `${p}.k_proj`);
    const fv = projectionFactors(kernels, weights, `${p}.v_proj`);
    storedFactors &&= fk.stored && fv.stored;
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

  const latents = ops.createState({ latents: 2 * rank }, MAX_TOKENS_PER_CALL, 1).latents;
  const encoding = encoders.map((weight) => [{ weight, out: latents }]);
  // projectKv through weights whose k_proj and v_proj are the rebuild matrices of the layer.
  const overlays = rebuild.map(({ k, v }, layer) => {
    const p = `model.layers.${layer}.self_attn`;
    const overlay: WeightStore<WasmMatrix, WasmVector> = {
      has: weights.has,
      vector: weights.vector,
      matrix: (name) => name === `${p}.k_proj.weight` ? k : name === `${p}.v_proj.weight` ? v : weights.matrix(name),
    };
    return { ops, weights: overlay } as Pick<ForwardContext, "ops" | "weights">;
  });

  return {
    rank,
    storedFactors,
    encode(layer, x, n) {
      ops.linear(x, n, encoding[layer]);
      return ops.read(latents, n);
    },
    decode(layer, input, n, first, k, v) {
      projectKv(args, overlays[layer], layer, input, n, first, k, v);
    },
  };
}
