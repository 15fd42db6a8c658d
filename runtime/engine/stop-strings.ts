/**
 * Stop strings across token boundaries: text is released only once it can no longer be the
 * start of a stop string, so a stop split over several tokens is never partly emitted.
 */

export interface StopMatcher {
  /** Adds generated text; returns what can be emitted now and whether a stop string was hit. */
  push(text: string): { emit: string; stopped: boolean };
  /** At the end of generation: the text still held back (no stop was hit). */
  flush(): string;
}

export function createStopMatcher(stops: readonly string[]): StopMatcher {
  const active = stops.filter((s) => s.length > 0);
  let pending = "";
  return {
    push(text) {
      pending += text;
      let cut = -1;
      for (const stop of active) {
        const at = pending.indexOf(stop);
        if (at !== -1 && (cut === -1 || at < cut)) cut = at;
      }
      if (cut !== -1) {
        const emit = pending.slice(0, cut);
        pending = "";
        return { emit, stopped: true };
      }
      // Hold back the longest suffix that is a prefix of some stop string.
      let hold = 0;
      for (const stop of active) {
        for (let len = Math.min(stop.length - 1, pending.length); len > hold; len--) {
          if (pending.endsWith(stop.slice(0, len))) {
            hold = len;
            break;
          }
        }
      }
      const emit = pending.slice(0, pending.length - hold);
      pending = pending.slice(pending.length - hold);
      return { emit, stopped: false };
    },
    flush() {
      const rest = pending;
      pending = "";
      return rest;
    },
  };
}
