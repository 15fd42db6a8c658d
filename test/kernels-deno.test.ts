/**
 * The integer kernels' parity with their TypeScript twins under Deno (V8's WebAssembly), with
 * the relaxed and the baseline binary: test/fixtures/kernel-parity.ts, which runtime/kernels/*.test.ts
 * cover in depth under Bun, run in a Deno process. The self-test run alters one expected value and
 * must be reported, so a script that compared nothing could not pass.
 */
import { expect, test } from "bun:test";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("./fixtures/kernel-parity.ts", import.meta.url));

interface Report {
  runtime: string;
  variant: string;
  flavors: string[];
  checked: number;
  mismatches: string[];
}

async function runUnderDeno(env: Record<string, string>): Promise<{ code: number; report: Report; stderr: string }> {
  const proc = Bun.spawn(["npx", "--no-install", "deno", "run", "-A", "--quiet", SCRIPT], {
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const line = stdout.trim().split("\n").at(-1) ?? "";
  if (!line.startsWith("{")) throw new Error(`kernel-parity under Deno printed no report (exit ${code}): ${stderr}`);
  return { code, report: JSON.parse(line) as Report, stderr };
}

for (const variant of ["relaxed-simd", "simd128"] as const) {
  test(
    `under Deno, the ${variant} binary: LUT tables, gemm/gemv in every flavour, q8, XXH32, row kernels, RMSNorm and attention match their twins`,
    async () => {
      const { code, report } = await runUnderDeno({ CRUMB_KERNELS: variant, CRUMB_PARITY_SELFTEST: "" });
      expect(report.mismatches).toEqual([]);
      expect(code).toBe(0);
      expect(report.runtime).toBe("deno");
      expect(report.variant).toBe(variant);
      // 43 LUT encodings: tables, then gemm and gemv per flavour; 2 q8 groups; 7 hash lengths;
      // add_rows, q8_row and RMSNorm at 3 lengths; f32 and f16 attention on 2 shapes.
      expect(report.flavors).toEqual(variant === "relaxed-simd" ? ["madd", "dot"] : ["madd"]);
      expect(report.checked).toBe(43 * (1 + 2 * report.flavors.length) + 2 + 7 + 9 + 4);
    },
    120_000,
  );
}

test("the Deno parity script reports an altered expectation (it is not vacuous)", async () => {
  const { code, report } = await runUnderDeno({ CRUMB_PARITY_SELFTEST: "1" });
  expect(code).toBe(1);
  expect(report.mismatches.length).toBeGreaterThan(0);
  expect(report.mismatches[0]).toContain("q1g32zp gemm");
}, 120_000);
