/**
 * Progress of a pull on stderr. On a terminal: two redrawn bars, the current file and the
 * whole pull (bytes, rate over the last few seconds, ETA), with each finished file printed
 * above them. Elsewhere (logs, CI, pipes): one plain line per file and per retry.
 * The clock is injected so rendering is deterministic under test.
 */
import type { DownloadOutcome } from "./download.ts";

export interface PlannedFile {
  path: string;
  size?: number;
}

export interface PullProgress {
  begin(plan: { repo: string; revision: string; commit: string; files: readonly PlannedFile[] }): void;
  fileStart(path: string, size: number | undefined): void;
  fileProgress(path: string, done: number, size: number | undefined): void;
  fileEnd(path: string, outcome: DownloadOutcome): void;
  retry(path: string, attempt: number, retries: number, reason: string): void;
  /** A line the user should read: which file a quant tag chose, a tokenizer added or missing. */
  note(text: string): void;
  end(): void;
}

export const silentProgress: PullProgress = {
  begin() {},
  fileStart() {},
  fileProgress() {},
  fileEnd() {},
  retry() {},
  note() {},
  end() {},
};

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
const TAIL_WIDTH = 44;

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--";
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

export function renderBar(fraction: number, width: number): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
}

function outcomeText(outcome: DownloadOutcome): string {
  if (outcome.status === "cached") return "already in cache";
  return outcome.resumedFrom > 0 ? `downloaded (resumed from ${formatBytes(outcome.resumedFrom)})` : "downloaded";
}

function planText(plan: { repo: string; revision: string; commit: string; files: readonly PlannedFile[] }): string {
  const known = plan.files.reduce((sum, file) => sum + (file.size ?? 0), 0);
  return `pulling ${plan.repo} at ${plan.revision} (commit ${plan.commit.slice(0, 12)}): ${plan.files.length} files, ${
    formatBytes(known)
  }\n`;
}

/** One line per finished file, for logs and pipes. */
export function createLineProgress(write: (text: string) => void): PullProgress {
  let count = 0;
  let index = 0;
  return {
    begin(plan) {
      count = plan.files.length;
      write(planText(plan));
    },
    fileStart() {
      index++;
    },
    fileProgress() {},
    fileEnd(path, outcome) {
      write(`[${index}/${count}] ${path} ${formatBytes(outcome.size)} ${outcomeText(outcome)}\n`);
    },
    retry(path, attempt, retries, reason) {
      write(`${path}: retry ${attempt}/${retries}: ${reason}\n`);
    },
    note(text) {
      write(`${text}\n`);
    },
    end() {},
  };
}

export interface BarOptions {
  /** Milliseconds; defaults to performance.now. */
  now?: () => number;
  columns?: number;
  /** Minimum time between redraws. */
  intervalMs?: number;
}

/** Redrawn bars for a terminal. */
export function createBarProgress(write: (text: string) => void, options: BarOptions = {}): PullProgress {
  const now = options.now ?? (() => performance.now());
  const columns = Math.max(60, options.columns || 80);
  const interval = options.intervalMs ?? 100;
  const samples: { t: number; bytes: number }[] = [];
  let total = 0;
  let count = 0;
  let index = 0;
  let finished = 0; // bytes of files already done, cached ones included
  let fetched = 0; // bytes received over the network for finished files (the rate counts only these)
  let current = { path: "", done: 0, size: undefined as number | undefined, base: undefined as number | undefined };
  const received = () => fetched + current.done - (current.base ?? current.done);
  let drawn = false;
  let lastDraw = -Infinity;

  // Fixed columns so both bars line up: name, bar (10 to 30 wide), then the figures. The
  // line stays one column short of the width, since a full line wraps on some terminals.
  const barWidth = Math.min(30, Math.max(10, columns - 4 - TAIL_WIDTH - 28));
  const room = Math.max(12, columns - 4 - barWidth - TAIL_WIDTH);
  const rate = (): number => {
    const first = samples[0];
    const last = samples[samples.length - 1];
    if (first === undefined || last === undefined || last.t - first.t < 200) return NaN;
    return ((last.bytes - first.bytes) * 1000) / (last.t - first.t);
  };
  const line = (label: string, done: number, size: number | undefined, bytesPerSecond: number) => {
    const stats = size === undefined
      ? `${formatBytes(done)}`
      : `${String(Math.floor((done / Math.max(size, 1)) * 100)).padStart(3)}% ${formatBytes(done)}/${formatBytes(size)}`;
    const speed = Number.isFinite(bytesPerSecond) ? `${formatBytes(bytesPerSecond)}/s` : "--/s";
    const eta = size === undefined || !(bytesPerSecond > 0) ? "--:--" : formatDuration((size - done) / bytesPerSecond);
    const tail = ` ${stats} ${speed} ETA ${eta}`.padEnd(TAIL_WIDTH);
    const bar = renderBar(size === undefined ? 0 : done / Math.max(size, 1), barWidth);
    const name = label.length > room ? `…${label.slice(label.length - room + 1)}` : label.padEnd(room);
    return `${name} ${bar}${tail}`.slice(0, columns - 1);
  };
  const clear = () => {
    if (drawn) write("\x1b[2F\x1b[J");
    drawn = false;
  };
  const draw = (force: boolean) => {
    const t = now();
    if (!force && t - lastDraw < interval) return;
    lastDraw = t;
    const overall = finished + current.done;
    samples.push({ t, bytes: received() });
    while (samples.length > 2 && t - samples[0]!.t > 5000) samples.shift();
    const r = rate();
    clear();
    write(`${line(current.path, current.done, current.size, r)}\n${line(`overall (${index}/${count})`, overall, total, r)}\n`);
    drawn = true;
  };
  return {
    begin(plan) {
      count = plan.files.length;
      total = plan.files.reduce((sum, file) => sum + (file.size ?? 0), 0);
      write(planText(plan));
    },
    fileStart(path, size) {
      index++;
      current = { path, done: 0, size, base: undefined };
      draw(true);
    },
    fileProgress(path, done, size) {
      current = { path, done, size, base: current.base ?? done };
      draw(false);
    },
    fileEnd(path, outcome) {
      clear();
      write(`[${index}/${count}] ${path} ${formatBytes(outcome.size)} ${outcomeText(outcome)}\n`);
      finished += outcome.size;
      fetched = received();
      current = { path: "", done: 0, size: 0, base: undefined };
    },
    retry(path, attempt, retries, reason) {
      clear();
      write(`${path}: retry ${attempt}/${retries}: ${reason}\n`);
      draw(true);
    },
    note(text) {
      clear();
      write(`${text}\n`);
    },
    end() {
      clear();
    },
  };
}

/** Bars when `stream` is a terminal, plain lines otherwise. */
export function createProgress(stream: { isTTY?: boolean; columns?: number; write(text: string): unknown }): PullProgress {
  const write = (text: string) => void stream.write(text);
  return stream.isTTY ? createBarProgress(write, { columns: stream.columns }) : createLineProgress(write);
}
