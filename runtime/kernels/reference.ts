/**
 * The kernels' plain TypeScript twins (the oracle of every parity test), one module per kernel
 * family: elementwise/attention here, LUT and dense matmul in ./reference/matmul.ts, the
 * benchmark baselines in ./reference/baseline.ts.
 */
export * from "./reference/elementwise.ts";
export * from "./reference/matmul.ts";
export * from "./reference/baseline.ts";
