/**
 * `quantize` on GGUF sources (quantizer/quantize.ts with recipe.ts's GGUF rules): which
 * tensors keep their blocks and which are re-quantised, what the report says, and the KL
 * against the GGUF's own dequantised model. A model whose every matrix keeps its blocks
 * bit-exactly must score KL 0 and top-1 100%: the whole packed path, not just one tensor,
 * reproduces the GGUF's weights.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import * as path from "node:path";
import { importGguf } from "../../runtime/import/gguf-model.ts";
import { tempDir } from "../import/import-util.ts";
import { quantizeModel } from "../../quantizer/quantize.ts";
import { formatReport } from "../../quantizer/report.ts";
import { q4KMTypes, writeGgufModel } from "./gguf-model-fixture.ts";

const dir = tempDir();
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SPEC = { arch: "llama", hidden: 256, intermediate: 512, layers: 1, heads: 4, kvHeads: 2, seed: 11, maxPositions: 128 } as const;

function gguf(name: string, typeOf: (n: string) => string): string {
  const file = path.join(dir, `${name}.gguf`);
  writeGgufModel(file, SPEC, { typeOf, headScale: 8 });
  return file;
}

const quick = { evaluationTokens: 48, calibrationEngine: "reference" as const };

describe("quantize a GGUF", () => {
  test("Q4_0 linears and Q8_0 embeddings: every block kept bit-exactly, KL 0, top-1 100%", async () => {
    const source = importGguf(gguf("q40", (n) => (/token_embd|^output\./.test(n) ? "Q8_0" : "Q4_0")));
    const { report, header } = await quantizeModel(source, quick);
    expect(report.gguf!.kept).toBe(9); // 7 linears + embeddings + lm_head
    expect(report.gguf!.kept_exact).toBe(9);
    expect(report.gguf!.requantized).toBe(0);
    expect(report.gguf!.by_type).toEqual({ "Q8_0 -> q8g32 kept": { tensors: 2, exact: 2 }, "Q4_0 -> q4g32zp kept": { tensors: 7, exact: 7 } });
    expect(report.kl_mean).toBe(0);
    expect(report.kl_max).toBe(0);
    expect(report.top1).toBe(1);
    expect(header.quantization.bits).toBe("source");
    expect((header.quantization.notes as Record<string, string>)["model.layers.0.self_attn.q_proj.weight"]).toBe("Q4_0 blocks kept, bit-exact");
  });

  test("Q4_K_M mix: Q4_K kept with rounded scales, Q6_K re-quantised to q8; --bits 2 re-quantises all, at a higher KL", async () => {
    const source = importGguf(gguf("q4km", q4KMTypes));
    const own = await quantizeModel(source, quick);
    const g = own.report.gguf!;
    expect(g.by_type).toEqual({
      "Q4_K -> q8g32 q8": { tensors: 1 }, // token_embd: embeddings are q8 (rows are looked up)
      "Q4_K -> q4g32zp kept": { tensors: 5, exact: 0 },
      "Q6_K -> q8g32 q8": { tensors: 3 }, // attn_v, ffn_down, output
    });
    const up = g.tensors.find((t) => t.name === "model.layers.0.mlp.up_proj.weight")!;
    expect(up).toMatchObject({ from: "Q4_K", to: "q4g32zp", method: "transcode", groups: 512 * 256 / 32 });
    // A few sub-blocks happen to have f16-exact scales (e.g. power-of-two sc); most do not.
    expect(up.exact_groups!).toBeLessThan(up.groups! / 10);
    expect(up.max_abs_error!).toBeGreaterThan(0);
    expect(own.report.kl_mean!).toBeGreaterThan(0);
    expect(own.report.kl_mean!).toBeLessThan(0.01);
    const text = formatReport(own.report);
    expect(text).toContain("GGUF blocks    kept in 5 tensors (0 bit-exact): Q4_K -> q4g32zp 5 (0 bit-exact)");
    expect(text).toContain("re-quantised 4 tensors: Q4_K -> q8g32 q8 1, Q6_K -> q8g32 q8 3");
    expect(text).toContain("measured against the GGUF's own dequantised weights");

    const q2 = await quantizeModel(source, { ...quick, bits: 2 });
    expect(q2.report.gguf!.kept).toBe(0);
    expect(q2.report.gguf!.by_type["Q4_K -> q2g32zp rtn"]).toEqual({ tensors: 5 });
    expect(q2.report.kl_mean!).toBeGreaterThan(10 * own.report.kl_mean!);
  });

  test("TQ2_0 with --bits ternary: trits kept bit-exactly; with --bits 4 re-quantised", async () => {
    const source = importGguf(gguf("tq2", (n) => (/token_embd|^output\./.test(n) ? "Q8_0" : "TQ2_0")));
    const ternary = await quantizeModel(source, { ...quick, bits: "ternary" });
    expect(ternary.report.gguf!.by_type["TQ2_0 -> t1g256 kept"]).toEqual({ tensors: 7, exact: 7 });
    expect(ternary.report.kl_mean).toBe(0);
    const four = await quantizeModel(source, { ...quick, bits: 4, report: false });
    expect(four.report.gguf!.by_type["TQ2_0 -> q4g32zp rtn"]).toEqual({ tensors: 7 });
  });
});
