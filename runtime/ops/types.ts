/**
 * The operations a model's forward pass is written against. Model files see only this
 * interface: the reference backend (plain TypeScript, fp32) and the WASM backend implement
 * it, and `linear` dispatches on each weight's encoding, so no model file knows about
 * quantisation. Activations are row-major Float32Arrays: `n` rows (tokens) of a width.
 */

/** A weight matrix as the backend holds it (fp32 array, packed WASM tensor, ...). */
export interface MatrixHandle {
  readonly name: string;
  /** Output features. */
  readonly rows: number;
  /** Input features. */
  readonly cols: number;
}

/** Named weights of one model, resolved by Hugging Face tensor name. */
export interface WeightStore<M extends MatrixHandle = MatrixHandle> {
  has(name: string): boolean;
  /** A 2-D weight used by `linear` or `embed`; throws FormatError when missing. */
  matrix(name: string): M;
  /** A 1-D fp32 parameter (norm weights, biases); throws FormatError when missing. */
  vector(name: string): Float32Array;
}

export interface Ops<M extends MatrixHandle = MatrixHandle> {
  /** Rows of `table` for each token: (n, table.cols). */
  embed(tokens: readonly number[], table: M): Float32Array;
  /** x (n, w.cols) times wᵀ plus bias: (n, w.rows). */
  linear(x: Float32Array, n: number, w: M, bias?: Float32Array): Float32Array;
  /** RMSNorm of each row of x (n, weight.length), scaled by weight; returns a new buffer. */
  rmsNorm(x: Float32Array, n: number, weight: Float32Array, eps: number): Float32Array;
  /** Rotate-half RoPE in place on x (n, nHeads * headDim) at positions startPos..startPos+n-1. */
  rope(x: Float32Array, n: number, nHeads: number, headDim: number, startPos: number, invFreq: Float32Array): void;
  /** silu(gate) * up, elementwise; returns a new buffer. */
  siluMul(gate: Float32Array, up: Float32Array): Float32Array;
  /** a += b, elementwise. */
  addInPlace(a: Float32Array, b: Float32Array): void;
  /**
   * Optional: a new decoder layer starts. Arrays this backend returned during the previous
   * layer may be reused from here on, so a forward pass must not keep them across layers.
   */
  beginLayer?(): void;
  /** Optional: the layers are done; arrays returned from now on are the caller's to keep. */
  endLayers?(): void;
}

/** What one layer hands to the attention state for a block of n new tokens. */
export interface AttentionInput {
  readonly layer: number;
  /** (n, nHeads * headDim), RoPE applied. */
  readonly q: Float32Array;
  /** (n, nKvHeads * headDim), RoPE applied. */
  readonly k: Float32Array;
  /** (n, nKvHeads * headDim). */
  readonly v: Float32Array;
  readonly n: number;
  /** Position of the first of the n tokens. */
  readonly startPos: number;
  /** (n, hidden): the layer input after the attention norm, from which k and v were projected (XQuant caches this). */
  readonly x: Float32Array;
}

/**
 * Recomputes keys and values (RoPE applied) of one layer from cached layer inputs X, for
 * caches that store X instead of K/V (XQuant). Rows are positions startPos..startPos+n-1.
 */
export type KvProjector = (layer: number, x: Float32Array, n: number, startPos: number) => { k: Float32Array; v: Float32Array };

/**
 * The KV cache and attention together: stores the new keys/values of a layer and returns
 * causal attention of the new queries over everything cached, (n, nHeads * headDim).
 * Compressed caches (q8, q4, XQuant) implement the same contract.
 */
export interface AttentionState {
  attend(input: AttentionInput): Float32Array;
}

export interface ForwardContext<M extends MatrixHandle = MatrixHandle> {
  readonly ops: Ops<M>;
  readonly weights: WeightStore<M>;
  readonly attention: AttentionState;
}

export interface ForwardOptions {
  /** Return results for every input position (n, width) instead of only the last (width). */
  readonly allLogits?: boolean;
  /** "hidden": the final normalised hidden states (for embeddings) instead of logits. */
  readonly output?: "logits" | "hidden";
}
