/**
 * Breaks of the load path issue 13 item 8 rebuilt (positioned reads straight into WASM memory,
 * several in flight, checksums by the kernels' XXH32 in file order), each with the tests that
 * catch it. Entries on kernels-wasm/src/*.rs take effect only after `npm run build:kernels`.
 * Every entry was applied to the working tree (and the kernels rebuilt where needed), its
 * tests run and seen to fail, and the file restored.
 */
import type { Mutation } from "./types.ts";

const KERNEL_PARITY = "runtime/kernels/checksum.test.ts";
const READ_DATA = "runtime/format/read-data.test.ts";
const LOAD_PATH = "test/load-path.test.ts";

export const mutations: Mutation[] = [
  {
    name: "WASM XXH32: the tail's 4-byte words rotated by 16 instead of 17",
    file: "kernels-wasm/src/checksum.rs",
    find: ".wrapping_mul(PRIME3)).rotate_left(17)",
    replace: ".wrapping_mul(PRIME3)).rotate_left(16)",
    tests: [KERNEL_PARITY],
  },
  {
    name: "WASM XXH32 stream: a stripe completed from pending bytes is dropped",
    file: "kernels-wasm/src/checksum.rs",
    find: "        let pending = s.pending;\n        stripes(&mut s.v, pending.as_ptr(), 16);\n",
    replace: "",
    tests: [KERNEL_PARITY],
  },
  {
    name: "WASM XXH32 stream: input that reaches 16 bytes over several updates keeps the short-input formula",
    file: "kernels-wasm/src/checksum.rs",
    find: "if s.large == 0 && (s.total as usize) + n >= 16 {",
    replace: "if s.large == 0 && n >= 16 {",
    tests: [KERNEL_PARITY],
  },
  {
    name: "xxh32 wrapper: bytes outside the kernel memory hashed at their byteOffset",
    file: "runtime/kernels/checksum.ts",
    find: "  if (bytes.buffer !== kern.memory.buffer) {",
    replace: "  if (false) {",
    tests: [KERNEL_PARITY],
  },
  {
    name: "section read: hashing runs up to a chunk that arrived before the chunks ahead of it did",
    file: "runtime/format/read-data.ts",
    find: "while (inOrder < chunks && arrived[inOrder] === 1) {",
    replace: "while (inOrder <= k) {",
    tests: [READ_DATA],
  },
  {
    name: "section read: a failure rejects while other reads still write into the target",
    file: "runtime/format/read-data.ts",
    find: "    lane().catch((error) => {\n      failure ??= error;\n    })",
    replace: "    lane()",
    tests: [READ_DATA],
  },
  {
    name: "section read: a short read is taken for the whole chunk",
    file: "runtime/format/read-data.ts",
    find: "        at += n;",
    replace: "        at = to;",
    tests: [READ_DATA],
  },
  {
    name: "Deno file source: concurrent reads share one handle (seek and read race)",
    file: "runtime/format/file.ts",
    find: "      let handle = idle.pop();",
    replace: "      let handle: DenoFile | undefined = first;",
    tests: [LOAD_PATH],
    filter: "Deno",
  },
  {
    name: "Deno file source: Deno falls back to node:fs handles (one read at a time)",
    file: "runtime/format/file.ts",
    find: '  if (typeof deno?.open === "function") return',
    replace: "  if (false) return",
    tests: [LOAD_PATH],
    filter: "Deno",
  },
  {
    name: "loader: matrices placed at their file offset instead of offset - dataOffset",
    file: "runtime/engine/packed-model.ts",
    find: "rows, cols, base + at), name: record.name });",
    replace: "rows, cols, base + record.offset), name: record.name });",
    tests: [LOAD_PATH, "test/loader-checksums.test.ts"],
  },
  {
    name: "loader: memory grown for the weights only (the cache grows it again later)",
    file: "runtime/engine/packed-model.ts",
    find: "kernels.arena.reserve(TENSOR_ALIGN + sectionBytes + reserveBytes);",
    replace: "kernels.arena.reserve(TENSOR_ALIGN + sectionBytes);",
    tests: [LOAD_PATH],
  },
  {
    name: "loader: a refused file keeps its arena region",
    file: "runtime/engine/packed-model.ts",
    find: "    kernels.arena.release(mark);\n",
    replace: "",
    tests: [LOAD_PATH],
  },
];
