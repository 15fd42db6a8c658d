/**
 * Breaks that leave every output unchanged and are caught only by counting the work done
 * (issue 12): prefix reuse, session restore, checksums on every loader, the queue bound and
 * the abort over HTTP. Each was applied by hand and its tests seen to fail before it was
 * recorded here.
 */
import type { Mutation } from "./types.ts";

export const mutations: Mutation[] = [
  {
    name: "KV prefix reuse between requests: reuse limit forced to 0",
    file: "runtime/engine/generate.ts",
    find: "const limit = Math.min(cached.tokens.length, promptIds.length - 1);",
    replace: "const limit = 0;",
    tests: ["test/engine-work.test.ts", "test/server/live-server.test.ts"],
    filter: "prefix",
  },
  {
    name: "session restore: the restored cache is truncated and re-prefilled",
    file: "runtime/engine/engine.ts",
    find: "cached.tokens = restoreSession(path, sessionKey, cache);\n        return cached.tokens.length;",
    replace: "const restored = restoreSession(path, sessionKey, cache);\n        cache.truncate(0);\n        return restored.length;",
    tests: ["test/engine-work.test.ts"],
    filter: "session restore",
  },
  {
    name: "checksums: loadPackedModel's section read never compares a tensor's checksum",
    file: "runtime/format/read-data.ts",
    find: "if (computed !== record.checksum) throw checksumMismatch(record, computed, file);",
    replace: "void computed;",
    tests: ["test/loader-checksums.test.ts"],
  },
  {
    name: "checksums: loadPackedModel hashes only the first chunk of each tensor",
    file: "runtime/format/read-data.ts",
    find: "if (stop > from) hash.update(",
    replace: "if (stop > from && from === record.offset) hash.update(",
    tests: ["runtime/format/read-data.test.ts"],
  },
  {
    name: "checksums: runtime/import/crumb.ts reads tensors without verifyTensor",
    file: "runtime/import/crumb.ts",
    find: "verifyTensor(record, bytes, { file: path });",
    replace: "",
    tests: ["test/loader-checksums.test.ts"],
  },
  {
    name: "queue bound over HTTP: unbounded queue",
    file: "runtime/server/queue.ts",
    find: "if (line.length >= depth) {",
    replace: "if (line.length >= Infinity) {",
    tests: ["test/server/live-server.test.ts"],
    filter: "32 concurrent",
  },
  {
    name: "abort over HTTP: the client's disconnect reaches the generation 150 ms late",
    file: "runtime/server/routes/generation.ts",
    find: "const onAbort = () => abort.abort();",
    replace: "const onAbort = () => void setTimeout(() => abort.abort(), 150);",
    tests: ["test/server/live-server.test.ts"],
    filter: "disconnects",
  },
  {
    name: "abort in the engine: the generation loop ignores its AbortSignal",
    file: "runtime/engine/generate.ts",
    find: "if (options.signal?.aborted) {",
    replace: "if (false) {",
    tests: ["test/engine-work.test.ts"],
    filter: "abort, counted",
  },
];
