/**
 * The kernels' plain TypeScript twins (the oracle of every parity test), one module per kernel
 * family: elementwise/attention here, the run state's row kernels in ./reference/rows.ts, LUT
 * and dense matmul in ./reference/matmul.ts. (The benchmark's baselines have theirs in bench/baseline/.)
 */
export * from "./reference/elementwise.ts";
export * from "./reference/rows.ts";
export * from "./reference/matmul.ts";
