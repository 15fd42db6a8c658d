/**
 * Stand-alone pool check for runtimes without bun:test (run by pool.test.ts under Deno):
 * RMSNorm over rows and f16 attention over heads, split across 2 threads, and a q2 matmul on
 * the row-shard fallback pool (private memories) must equal the single-threaded result bit
 * for bit. Prints one line and exits non-zero on a mismatch.
 */
import { attentionCallArgs } from "./elementwise.ts";
import { buildLut, createLut, createPackedMatrix, gemm } from "./matmul.ts";
import { quantizeRtn, randomFloats } from "./matmul-fixtures.ts";
import { createPool, disposePool } from "./pool.ts";
import { createShardPool } from "./shard-pool.ts";
import { createKernels, kernelVariant, loadKernels } from "./wasm.ts";

const kern = loadKernels();
const [rows, n] = [37, 1001];
const x = kern.arena.alloc(rows * n * 4);
const out1 = kern.arena.alloc(rows * n * 4);
const out2 = kern.arena.alloc(rows * n * 4);
const xs = new Float32Array(kern.memory.buffer, x, rows * n);
for (let i = 0; i < xs.length; i++) xs[i] = Math.sin(i * 0.37) * 3;

const pool = await createPool({ threads: 2 });
const argsFor = (out: number) => (begin: number, end: number) => [x + begin * n * 4, 0, out + begin * n * 4, end - begin, n, 1e-6];
kern.exports.rmsnorm_f32(...argsFor(out1)(0, rows));
pool.runRows("rmsnorm_f32", rows, argsFor(out2));
const a = new Uint8Array(kern.memory.buffer, out1, rows * n * 4);
const b = new Uint8Array(kern.memory.buffer, out2, rows * n * 4);
const same = a.every((v, i) => v === b[i]);

const [nHeads, nKvHeads, headDim, kvLen] = [8, 2, 64, 50];
const q = kern.arena.alloc(nHeads * headDim * 4);
const cache = kern.arena.alloc(kvLen * nKvHeads * headDim * 2);
new Uint16Array(kern.memory.buffer, cache, kvLen * nKvHeads * headDim).forEach((_, i, arr) => (arr[i] = 0x3000 + (i * 7919) % 0x0fff));
new Float32Array(kern.memory.buffer, q, nHeads * headDim).forEach((_, i, arr) => (arr[i] = Math.cos(i)));
const attOut = [kern.arena.alloc(nHeads * headDim * 4), kern.arena.alloc(nHeads * headDim * 4)];
const scratch = [kern.arena.alloc(nHeads * kvLen * 4), kern.arena.alloc(nHeads * kvLen * 4)];
const att = { q, kCache: cache, vCache: cache, nHeads, nKvHeads, headDim, kvLen };
kern.exports.attention_f16(...attentionCallArgs(kern, "f16", { ...att, out: attOut[0], scratch: scratch[0] }));
pool.run("attention_f16", [[0, 3], [3, 8]].map(([headBegin, headEnd], s) =>
  attentionCallArgs(kern, "f16", { ...att, out: attOut[1], scratch: scratch[s], headBegin, headEnd })
));
const c = new Uint8Array(kern.memory.buffer, attOut[0], nHeads * headDim * 4);
const d = new Uint8Array(kern.memory.buffer, attOut[1], nHeads * headDim * 4);
const sameAttention = c.every((v, i) => v === d[i]);
await disposePool(pool);

const own = createKernels({ shared: false });
const q2 = { kind: "bitplane", bits: 2, group: 64, scales: "zero-point" } as const;
const [mRows, mCols] = [90, 130];
const matrix = createPackedMatrix(own, q2, mRows, mCols, quantizeRtn(q2, randomFloats(mRows * mCols, 1), mRows, mCols));
const xv = randomFloats(mCols, 2);
const single = gemm(own, matrix, xv, 1) as Float32Array;
const shardPool = await createShardPool({ threads: 2, kernels: own, matrices: [matrix], maxTokens: 1 });
const lut = createLut(own, mCols, 64, 1);
buildLut(own, lut, xv);
const sharded = own.arena.alloc(mRows * 4);
shardPool.gemm(matrix, lut, 1, sharded, mRows);
shardPool.dispose();
const sameRows = new Float32Array(own.memory.buffer, sharded, mRows).every((v, i) => v === single[i]);

if (!same || !sameAttention || !sameRows) {
  throw new Error(`pool result differs from one thread (rmsnorm ${same}, attention ${sameAttention}, row shards ${sameRows})`);
}
console.log(`pool smoke ok: 2 threads equal 1 thread (${kernelVariant()})`);
