/**
 * The machinery of `bun run bench:arm`: finds qemu-aarch64 and the arm64 sysroot, fetches Bun
 * for linux-aarch64 (as test/arm64/run.sh does, into .crumb-cache/), builds the insn-count
 * plugin (bench/arm/insn-count.c) with gcc, runs a program under
 * `qemu-aarch64 -cpu <cpu> -plugin insn-count.so` and parses the plugin's counts.
 * Also the marker convention shared with the plugin: close(MARK_BASE + n) records vCPU counts.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../../", import.meta.url));
const PLUGIN_SOURCE = fileURLToPath(new URL("./insn-count.c", import.meta.url));
export const SYSROOT = "/usr/aarch64-linux-gnu";
/** The CPU qemu models: a Raspberry Pi 5's core (ARMv8.2-A with dot product, fp16, no i8mm/SVE). */
export const DEFAULT_CPU = "cortex-a76";

/**
 * Environment of every crumb run, for counts that do not depend on timing: JIT compilation
 * and garbage collection on the main thread (counted there), and no Bun GC timer (under
 * emulation a wall-clock timer fires every few tokens, where natively it would every hundred).
 */
export const CRUMB_ENV = { BUN_JSC_useConcurrentJIT: "0", BUN_JSC_useConcurrentGC: "0", BUN_GC_TIMER_DISABLE: "1" };

/** First marker descriptor; must match MARK_BASE in insn-count.c. */
export const MARK_BASE = 0x63730000;
export const MARK_SPAN = 65536;

/** A command on PATH, or undefined. */
export function which(command: string): string | undefined {
  const r = spawnSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" });
  const path = r.stdout.trim();
  return r.status === 0 && path !== "" ? path : undefined;
}

/** What is missing to run the benchmark on this machine (empty when nothing is). */
export function missingTools(): string[] {
  const missing: string[] = [];
  if (which("qemu-aarch64") === undefined) missing.push("qemu-aarch64 (apt-get install qemu-user)");
  if (which("gcc") === undefined) missing.push("gcc (builds the counting plugin)");
  if (!existsSync(join(SYSROOT, "lib/ld-linux-aarch64.so.1"))) missing.push(`${SYSROOT} (apt-get install libc6-arm64-cross)`);
  return missing;
}

export function qemuVersion(): string {
  return spawnSync("qemu-aarch64", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0].trim();
}

/**
 * Builds the plugin into `dir` once per source text (the file name carries its hash) and
 * returns the .so path.
 */
export function buildPlugin(dir = join(REPO, ".crumb-cache/arm64")): string {
  const source = readFileSync(PLUGIN_SOURCE);
  const hash = createHash("sha256").update(source).digest("hex").slice(0, 12);
  const so = join(dir, `insn-count-${hash}.so`);
  if (existsSync(so)) return so;
  mkdirSync(dir, { recursive: true });
  const partial = `${so}.${process.pid}.tmp`;
  const r = spawnSync("gcc", ["-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o", partial, PLUGIN_SOURCE], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`building ${PLUGIN_SOURCE} failed: ${r.stderr || r.error?.message}`);
  renameSync(partial, so);
  return so;
}

/** Bun for linux-aarch64 at the project's Bun version, fetched with `npm pack` on first use. */
export function arm64Bun(): string {
  const version = process.versions.bun ?? spawnSync("npx", ["--no-install", "bun", "--version"], { encoding: "utf8" }).stdout.trim();
  const dir = join(REPO, ".crumb-cache/arm64", `bun-${version}`);
  const bun = join(dir, "package/bin/bun");
  if (existsSync(bun)) return bun;
  mkdirSync(dir, { recursive: true });
  console.error(`fetching @oven/bun-linux-aarch64@${version}`);
  const pack = spawnSync("npm", ["pack", "--silent", `@oven/bun-linux-aarch64@${version}`], { cwd: dir, encoding: "utf8" });
  const tarball = pack.stdout.trim().split("\n").at(-1);
  if (pack.status !== 0 || tarball === undefined || tarball === "") {
    throw new Error(`npm pack @oven/bun-linux-aarch64@${version} failed: ${pack.stderr}`);
  }
  const untar = spawnSync("tar", ["-xzf", join(dir, tarball), "-C", dir], { encoding: "utf8" });
  rmSync(join(dir, tarball), { force: true });
  if (untar.status !== 0) throw new Error(`unpacking ${tarball} failed: ${untar.stderr}`);
  chmodSync(bun, 0o755);
  return bun;
}

/** One vCPU's (guest thread's) executed instructions, and how many of them were SDOT. */
export interface VcpuCount {
  readonly insns: number;
  readonly sdot: number;
}

/** A marker: the calling vCPU's counts so far, and all vCPUs' instructions at that moment. */
export interface Mark {
  readonly mark: number;
  readonly vcpu: number;
  readonly insns: number;
  readonly sdot: number;
  readonly allInsns: number;
}

/** The plugin's report: counts per vCPU (index 0 = main thread) and the markers in order. */
export interface Counts {
  readonly vcpus: ReadonlyMap<number, VcpuCount>;
  readonly marks: readonly Mark[];
}

export function parseCounts(text: string): Counts {
  const vcpus = new Map<number, VcpuCount>();
  const marks: Mark[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[0] === "vcpu") vcpus.set(Number(f[1]), { insns: Number(f[2]), sdot: Number(f[3]) });
    else if (f[0] === "mark") {
      marks.push({ mark: Number(f[1]), vcpu: Number(f[2]), insns: Number(f[3]), sdot: Number(f[4]), allInsns: Number(f[5]) });
    } else if (f[0] === "dropped-marks") throw new Error(`the plugin dropped ${f[1]} markers (too many)`);
  }
  if (vcpus.size === 0) throw new Error("the plugin reported no instructions");
  return { vcpus, marks };
}

/** Instructions and SDOTs summed over every vCPU. */
export function totalCount(c: Counts): VcpuCount {
  let insns = 0;
  let sdot = 0;
  for (const v of c.vcpus.values()) {
    insns += v.insns;
    sdot += v.sdot;
  }
  return { insns, sdot };
}

export interface QemuRun {
  readonly counts: Counts;
  readonly stdout: string;
  readonly stderr: string;
  readonly seconds: number;
}

export interface QemuOptions {
  readonly plugin: string;
  readonly cpu?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** Scratch directory for the count file. */
  readonly scratch: string;
  readonly timeoutMs?: number;
}

let runNumber = 0;

/** Runs an aarch64 program under qemu-user with the counting plugin; rejects on a non-zero exit. */
export function runCounted(program: string, args: readonly string[], o: QemuOptions): Promise<QemuRun> {
  mkdirSync(o.scratch, { recursive: true });
  const out = join(o.scratch, `counts-${process.pid}-${runNumber++}.txt`);
  rmSync(out, { force: true });
  const qemuArgs = ["-L", SYSROOT, "-cpu", o.cpu ?? DEFAULT_CPU, "-plugin", `${o.plugin},out=${out}`, program, ...args];
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn("qemu-aarch64", qemuArgs, { cwd: o.cwd, env: { ...process.env, ...o.env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = o.timeoutMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), o.timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const seconds = (performance.now() - started) / 1000;
      if (code !== 0 || !existsSync(out)) {
        const tail = stderr.trim().split("\n").slice(-8).join("\n  ");
        reject(new Error(`qemu-aarch64 ${[program, ...args].join(" ")} exited with ${code ?? signal}:\n  ${tail}`));
        return;
      }
      try {
        const counts = parseCounts(readFileSync(out, "utf8"));
        rmSync(out, { force: true });
        resolve({ counts, stdout, stderr, seconds });
      } catch (error) {
        reject(error);
      }
    });
  });
}
