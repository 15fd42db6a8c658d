// Tests that need ../shared must fail, not skip, under CI when the files are missing.
import { expect, test } from "bun:test";
import { haveFiles } from "./shared-data.ts";

test("missing shared data throws under CI=true and reports false otherwise", () => {
  const saved = process.env.CI;
  try {
    process.env.CI = "true";
    expect(() => haveFiles("no-such-dir/no-such-file.bin")).toThrow(/test data missing under CI/);
    process.env.CI = "false";
    expect(haveFiles("no-such-dir/no-such-file.bin")).toBe(false);
    expect(haveFiles("stories260K/stories260K.bin")).toBe(true);
  } finally {
    if (saved === undefined) delete process.env.CI;
    else process.env.CI = saved;
  }
});
