/**
 * Loading a model for `generate`, `chat` and `serve`: checks the path (the error shows the
 * absolute path tried), says up front when a source checkpoint will run on the slow fp32
 * reference engine, draws a progress bar while a packed file is read and its checksums
 * verified (on a terminal), then prints one `ready` line (model, engine, threads, KV mode and
 * its bytes per token, context, load time) and the warnings that matter: a context beyond the
 * trained length, a poor stored quality report, the ChatML fallback.
 */
import { InvalidArgumentError } from "../errors.ts";
import { kvCacheSize } from "../engine/kv-cache/auto.ts";
import { isGgufFile, isPackedFile, loadEngine, type LoadEngineOptions } from "../engine/load-engine.ts";
import type { LoadProgress } from "../engine/packed-model.ts";
import type { Engine } from "../engine/types.ts";
import type { KvMode } from "../engine/kv-cache/types.ts";
import { openCheckpoint } from "../format/file.ts";
import { pathProblem } from "../format/path-problem.ts";
import { qualityWarning } from "./quality-warning.ts";

export interface CliLog {
  /** One line on stderr (no newline needed). */
  line(text: string): void;
  /** Text on stderr as it is (for redrawn progress bars). */
  raw(text: string): void;
  readonly isTTY: boolean;
}

export function formatSize(bytes: number): string {
  if (bytes >= 1 << 30) return `${(bytes / (1 << 30)).toFixed(2)} GiB`;
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

/** The model's kind, from its first bytes: what engine it will run on. */
export function modelKind(path: string): "packed" | "gguf" | "source" {
  if (isPackedFile(path)) return "packed";
  return isGgufFile(path) ? "gguf" : "source";
}

/** Throws (exit 1) when the model path cannot be used, naming the absolute path tried. */
export function checkModelPath(path: string): void {
  const problem = pathProblem(path);
  if (problem !== undefined) throw new InvalidArgumentError("model", `model ${path} ${problem}`);
}

/** A redrawn bar on a terminal; nothing otherwise (logs stay clean). */
function progressBar(log: CliLog, name: string): { update(p: LoadProgress): void; end(): void } {
  let shown = false;
  let lastPercent = -1;
  return {
    update(p) {
      if (!log.isTTY || p.bytesTotal === 0) return;
      const percent = Math.floor((100 * p.bytesDone) / p.bytesTotal);
      if (percent === lastPercent) return;
      lastPercent = percent;
      const bar = "#".repeat(Math.round(percent / 100 * 30)).padEnd(30, ".");
      log.raw(`\rloading ${name} [${bar}] ${String(percent).padStart(3)}% ${formatSize(p.bytesDone)} / ${formatSize(p.bytesTotal)} (reading, verifying checksums)\x1b[K`);
      shown = true;
    },
    end() {
      if (shown) log.raw("\r\x1b[K");
    },
  };
}

/** The KV mode the engine chose and what one cached position costs, from its backend name. */
export function cacheDescription(engine: Engine): string {
  const mode = /kv ([a-z0-9-]+)/.exec(engine.backendName)?.[1] ?? (engine.backendName.includes("reference") ? "f32" : undefined);
  if (mode === undefined) return "kv ?";
  const args = engine.args;
  const shape = { numLayers: args.numLayers, numHeads: args.numHeads, numKvHeads: args.numKvHeads, headDim: args.headDim, contextLength: engine.contextLength };
  try {
    const size = kvCacheSize(mode as KvMode, shape, args.hiddenSize);
    return `kv ${mode} (${formatSize(size.bytesPerToken)}/token)`;
  } catch {
    return `kv ${mode}`;
  }
}

export interface CliLoadOptions extends Omit<LoadEngineOptions, "onProgress" | "onNote"> {
  /** Whether the command renders chats (announce the ChatML fallback). */
  readonly chat: boolean;
}

/**
 * Loads the model with progress and warnings; `onStart` runs once the path is checked and the
 * engine kind known (serve binds its port there), before the weights are read.
 */
export async function loadModelForCli(path: string, options: CliLoadOptions, log: CliLog): Promise<{ engine: Engine; loadMs: number }> {
  checkModelPath(path);
  const kind = modelKind(path);
  const started = performance.now();
  let header: { report: Record<string, unknown> } | undefined;
  if (kind === "packed") {
    const file = await openCheckpoint(path);
    header = file.header;
    await file.close();
  } else if (kind === "source") {
    log.line(
      `${path} is a source checkpoint: it runs on the fp32 reference engine (correct, not fast; --threads and --kv do not apply). ` +
        `For the WASM engine, quantise it once: crumb quantize ${path} -o model.q4 --bits 4`,
    );
  }
  const name = path.split("/").filter((p) => p !== "").at(-1) ?? path;
  const bar = progressBar(log, name);
  let engine: Engine;
  try {
    engine = await loadEngine(path, { ...options, packGguf: async (source, o) => (await import("../../quantizer/gguf-load.ts")).packGgufInMemory(source, o), onProgress: (p) => bar.update(p), onNote: (note) => log.line(note) });
  } finally {
    bar.end();
  }
  const loadMs = performance.now() - started;
  const trained = engine.args.maxPositions;
  log.line(
    `ready: ${engine.modelId} (${engine.args.modelType}), ${engine.backendName.replace(/, kv [a-z0-9-]+/, "")}, ` +
      `${cacheDescription(engine)}, context ${engine.contextLength}, loaded in ${Math.round(loadMs)} ms`,
  );
  if (engine.contextLength > trained) {
    log.line(
      `warning: context ${engine.contextLength} exceeds the ${trained} positions ${engine.modelId} was trained for; ` +
        `output past ${trained} tokens degrades (use -c ${trained} or less)`,
    );
  }
  const poor = header === undefined ? undefined : qualityWarning(header.report);
  if (poor !== undefined) log.line(`warning: ${poor}`);
  if (options.chat && engine.chatTemplateFallback === "chatml") {
    log.line(`note: ${engine.modelId} ships no chat template: chats use ChatML (pass --chat-template <file.jinja> for the model's own format)`);
  }
  return { engine, loadMs };
}
