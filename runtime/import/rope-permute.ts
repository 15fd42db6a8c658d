/**
 * Row permutations between the two RoPE layouts of q_proj / k_proj weights. Meta's
 * checkpoints (llama2.c, llama.cpp GGUF "llama") rotate interleaved pairs (2i, 2i+1) of
 * each head; Hugging Face rotates halves (i, i + headDim/2). transformers'
 * convert_llama_weights_to_hf.py maps Meta → HF by viewing a (nHeads*headDim, cols) matrix
 * as (nHeads, headDim/2, 2, cols) and swapping axes 1 and 2; llama.cpp's converter applies
 * the inverse. crumb's runtime only implements the rotate-half (HF) form.
 */

import { ShapeError } from "../errors.ts";

function check(op: string, w: Float32Array, nHeads: number, cols: number): number {
  const rows = w.length / cols;
  if (!Number.isInteger(rows) || nHeads < 1 || rows % nHeads !== 0 || (rows / nHeads) % 2 !== 0) {
    throw new ShapeError(op, `rows divisible by ${nHeads} heads of even size`, `${w.length} values with ${cols} columns`);
  }
  return rows / nHeads;
}

/**
 * Source row of each HF rotate-half row when the rows are stored Meta-interleaved:
 * HF row h·headDim + i·half + j comes from Meta row h·headDim + 2j + i.
 */
export function metaToHfRowOrder(rows: number, nHeads: number): Int32Array {
  if (nHeads < 1 || rows % nHeads !== 0 || (rows / nHeads) % 2 !== 0) {
    throw new ShapeError("metaToHfRowOrder", `rows divisible by ${nHeads} heads of even size`, `${rows} rows`);
  }
  const headDim = rows / nHeads;
  const half = headDim / 2;
  const order = new Int32Array(rows);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < half; j++) order[h * headDim + i * half + j] = h * headDim + 2 * j + i;
    }
  }
  return order;
}

/** Rows of a (rows, cols) matrix in the given order: out row r = in row order[r]. */
export function reorderRows(w: Float32Array, order: Int32Array, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < order.length; r++) out.set(w.subarray(order[r]! * cols, (order[r]! + 1) * cols), r * cols);
  return out;
}

/** Meta interleaved rows → HF rotate-half rows: out[h, i*half + j] = in[h, 2j + i]. */
export function permuteMetaToHf(w: Float32Array, nHeads: number, cols: number): Float32Array {
  check("permuteMetaToHf", w, nHeads, cols);
  return reorderRows(w, metaToHfRowOrder(w.length / cols, nHeads), cols);
}

/** HF rotate-half rows → Meta interleaved rows (the inverse of permuteMetaToHf). */
export function permuteHfToMeta(w: Float32Array, nHeads: number, cols: number): Float32Array {
  const headDim = check("permuteHfToMeta", w, nHeads, cols);
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < half; j++) {
        const src = (h * headDim + i * half + j) * cols;
        out.set(w.subarray(src, src + cols), (h * headDim + 2 * j + i) * cols);
      }
    }
  }
  return out;
}
