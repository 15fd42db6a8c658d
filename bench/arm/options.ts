/**
 * The command line of `bun run bench:arm` (bench/arm.ts): its flags, their defaults and checks.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ENCODING_NAMES, type EncodingName, SHAPES } from "../config.ts";
import { defaultCacheDir } from "../models.ts";
import { DEFAULT_CPU } from "./qemu.ts";

const RESULTS = fileURLToPath(new URL("../results/", import.meta.url));
const DEFAULT_PROMPT = "Once upon a time, there was a little robot who lived in a small town by the sea.";

export const USAGE = `usage: bun bench/arm.ts [--shapes 1.1B] [--encodings q2,ternary,q4] [--tokens 8,24] [--ctx 64] [--kv f16]
  [--llamacpp PATH (aarch64 llama-completion; or env CRUMB_LLAMACPP_ARM64)] [--no-llamacpp]
  [--method marks|runs] [--repeat N (identical runs, to check they agree)] [--jobs N (qemu runs at a time)]
  [--kernels] [--kernel-calls 32] [--no-decode]
  [--cpu cortex-a76] [--prompt TEXT] [--seed 0] [--cache DIR] [--out DIR] [--merge] [--json]`;

export class UsageError extends Error {}

export interface ArmOptions {
  shapes: string[];
  encodings: EncodingName[];
  tokens: [number, number];
  ctx: number;
  kv: string;
  llamacpp: string | undefined;
  method: "marks" | "runs";
  repeat: number;
  jobs: number;
  kernels: boolean;
  kernelCalls: number;
  decode: boolean;
  cpu: string;
  prompt: string;
  seed: number;
  cacheDir: string;
  out: string;
  merge: boolean;
  json: boolean;
}

export function parseArgs(argv: readonly string[]): ArmOptions {
  const o: ArmOptions = {
    shapes: ["1.1B"],
    encodings: ["q2", "ternary", "q4"],
    tokens: [8, 24],
    ctx: 64,
    kv: "f16",
    llamacpp: process.env.CRUMB_LLAMACPP_ARM64 || undefined,
    method: "marks",
    repeat: 1,
    jobs: 1,
    kernels: false,
    kernelCalls: 32,
    decode: true,
    cpu: DEFAULT_CPU,
    prompt: DEFAULT_PROMPT,
    seed: 0,
    cacheDir: defaultCacheDir(),
    out: RESULTS,
    merge: false,
    json: false,
  };
  const value = (flag: string, v: string | undefined): string => {
    if (v === undefined || v.startsWith("--")) throw new UsageError(`${flag} needs a value`);
    return v;
  };
  const list = (flag: string, v: string | undefined) => value(flag, v).split(",").map((s) => s.trim()).filter((s) => s !== "");
  const int = (flag: string, v: string | undefined, min: number) => {
    const n = Number(value(flag, v));
    if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag} must be an integer >= ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => argv[++i];
    switch (arg) {
      case "--shapes": {
        o.shapes = list(arg, next());
        const bad = o.shapes.find((s) => SHAPES[s] === undefined);
        if (bad !== undefined) throw new UsageError(`unknown shape "${bad}"; choose from ${Object.keys(SHAPES).join(", ")}`);
        break;
      }
      case "--encodings": {
        const e = list(arg, next());
        const bad = e.find((x) => !(ENCODING_NAMES as readonly string[]).includes(x));
        if (bad !== undefined) throw new UsageError(`unknown encoding "${bad}"; choose from ${ENCODING_NAMES.join(", ")}`);
        o.encodings = e as EncodingName[];
        break;
      }
      case "--tokens": {
        const t = list(arg, next()).map(Number);
        if (t.length !== 2 || !t.every(Number.isInteger) || !(t[0] >= 1 && t[1] > t[0])) {
          throw new UsageError("--tokens takes N1,N2 with 1 <= N1 < N2");
        }
        o.tokens = [t[0], t[1]];
        break;
      }
      case "--ctx":
        o.ctx = int(arg, next(), 8);
        break;
      case "--kv":
        o.kv = value(arg, next());
        break;
      case "--llamacpp":
        o.llamacpp = value(arg, next());
        break;
      case "--no-llamacpp":
        o.llamacpp = undefined;
        break;
      case "--method": {
        const m = value(arg, next());
        if (m !== "marks" && m !== "runs") throw new UsageError("--method is marks or runs");
        o.method = m;
        break;
      }
      case "--repeat":
        o.repeat = int(arg, next(), 1);
        break;
      case "--jobs":
        o.jobs = int(arg, next(), 1);
        break;
      case "--kernels":
        o.kernels = true;
        break;
      case "--kernel-calls":
        o.kernelCalls = int(arg, next(), 1);
        break;
      case "--no-decode":
        o.decode = false;
        break;
      case "--cpu":
        o.cpu = value(arg, next());
        break;
      case "--prompt":
        o.prompt = value(arg, next());
        break;
      case "--seed":
        o.seed = int(arg, next(), 0);
        break;
      case "--cache":
        o.cacheDir = value(arg, next());
        break;
      case "--out":
        o.out = value(arg, next());
        break;
      case "--merge":
        o.merge = true;
        break;
      case "--json":
        o.json = true;
        break;
      case "--help":
      case "-h":
        console.error(USAGE);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown argument "${arg}"`);
    }
  }
  if (o.llamacpp !== undefined && !existsSync(o.llamacpp)) throw new UsageError(`llama.cpp binary ${o.llamacpp} does not exist`);
  return o;
}
