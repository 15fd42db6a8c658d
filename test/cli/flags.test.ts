// Every command's --help and --version, and the three kinds of usage error (an unknown flag,
// a bad value, a negative number) as one line and exit 2, under Bun and under Deno; the
// parser's aliases, GPU-flag warning and did-you-mean, in process.
import { describe, expect, test } from "bun:test";
import { parseCommand } from "../../runtime/cli/command-line.ts";
import { GENERATE_COMMAND } from "../../runtime/cli/generate.ts";
import { UsageError } from "../../runtime/errors.ts";
import { BUN, crumb, REPO, type Runtime } from "./helpers.ts";
import manifest from "../../package.json" with { type: "json" };

/**
 * Per command: a flag it takes with a bad value, a number given where it cannot be negative (pull
 * and export take no numbers: a flag left without its value instead), and a typo.
 */
const COMMANDS: Record<string, { bad: string[]; negative: string[]; typo: [string, string] }> = {
  chat: { bad: ["m.q4", "--kv", "q5"], negative: ["m.q4", "--threads", "-2"], typo: ["--sytem", "--system"] },
  run: { bad: ["m.q4", "--top-p", "1.5"], negative: ["m.q4", "-c", "-512"], typo: ["--chat-templat", "--chat-template"] },
  generate: { bad: ["m.q4", "--temp", "hot"], negative: ["m.q4", "--temp", "-1"], typo: ["--temperatur", "--temperature"] },
  serve: { bad: ["m.q4", "--port", "http"], negative: ["m.q4", "--port", "-1"], typo: ["--prot", "--port"] },
  quantize: { bad: ["src", "--bits", "5"], negative: ["src", "--eval-tokens", "-3"], typo: ["--metod", "--method"] },
  pull: { bad: ["org/repo", "--cache-dir", ""], negative: ["org/repo", "--revision", "-1", "--include"], typo: ["--revison", "--revision"] },
  export: { bad: ["m.q4", "--type", "Q5_K"], negative: ["m.q4", "-o", "x.gguf", "--name"], typo: ["--outptu-type", "--output-type"] },
  info: { bad: ["--json=yes", "m.q4"], negative: ["m.q4", "-1"], typo: ["--jsn", "--json"] },
  bench: { bad: ["--shapes", "7B"], negative: ["--threads", "-1"], typo: ["--quik", "--quick"] },
};

function expectOneLineUsageError(r: { code: number | null; stdout: string; stderr: string }, command: string, pattern: RegExp): void {
  expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 2, stdout: "" });
  expect(r.stderr).toMatch(new RegExp(`^crumb ${command === "run" ? "chat" : command}: `));
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr.endsWith("\n") && r.stderr.split("\n").length === 2).toBe(true);
  expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+/);
}

for (const runtime of ["bun", "deno"] as Runtime[]) {
  describe(`crumb under ${runtime}`, () => {
    test("crumb --version and crumb --help", async () => {
      const version = await crumb(["--version"], { runtime });
      expect(version).toMatchObject({ code: 0, stdout: `crumb ${manifest.version}\n` });
      const help = await crumb(["--help"], { runtime });
      expect(help.code).toBe(0);
      for (const name of Object.keys(COMMANDS)) expect(help.stdout).toContain(name);
      const unknown = await crumb(["genrate"], { runtime });
      expect(unknown).toMatchObject({ code: 2, stdout: "", stderr: 'crumb: unknown command "genrate" (did you mean generate?)\n' });
    }, 60_000);

    for (const [command, cases] of Object.entries(COMMANDS)) {
      test(`${command}: --help, --version, unknown flag, bad value, negative number`, async () => {
        const help = await crumb([command, "--help"], { runtime });
        expect(help.code).toBe(0);
        expect(help.stdout).toContain(`Usage: crumb ${command === "run" ? "chat" : command}`);
        expect(help.stdout).toContain("--version");
        if (command !== "info") expect(help.stdout).toMatch(/\(default: [^)]+\)/);
        const version = await crumb([command, "--version"], { runtime });
        expect(version).toMatchObject({ code: 0, stdout: `crumb ${manifest.version}\n` });

        const typo = await crumb([command, cases.typo[0], "x"], { runtime });
        expectOneLineUsageError(typo, command, new RegExp(`unknown option ${cases.typo[0]} \\(did you mean ${cases.typo[1]}\\?\\)`));
        const bad = await crumb([command, ...cases.bad], { runtime });
        expectOneLineUsageError(bad, command, /must be|takes|argument|needs|unknown option/);
        const negative = await crumb([command, ...cases.negative], { runtime });
        expectOneLineUsageError(negative, command, /must be|takes|too many arguments|give one file|argument missing/);
      }, 60_000);
    }
  });
}

test("the test fixture tool (npm run fixture) parses like the commands", () => {
  const fixture = (args: string[]) => Bun.spawnSync([BUN, `${REPO}test/fixtures/cli.ts`, ...args], { env: { ...process.env, NO_COLOR: "1" } });
  const help = fixture(["--help"]);
  expect(help.exitCode).toBe(0);
  expect(help.stdout.toString()).toContain("--seed <n>");
  const bad = fixture(["--arch", "gpt_neox", "-o", "/tmp/x"]);
  expect(bad.exitCode).toBe(2);
  expect(bad.stderr.toString()).toBe('crumb fixture: --arch must be one of llama, mistral, qwen2, qwen3, got "gpt_neox"\n');
});

describe("the parser", () => {
  const parse = (argv: string[]) => parseCommand(GENERATE_COMMAND, argv);

  test("llama.cpp spellings and crumb's earlier ones reach the same option", () => {
    const llama = parse(["-m", "/m.q4", "-c", "256", "-t", "2", "--temp", "0.5", "-n", "7", "-s", "3"]).options;
    const crumbOld = parse(["--model", "/m.q4", "--ctx", "256", "--threads", "2", "--temperature", "0.5", "--max-tokens", "7", "--seed", "3"]).options;
    for (const options of [llama, crumbOld]) {
      expect(options).toMatchObject({ model: "/m.q4", ctxSize: 256, threads: 2, temp: 0.5, nPredict: 7, seed: 3 });
    }
    expect(parse(["--ctx=128", "--temperature=0"]).options).toMatchObject({ ctxSize: 128, temp: 0 });
  });

  test("a value that looks like a flag stays a value; negative numbers reach the range check", () => {
    expect(parse(["-p", "--ctx", "m.q4"]).options.prompt).toBe("--ctx");
    expect(() => parse(["--temp", "-1"])).toThrow(new UsageError("--temp", '--temp must be a number from 0 to 100, got "-1"'));
    expect(parse(["-n", "-1"]).options.nPredict).toBe(-1);
    expect(() => parse(["-n", "-2"])).toThrow(/-n|--n-predict must be an integer from -1/);
  });

  test("llama.cpp's GPU flags are accepted, dropped and named in one warning", () => {
    const parsed = parse(["m.q4", "-ngl", "99", "--n-gpu-layers=20", "-nkvo", "-t", "1"]);
    expect(parsed.args).toEqual(["m.q4"]);
    expect(parsed.options.threads).toBe(1);
    expect(parsed.warnings).toEqual(["ignoring -ngl 99, --n-gpu-layers=20, -nkvo: crumb runs on the CPU (llama.cpp's GPU flags are accepted and have no effect)"]);
    expect(parse(["m.q4"]).warnings).toEqual([]);
  });

  test("-t is threads now; temperature is --temp", () => {
    expect(() => parse(["-t", "0.8"])).toThrow(/--threads must be an integer from 1 to 256, got "0.8"/);
  });
});
