/**
 * Run by test/load-path.test.ts under Deno: `deno run -A test/load-smoke.ts <good> <damaged>`.
 * Prints, as one JSON line: the file API a FileSource uses here, the XXH32 of the data section
 * read with many small reads in flight (several Deno.FsFile handles at once), each matrix's
 * XXH32 as loadPackedModel left it in WASM memory, and the tensor named when <damaged> is
 * refused (null when it loads).
 */
import { loadPackedModel } from "../runtime/engine/packed-model.ts";
import { FormatError } from "../runtime/errors.ts";
import { xxhash32 } from "../runtime/format/checksum.ts";
import { openCheckpoint, openFileSource } from "../runtime/format/file.ts";
import { dataSectionBytes } from "../runtime/format/read-data.ts";

const [good, damaged] = (globalThis as unknown as { Deno: { args: string[] } }).Deno.args;
const source = await openFileSource(good);
const api = source.api;
await source.close();

const checkpoint = await openCheckpoint(good);
const section = new Uint8Array(dataSectionBytes(checkpoint));
await checkpoint.readData(section, { chunkSize: 4096, concurrency: 4 });
await checkpoint.close();

const model = await loadPackedModel(good);
const memory = new Uint8Array(model.kernels.memory.buffer);
const matrices: Record<string, string> = {};
for (const [name, m] of model.matrices) matrices[name] = xxhash32(memory.subarray(m.ptr, m.ptr + m.layout.byteLength)).toString(16);
let refused: string | null = null;
try {
  await loadPackedModel(damaged);
} catch (error) {
  if (!(error instanceof FormatError)) throw error;
  refused = error.tensor ?? "(no tensor named)";
}
console.log(JSON.stringify({ api, section: xxhash32(section).toString(16), matrices, refused }));
