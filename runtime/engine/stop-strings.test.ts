/**
 * The stop-string matcher (stop-strings.ts) fed text in pieces, as tokens arrive: the earliest
 * stop wins whatever order the stops are listed in, a stop split over pieces is never partly
 * emitted, text is held back exactly while it could still become a stop, and flush returns
 * the rest. A seeded random check compares every push with a model computed on the whole text.
 */
import { describe, expect, test } from "bun:test";
import { createStopMatcher } from "./stop-strings.ts";
import { createRandom } from "./sampler.ts";

/** Pushes each piece; the emitted text per push, whether a stop was hit, and what flush returns. */
function run(stops: readonly string[], pieces: readonly string[]) {
  const matcher = createStopMatcher(stops);
  const emits: string[] = [];
  for (const piece of pieces) {
    const { emit, stopped } = matcher.push(piece);
    emits.push(emit);
    if (stopped) return { emits, stopped: true, rest: matcher.flush() };
  }
  return { emits, stopped: false, rest: matcher.flush() };
}

/** The longest suffix of `text` that is a proper prefix of some stop (it may still become one). */
function heldLength(text: string, stops: readonly string[]): number {
  let hold = 0;
  for (const stop of stops) {
    for (let len = 1; len < stop.length && len <= text.length; len++) {
      if (text.endsWith(stop.slice(0, len))) hold = Math.max(hold, len);
    }
  }
  return hold;
}

/**
 * What must have been emitted once `text` has arrived: up to the earliest start of any stop it
 * contains, else everything but the suffix that may still become a stop.
 */
function visible(text: string, stops: readonly string[]): { shown: string; stopped: boolean } {
  const starts = stops.filter((s) => s !== "").map((s) => text.indexOf(s)).filter((at) => at !== -1);
  if (starts.length > 0) return { shown: text.slice(0, Math.min(...starts)), stopped: true };
  return { shown: text.slice(0, text.length - heldLength(text, stops)), stopped: false };
}

describe("stop strings", () => {
  test("a stop inside one piece cuts the text before it", () => {
    expect(run(["END"], ["Hello END world"])).toEqual({ emits: ["Hello "], stopped: true, rest: "" });
  });

  test("with several stops in the same text the earliest wins, in either listing order", () => {
    for (const stops of [["<b>", "<a>"], ["<a>", "<b>"]]) {
      expect(run(stops, ["one <a> two <b> three"]).emits).toEqual(["one "]);
      expect(run(stops, ["one <b> two <a> three"]).emits).toEqual(["one "]);
    }
    // Three stops, the one listed last occurring first, then the one listed first.
    expect(run(["zz", "yy", "xx"], ["a xx b zz c yy"]).emits).toEqual(["a "]);
    // Both stops complete in the same push, the earlier one started in an earlier push.
    expect(run(["cd", "abcde"], ["xab", "cde"])).toEqual({ emits: ["x", ""], stopped: true, rest: "" });
  });

  test("a stop split over several pieces is held back, never partly emitted", () => {
    expect(run(["END"], ["Hel", "lo E", "N", "D and more"])).toEqual({ emits: ["Hel", "lo ", "", ""], stopped: true, rest: "" });
    expect(run(["<|im_end|>"], ["Hi", "<|", "im", "_end", "|>", "x"])).toEqual({
      emits: ["Hi", "", "", "", ""],
      stopped: true,
      rest: "",
    });
  });

  test("a stop that is a prefix of another: whichever appears first stops, held while either may come", () => {
    const stops = ["ENDING", "END"];
    expect(run(stops, ["the E", "N"]).emits).toEqual(["the ", ""]);
    expect(run(stops, ["the E", "N", "D"])).toEqual({ emits: ["the ", "", ""], stopped: true, rest: "" });
    expect(run(stops, ["the ENDI", "NG"]).emits).toEqual(["the "]);
    // The shorter stop is complete inside a prefix of the longer: it stops at once.
    expect(run(["abcd", "bc"], ["xab", "c"])).toEqual({ emits: ["x", "a"], stopped: true, rest: "" });
  });

  test("text is held only while it could still become a stop", () => {
    const matcher = createStopMatcher(["STOP"]);
    expect(matcher.push("a ST")).toEqual({ emit: "a ", stopped: false });
    expect(matcher.push("X")).toEqual({ emit: "STX", stopped: false });
    expect(matcher.push("S")).toEqual({ emit: "", stopped: false });
    // "STOA" cannot become STOP any more, but its tail "ST" still can.
    expect(matcher.push("TOAST")).toEqual({ emit: "STOA", stopped: false });
    expect(matcher.flush()).toBe("ST");

    // The longest possible start is held, even when a shorter one also matches.
    const repeated = createStopMatcher(["aab"]);
    expect(repeated.push("aa")).toEqual({ emit: "", stopped: false });
    expect(repeated.push("a")).toEqual({ emit: "a", stopped: false });
    expect(repeated.push("c")).toEqual({ emit: "aac", stopped: false });

    // Across several stops, the longest start of any of them.
    const two = createStopMatcher(["xyz", "yq"]);
    expect(two.push("axy")).toEqual({ emit: "a", stopped: false });
    expect(two.push("q")).toEqual({ emit: "x", stopped: true });
  });

  test("nothing is lost: without a stop, the emits and flush give back the whole text", () => {
    const pieces = ["Once", " upon a ti", "me <", "|end", "|", " the E", "N"];
    const { emits, stopped, rest } = run(["<|end|>", "THE END"], pieces);
    expect(stopped).toBe(false);
    expect(emits.join("") + rest).toBe(pieces.join(""));
    expect(rest).toBe("");
    const held = run(["<|end|>", "THE END"], ["tail <|en"]);
    expect(held).toEqual({ emits: ["tail "], stopped: false, rest: "<|en" });
  });

  test("empty stop strings are ignored; no stops emit everything at once", () => {
    expect(run(["", "x"], ["abc", "dxe"])).toEqual({ emits: ["abc", "d"], stopped: true, rest: "" });
    expect(run([], ["a", "b"])).toEqual({ emits: ["a", "b"], stopped: false, rest: "" });
  });

  test("every push matches the model computed on the whole text (seeded random cases)", () => {
    const random = createRandom(12);
    const pick = (alphabet: string, n: number) =>
      Array.from({ length: n }, () => alphabet[Math.floor(random() * alphabet.length)]).join("");
    let stoppedCases = 0;
    for (let trial = 0; trial < 3000; trial++) {
      const stops = Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick("abc", 1 + Math.floor(random() * 4)));
      const text = pick("abcd", Math.floor(random() * 16));
      const pieces: string[] = [];
      for (let i = 0; i < text.length;) {
        const n = 1 + Math.floor(random() * 4);
        pieces.push(text.slice(i, i + n));
        i += n;
      }
      const matcher = createStopMatcher(stops);
      let arrived = "";
      let shown = "";
      let stopped = false;
      for (const piece of pieces) {
        arrived += piece;
        const want = visible(arrived, stops);
        const got = matcher.push(piece);
        expect({ stops, arrived, emit: got.emit, stopped: got.stopped }).toEqual({
          stops,
          arrived,
          emit: want.shown.slice(shown.length),
          stopped: want.stopped,
        });
        shown = want.shown;
        if (want.stopped) {
          stopped = true;
          break;
        }
      }
      if (stopped) stoppedCases++;
      else expect(shown + matcher.flush()).toBe(text);
    }
    // Both outcomes are well represented, so neither half of the check is vacuous.
    expect(stoppedCases).toBeGreaterThan(500);
    expect(stoppedCases).toBeLessThan(2500);
  });
});
