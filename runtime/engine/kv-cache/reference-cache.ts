/**
 * The reference attention state: an fp32 KV cache with plain causal softmax attention and
 * grouped-query heads (query head h reads kv head floor(h / (nHeads / nKvHeads))).
 * Clarity over speed: this is the oracle for the compressed caches.
 */
import { ContextLengthError, ShapeError } from "../../errors.ts";
import type { Activation, AttentionInput, AttentionState } from "../../ops/types.ts";
import type { ArrayActivation } from "../../ops/reference.ts";

export interface CacheShape {
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  /** Positions the cache can hold. */
  readonly contextLength: number;
  /** Attend to at most this many most recent positions (Mistral's sliding window). */
  readonly slidingWindow?: number;
}

export interface ReferenceCache<A extends Activation = ArrayActivation> extends AttentionState<A> {
  readonly shape: CacheShape;
  /** Positions cached in layer 0 (all layers agree after a full forward). */
  length(): number;
  /** Forgets everything from position `pos` on (sessions rewind to reuse a common prefix). */
  truncate(pos: number): void;
}

export function createReferenceCache(shape: CacheShape): ReferenceCache {
  const kvDim = shape.numKvHeads * shape.headDim;
  const keys: Float32Array[] = []; // per layer (contextLength, kvDim)
  const values: Float32Array[] = [];
  for (let l = 0; l < shape.numLayers; l++) {
    keys.push(new Float32Array(shape.contextLength * kvDim));
    values.push(new Float32Array(shape.contextLength * kvDim));
  }
  const lengths = new Array<number>(shape.numLayers).fill(0);
  const scale = 1 / Math.sqrt(shape.headDim);
  const group = shape.numHeads / shape.numKvHeads;

  return {
    shape,
    length: () => lengths[0],
    truncate(pos) {
      for (let l = 0; l < shape.numLayers; l++) lengths[l] = Math.min(lengths[l], pos);
    },
    attend(input: AttentionInput<ArrayActivation>): void {
      const { layer, n, startPos } = input;
      const { numHeads, headDim, contextLength } = shape;
      if (startPos + n > contextLength) throw new ContextLengthError(startPos, n, contextLength);
      if (startPos > lengths[layer]) {
        throw new ShapeError("attention", `start position <= cached length ${lengths[layer]}`, String(startPos));
      }
      const qDim = numHeads * headDim;
      const { q: qa, k: ka, v: va, out: oa } = input;
      if (ka.width !== kvDim || va.width !== kvDim || qa.width !== qDim || oa.width !== qDim || n > Math.min(qa.rows, ka.rows, va.rows, oa.rows)) {
        throw new ShapeError("attention", `${n} rows of q/out ${qDim} wide, k/v ${kvDim} wide`, `${qa.width}, ${oa.width}, ${ka.width}, ${va.width}`);
      }
      const q = qa.data;
      keys[layer].set(ka.data.subarray(0, n * kvDim), startPos * kvDim);
      values[layer].set(va.data.subarray(0, n * kvDim), startPos * kvDim);
      lengths[layer] = startPos + n;

      const out = oa.data;
      const scores = new Float64Array(startPos + n);
      for (let t = 0; t < n; t++) {
        const pos = startPos + t; // attends to positions first..pos
        const first = shape.slidingWindow === undefined ? 0 : Math.max(0, pos - shape.slidingWindow + 1);
        for (let h = 0; h < numHeads; h++) {
          const qOff = (t * numHeads + h) * headDim;
          const kvOff = Math.floor(h / group) * headDim;
          let max = -Infinity;
          for (let p = first; p <= pos; p++) {
            let dot = 0;
            for (let i = 0; i < headDim; i++) dot += q[qOff + i] * keys[layer][p * kvDim + kvOff + i];
            scores[p] = dot * scale;
            if (scores[p] > max) max = scores[p];
          }
          let total = 0;
          for (let p = first; p <= pos; p++) {
            scores[p] = Math.exp(scores[p] - max);
            total += scores[p];
          }
          for (let i = 0; i < headDim; i++) {
            let acc = 0;
            for (let p = first; p <= pos; p++) acc += scores[p] * values[layer][p * kvDim + kvOff + i];
            out[qOff + i] = acc / total;
          }
        }
      }
    },
  };
}
