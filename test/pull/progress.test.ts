/**
 * Progress rendering for `pull`: byte and duration formatting, the plain one-line-per-file
 * output used off a terminal, and the redrawn bars (rate and ETA from an injected clock).
 */
import { describe, expect, test } from "bun:test";
import {
  createBarProgress,
  createLineProgress,
  createProgress,
  formatBytes,
  formatDuration,
  renderBar,
} from "../../quantizer/pull/progress.ts";

const PLAN = {
  repo: "acme/tiny",
  revision: "main",
  commit: "0123456789abcdef0123456789abcdef01234567",
  files: [{ path: "config.json", size: 1000 }, { path: "model.safetensors", size: 3000 }],
};

describe("formatting", () => {
  test("bytes, durations and bars", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(3 * 1024 ** 3)).toBe("3.0 GiB");
    expect(formatDuration(75)).toBe("1:15");
    expect(formatDuration(3661)).toBe("1:01:01");
    expect(formatDuration(Number.NaN)).toBe("--:--");
    expect(renderBar(0.5, 10)).toBe("[#####-----]");
    expect(renderBar(2, 4)).toBe("[####]");
  });
});

describe("line progress", () => {
  test("prints the plan, one line per file and each retry", () => {
    const lines: string[] = [];
    const progress = createLineProgress((text) => void lines.push(text));
    progress.begin(PLAN);
    progress.fileStart("config.json", 1000);
    progress.fileProgress("config.json", 500, 1000);
    progress.fileEnd("config.json", { status: "cached", size: 1000, resumedFrom: 1000 });
    progress.fileStart("model.safetensors", 3000);
    progress.retry("model.safetensors", 1, 5, "connection closed");
    progress.fileEnd("model.safetensors", { status: "downloaded", size: 3000, resumedFrom: 2048 });
    progress.end();
    expect(lines).toEqual([
      "pulling acme/tiny at main (commit 0123456789ab): 2 files, 3.9 KiB\n",
      "[1/2] config.json 1000 B already in cache\n",
      "model.safetensors: retry 1/5: connection closed\n",
      "[2/2] model.safetensors 2.9 KiB downloaded (resumed from 2.0 KiB)\n",
    ]);
  });

  test("createProgress picks lines off a terminal and bars on one", () => {
    const plain: string[] = [];
    createProgress({ isTTY: false, write: (text: string) => plain.push(text) }).fileEnd("a", {
      status: "downloaded",
      size: 1,
      resumedFrom: 0,
    });
    expect(plain[0]).toContain("a 1 B downloaded");
    const tty: string[] = [];
    const bars = createProgress({ isTTY: true, columns: 100, write: (text: string) => tty.push(text) });
    bars.begin(PLAN);
    bars.fileStart("config.json", 1000);
    expect(tty.join("")).toMatch(/config.json +\[-{10,30}\] {3}0% 0 B\/1000 B/);
  });
});

describe("bar progress", () => {
  test("shows per-file and overall bytes, rate and ETA, redrawing in place", () => {
    let clock = 0;
    const out: string[] = [];
    const progress = createBarProgress((text) => void out.push(text), { now: () => clock, columns: 100 });
    progress.begin(PLAN);
    progress.fileStart("config.json", 1000);
    progress.fileProgress("config.json", 0, 1000); // download.ts reports the resume point first
    clock = 2000;
    progress.fileProgress("config.json", 500, 1000);
    const frame = out[out.length - 1]!;
    const [file, overall] = frame.split("\n");
    expect(out.join("")).toContain("\x1b[2F\x1b[J");
    expect(file).toContain("config.json");
    expect(file).toContain(" 50% 500 B/1000 B 250 B/s ETA 0:02");
    expect(overall).toContain("overall (1/2)");
    expect(overall).toContain(" 12% 500 B/3.9 KiB 250 B/s ETA 0:14");
    expect(file!.length).toBe(99); // one column short, so a full line never wraps
  });

  test("redraws at most once per interval and prints finished files above the bars", () => {
    let clock = 0;
    const out: string[] = [];
    const progress = createBarProgress((text) => void out.push(text), { now: () => clock, intervalMs: 100 });
    progress.begin(PLAN);
    progress.fileStart("config.json", 1000);
    const drawn = out.length;
    for (let i = 1; i <= 10; i++) progress.fileProgress("config.json", i * 10, 1000);
    expect(out.length).toBe(drawn);
    clock = 150;
    progress.fileProgress("config.json", 200, 1000);
    expect(out.length).toBeGreaterThan(drawn);
    progress.fileEnd("config.json", { status: "downloaded", size: 1000, resumedFrom: 0 });
    expect(out[out.length - 1]).toBe("[1/2] config.json 1000 B downloaded\n");
  });
});
