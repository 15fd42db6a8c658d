// The memoised group fitter against grid.ts fitAffine: identical (d, z) on seeded groups of
// every shape the search meets (plain, weighted, flat, zero, sparse, heavy-tailed).
import { expect, test } from "bun:test";
import { createRandom } from "../../runtime/engine/sampler.ts";
import { createGroupFitter } from "./group-fit.ts";
import { fitAffine } from "./grid.ts";

test("createGroupFitter gives fitAffine's parameters exactly", () => {
  const random = createRandom(11);
  let checked = 0;
  for (const bits of [1, 2, 3, 4]) {
    const fitter = createGroupFitter(bits);
    for (const n of [32, 64, 128]) {
      const x = new Float64Array(n);
      const h = new Float64Array(n);
      for (let trial = 0; trial < 150; trial++) {
        const kind = trial % 6;
        for (let i = 0; i < n; i++) {
          const u = random() - 0.5;
          x[i] = kind === 0 ? u : kind === 1 ? 0.25 : kind === 2 ? (random() < 0.7 ? 0 : u) : kind === 3 ? u ** 3 * 40 : kind === 4 ? Math.round(u * 6) / 7 : u + 3;
          h[i] = kind === 5 ? 1 : random() < 0.1 ? 0 : random() * 4;
        }
        const want = fitAffine(x, h, n, bits, true);
        const got = fitter.fit(x, h, n);
        expect(got.d).toBe(want.d);
        expect(Object.is(got.z, want.z)).toBe(true);
        checked++;
      }
    }
  }
  expect(checked).toBe(4 * 3 * 150);
});
