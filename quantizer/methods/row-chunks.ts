/**
 * Quantises a tall matrix in blocks of rows and joins the results. Every bit-plane method
 * quantises each row on its own (GPTQ spreads a row's rounding error over that row's later
 * columns, through a factor of the shared Hessian; the group fits and the refit are per row),
 * so the result is the whole matrix's, while the working set (GPTQ's sweep keeps a few
 * float32 copies of the block in WASM memory) is one block's. An output head of a real
 * vocabulary (128256x2048 for Llama-3.2-1B) is 16 times a decoder layer's largest matrix: at
 * once, GPTQ's working set would pass the 4 GiB of WASM memory.
 */
import { ShapeError } from "../../runtime/errors.ts";
import { encodingName } from "../../runtime/format/encoding.ts";
import type { MatrixInput, QuantizedMatrix } from "./types.ts";

/** Weights per block: 16384 rows of 2048 (GPTQ peaks near 700 MB on one, measured). */
export const ROW_CHUNK_WEIGHTS = 1 << 25;

export function quantizeInRowChunks(
  input: MatrixInput,
  quantize: (block: MatrixInput) => QuantizedMatrix,
  maxWeights = ROW_CHUNK_WEIGHTS,
): QuantizedMatrix {
  const { rows, cols } = input;
  const step = Math.max(1, Math.floor(maxWeights / cols));
  if (rows <= step) return quantize(input);
  const parts: QuantizedMatrix[] = [];
  for (let r = 0; r < rows; r += step) {
    const end = Math.min(rows, r + step);
    parts.push(quantize({ ...input, weights: input.weights.subarray(r * cols, end * cols), rows: end - r }));
  }
  const first = parts[0];
  if (first.encoding.kind !== "bitplane" || !parts.every((p) => JSON.stringify(p.encoding) === JSON.stringify(first.encoding))) {
    const names = parts.map((p) => encodingName(p.encoding)).join(", ");
    throw new ShapeError("quantizeInRowChunks", "bit-plane blocks of one encoding (only those can be joined)", names);
  }
  const join = (pick: (q: QuantizedMatrix & { encoding: { kind: "bitplane" } }) => Float32Array | Uint8Array | undefined) => {
    const arrays = parts.map((p) => pick(p as QuantizedMatrix & { encoding: { kind: "bitplane" } }));
    if (arrays.some((a) => a === undefined)) return undefined;
    const out = new (arrays[0]!.constructor as Float32ArrayConstructor | Uint8ArrayConstructor)(arrays.reduce((n, a) => n + a!.length, 0));
    let at = 0;
    for (const a of arrays) {
      out.set(a!, at);
      at += a!.length;
    }
    return out;
  };
  const offsets = join((q) => q.offsets) as Float32Array | undefined;
  return {
    encoding: first.encoding,
    codes: join((q) => q.codes) as Uint8Array,
    scales: join((q) => q.scales) as Float32Array,
    zeros: join((q) => q.zeros) as Float32Array,
    ...(offsets === undefined ? {} : { offsets }),
  };
}
