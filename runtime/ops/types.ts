/**
 * The operations a model's forward pass is written against. Model files see only this
 * interface: the reference backend (plain TypeScript over Float32Arrays) and the WASM backend
 * (kernels over WASM memory, ./wasm-ops.ts) implement it, and `linear` dispatches on each
 * weight's encoding, so no model file knows about quantisation.
 *
 * Activations live in a run state the backend allocates once per model (`createState`): named
 * buffers of up to `maxTokens` rows of a fixed width (llama2.c's RunState). Ops take handles to
 * those buffers and the number of rows to use, write their results into handles the model
 * names, and return nothing; the backend decides when the calls run (the WASM backend queues
 * them and runs a whole layer or forward pass in one worker-pool dispatch). Only `read` hands
 * values back to the host. Fused work is explicit: one `linear` call runs every projection of
 * the same input (q/k/v, gate/up) together.
 */

/** A weight matrix as the backend holds it (fp32 array, packed WASM tensor, ...). */
export interface MatrixHandle {
  readonly name: string;
  /** Output features. */
  readonly rows: number;
  /** Input features. */
  readonly cols: number;
}

/** A 1-D fp32 parameter (norm weight, bias) as the backend holds it (a Float32Array is one). */
export interface VectorHandle {
  readonly length: number;
}

/** A buffer of the run state (or rows of one): up to `rows` rows of `width` floats. */
export interface Activation {
  readonly name: string;
  readonly width: number;
  /** Rows it can hold. */
  readonly rows: number;
}

/** Named weights of one model, resolved by Hugging Face tensor name. */
export interface WeightStore<M extends MatrixHandle = MatrixHandle, V extends VectorHandle = VectorHandle> {
  has(name: string): boolean;
  /** A 2-D weight used by `linear` or `embed`; throws FormatError when missing. */
  matrix(name: string): M;
  /** A 1-D fp32 parameter (norm weights, biases); throws FormatError when missing. */
  vector(name: string): V;
}

/** One output of a fused `linear`: out (n, weight.rows) = x · weightᵀ (+ bias). */
export interface Projection<M extends MatrixHandle = MatrixHandle, V extends VectorHandle = VectorHandle, A extends Activation = Activation> {
  readonly weight: M;
  readonly out: A;
  readonly bias?: V;
}

export interface Ops<M extends MatrixHandle = MatrixHandle, V extends VectorHandle = VectorHandle, A extends Activation = Activation> {
  /**
   * The run state: one buffer per entry of `widths` (name → floats per row), each of `maxTokens`
   * rows; positions (RoPE tables) up to `contextLength`. Allocated once per model.
   */
  createState<K extends string>(widths: Readonly<Record<K, number>>, maxTokens: number, contextLength: number): Record<K, A>;
  /** Rows first.. of `x` as a handle of its own (the same memory). */
  rows(x: A, first: number): A;
  /** Rows of `table` for each token into out (tokens.length, table.cols). */
  embed(tokens: readonly number[], table: M, out: A): void;
  /** Every projection of one input x (n, cols): the fused group runs together. */
  linear(x: A, n: number, projections: readonly Projection<M, V, A>[]): void;
  /** RMSNorm of `rows` rows of weight.length floats of x into out (may be x). */
  rmsNorm(x: A, rows: number, weight: V, eps: number, out: A): void;
  /** Rotate-half RoPE in place on x (n, nHeads·headDim) at positions startPos..startPos+n-1. */
  rope(x: A, n: number, nHeads: number, headDim: number, startPos: number, invFreq: Float32Array): void;
  /** out = silu(gate) · up over n rows. out may be gate or up. */
  siluMul(gate: A, up: A, n: number, out: A): void;
  /** x += y over n rows. */
  add(x: A, y: A, n: number): void;
  /**
   * The first n rows of x, (n, width). The WASM backend returns a view of its memory, valid
   * until the next op: copy what must outlive it.
   */
  read(x: A, n: number): Float32Array;
  /** Copies data (n, width) into the first n rows of x. */
  write(x: A, n: number, data: Float32Array): void;
}

/** What one layer hands to the attention state for a block of n new tokens. */
export interface AttentionInput<A extends Activation = Activation> {
  readonly layer: number;
  /** (n, nHeads·headDim), RoPE applied. */
  readonly q: A;
  /** (n, nKvHeads·headDim), RoPE applied. */
  readonly k: A;
  /** (n, nKvHeads·headDim). */
  readonly v: A;
  readonly n: number;
  /** Position of the first of the n tokens. */
  readonly startPos: number;
  /** (n, hidden): the layer input after the attention norm, from which k and v were projected (XQuant caches this). */
  readonly x: A;
  /** (n, nHeads·headDim): where the attention output goes. */
  readonly out: A;
}

/**
 * Recomputes keys and values (RoPE applied) of one layer from cached layer inputs X (n rows
 * of x) into k and v, for caches that store X instead of K/V (XQuant). Rows are positions
 * startPos..startPos+n-1.
 */
export type KvProjector<A extends Activation = Activation> = (layer: number, x: A, n: number, startPos: number, k: A, v: A) => void;

/**
 * The KV cache and attention together: stores the new keys/values of a layer and writes
 * causal attention of the new queries over everything cached into `out`. Compressed caches
 * (q8, q4, XQuant) implement the same contract.
 */
export interface AttentionState<A extends Activation = Activation> {
  attend(input: AttentionInput<A>): void;
}

/** The buffers a decoder's forward pass needs: name → floats per row. */
export type StateLayout<K extends string = string> = Readonly<Record<K, number>>;

export interface ForwardContext<
  M extends MatrixHandle = MatrixHandle,
  V extends VectorHandle = VectorHandle,
  A extends Activation = Activation,
  K extends string = string,
> {
  readonly ops: Ops<M, V, A>;
  readonly weights: WeightStore<M, V>;
  readonly attention: AttentionState<A>;
  /** The run state, from `ops.createState(arch.stateLayout(args), ...)`. */
  readonly state: Readonly<Record<K, A>>;
}

export interface ForwardOptions {
  /** Return results for every input position (n, width) instead of only the last (width). */
  readonly allLogits?: boolean;
  /** "hidden": the final normalised hidden states (for embeddings) instead of logits. */
  readonly output?: "logits" | "hidden";
}
