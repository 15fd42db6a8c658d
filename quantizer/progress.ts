/**
 * Quantizer progress output: one plain line per tensor when the stream is not a terminal
 * (name, shape, encoding, size before → after, like llama-quantize), a redrawn bar with the
 * current tensor and an ETA on a terminal.
 */
import type { TensorProgress } from "./quantize.ts";

export interface ProgressStream {
  write(text: string): void;
  readonly isTTY?: boolean;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1 << 30) return `${(bytes / (1 << 30)).toFixed(2)} GiB`;
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(2)} MiB`;
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

function formatSeconds(s: number): string {
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.round(s % 60)).padStart(2, "0")}`;
}

/** One line per tensor, without a trailing newline. */
export function tensorLine(e: TensorProgress): string {
  const width = String(e.total).length;
  const shape = e.shape.join("x");
  const note = e.note === undefined ? "" : `  (${e.note})`;
  return `[${String(e.index).padStart(width)}/${e.total}] ${e.name.padEnd(44)} ${shape.padEnd(12)} ${e.encoding.padEnd(9)} ${e.method.padEnd(7)} ` +
    `${formatBytes(e.bytesBefore).padStart(10)} -> ${formatBytes(e.bytesAfter).padStart(10)}${note}`;
}

/** A progress callback for quantizeModel writing to `stream`. */
export function createProgress(stream: ProgressStream, now: () => number = () => performance.now()): (e: TensorProgress) => void {
  const start = now();
  let barShown = false;
  return (e) => {
    if (e.phase !== "tensor") {
      if (barShown) stream.write("\n");
      barShown = false;
      stream.write(e.phase === "calibrate" ? `calibrating (${e.method}) on ${e.name}\n` : `measuring quality on ${e.name}\n`);
      return;
    }
    if (!stream.isTTY) {
      stream.write(tensorLine(e) + "\n");
      return;
    }
    const done = e.index / e.total;
    const elapsed = (now() - start) / 1000;
    const eta = done > 0 ? (elapsed / done) * (1 - done) : 0;
    const bar = "#".repeat(Math.round(30 * done)).padEnd(30, ".");
    const name = e.name.length > 40 ? `...${e.name.slice(-37)}` : e.name;
    stream.write(`\r[${bar}] ${e.index}/${e.total} ${(100 * done).toFixed(0).padStart(3)}% ETA ${formatSeconds(eta)}  ${name.padEnd(40)} ${e.encoding}\x1b[K`);
    barShown = true;
    if (e.index === e.total) {
      stream.write("\n");
      barShown = false;
    }
  };
}
