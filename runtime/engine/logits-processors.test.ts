// topEntries, the alternatives listed with logprobs: best first, ties by lower id, and none
// when none are asked for (chat `logprobs: true` without top_logprobs, legacy `logprobs: 0`).
import { expect, test } from "bun:test";
import { topEntries } from "./logits-processors.ts";

test("topEntries: the k largest, best first, ties by lower id; k = 0 gives none", () => {
  const values = new Float64Array([-3, -1, -2, -1, -0.5]);
  expect(topEntries(values, 3)).toEqual([{ id: 4, value: -0.5 }, { id: 1, value: -1 }, { id: 3, value: -1 }]);
  expect(topEntries(values, 0)).toEqual([]);
});
