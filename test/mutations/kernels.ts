/**
 * Breaks of engine v2's LUT kernel (issue 13 item 1: signed mirrored tables, paired plane
 * bytes, 2048-column blocks, two widening flavours), each with the tests that catch it. The
 * runner rebuilds the binaries for entries on kernels-wasm/src/*.rs (run.ts, rebuildKernels).
 * Every entry was applied, the kernels rebuilt, its tests seen to fail, and the file restored.
 */
import type { Mutation } from "./types.ts";

const MATMUL = "runtime/kernels/matmul.test.ts";

export const mutations: Mutation[] = [
  {
    name: "LUT tables: the mirrored half not reversed (entry idx = -q(8+idx) instead of -q(15-idx))",
    file: "kernels-wasm/src/lut.rs",
    find: "let neg = i16x8_shuffle::<7, 6, 5, 4, 3, 2, 1, 0>(neg, neg);",
    replace: "let neg = i16x8_shuffle::<0, 1, 2, 3, 4, 5, 6, 7>(neg, neg);",
    tests: [MATMUL],
    filter: "twins",
  },
  {
    name: "LUT tables: a partial last group padded with 1.0 instead of zeros",
    file: "kernels-wasm/src/lut.rs",
    find: "tail[i] = if base + i < cols { *x.add(base + i) } else { 0.0 };",
    replace: "tail[i] = if base + i < cols { *x.add(base + i) } else { 1.0 };",
    tests: [MATMUL],
  },
  {
    name: "LUT tables: the group's activation sum misses lane 3",
    file: "kernels-wasm/src/lut.rs",
    find: "+ (f32x4_extract_lane::<2>(lane) + f32x4_extract_lane::<3>(lane));",
    replace: "+ f32x4_extract_lane::<2>(lane);",
    tests: [MATMUL],
    filter: "twins",
  },
  {
    name: "LUT kernel: offset mode's plane pair weighted (2, 1) instead of (1, 2)",
    file: "kernels-wasm/src/lut_sums.rs",
    find: "MODE_OFFSET => Weights { w: [(0, pair(1 << (2 * u), 2 << (2 * u))), (0, 0)], n: 1 },",
    replace: "MODE_OFFSET => Weights { w: [(0, pair(2 << (2 * u), 1 << (2 * u))), (0, 0)], n: 1 },",
    tests: [MATMUL],
    filter: "twins",
  },
  {
    name: "LUT kernel: i16 chunks of 32 pairs for 3 planes (overflows at the table limit in groups of 256)",
    file: "kernels-wasm/src/gemm.rs",
    find: "MODE_OFFSET => [128, 32, 16, 8][planes - 1],",
    replace: "MODE_OFFSET => [128, 32, 32, 8][planes - 1],",
    tests: [MATMUL],
    filter: "table limit",
  },
  {
    name: "LUT kernel: offset coefficient d*2^B/2 instead of d*(2^B-1)/2",
    file: "kernels-wasm/src/gemm.rs",
    find: "let factor = if mode == MODE_OFFSET { ((1u32 << B) - 1) as f32 * 0.5 } else { 0.5 };",
    replace: "let factor = if mode == MODE_OFFSET { (1u32 << B) as f32 * 0.5 } else { 0.5 };",
    tests: [MATMUL],
    filter: "twins",
  },
  {
    name: "LUT kernel: ternary's half activation-sum term dropped",
    file: "kernels-wasm/src/gemm.rs",
    find: "f32x4_mul(f32x4_add(x, half_sx), bs.sc[set][h][r])",
    replace: "f32x4_mul(x, bs.sc[set][h][r])",
    tests: [MATMUL],
    filter: "twins",
  },
  {
    name: "LUT kernel, dot flavour only: the lone plane's rows 4-7 of half 1 take half 0's byte",
    file: "kernels-wasm/src/lut_sums.rs",
    find: "for (h, r, shift) in [(0, 0, 0), (1, 0, 8), (0, 1, 16), (1, 1, 24)] {",
    replace: "for (h, r, shift) in [(0, 0, 0), (1, 0, 8), (0, 1, 16), (1, 1, 16)] {",
    tests: [MATMUL],
    filter: "twins",
  },
  {
    name: "LUT kernel, madd flavour only: the lone plane's half 1 reads the low byte",
    file: "kernels-wasm/src/lut_sums.rs",
    find: "let (w0, w1) = (i16x8_splat(w as i16), i16x8_splat((w << 8) as i16));",
    replace: "let (w0, w1) = (i16x8_splat(w as i16), i16x8_splat(w as i16));",
    tests: [MATMUL],
    filter: "twins",
  },
  {
    name: "LUT kernel: bf16 scales' odd values read from the low half",
    file: "kernels-wasm/src/f16.rs",
    find: "[i32x4_shl(v, 16), v128_and(v, mask)]",
    replace: "[i32x4_shl(v, 16), i32x4_shl(v, 16)]",
    tests: [MATMUL],
    filter: "twins",
  },
  {
    name: "LUT kernel: a second column block overwrites the first's sums instead of adding",
    file: "kernels-wasm/src/gemm.rs",
    find: "            if g0 > 0 {\n                for t in 0..T {\n                    acc[t] = load_tile(",
    replace: "            if g0 > 1 << 30 {\n                for t in 0..T {\n                    acc[t] = load_tile(",
    tests: [MATMUL],
    filter: "column blocks",
  },
  {
    name: "checked matmul call: a LUT row range off the 16-row tile accepted",
    file: "runtime/kernels/matmul.ts",
    find: "if (kind === \"lut\" && begin % ROW_TILE !== 0) throw",
    replace: "if (kind === \"lut\" && begin % ROW_TILE !== 0 && false) throw",
    tests: ["runtime/kernels/matmul-shard.test.ts"],
    filter: "bad shards",
  },
  {
    name: "checked prepare call: an input overlapping the prepared buffer accepted",
    file: "runtime/kernels/matmul-inputs.ts",
    find: "if (x < buf.ptr + buf.stride * buf.m && buf.ptr < x + 4 * m * buf.cols) throw",
    replace: "if (x < buf.ptr + buf.stride * buf.m && buf.ptr < x + 4 * m * buf.cols && false) throw",
    tests: ["runtime/kernels/matmul-shard.test.ts"],
    filter: "preparing an input",
  },
  {
    name: "checked prepare call: token ranges after the first start at token 0's activations",
    file: "runtime/kernels/matmul-inputs.ts",
    find: "argsFor: (begin, end) => [x + 4 * begin * cols, cols,",
    replace: "argsFor: (begin, end) => [x, cols,",
    tests: ["runtime/kernels/matmul-shard.test.ts", "test/engine-v2.test.ts"],
  },
];
