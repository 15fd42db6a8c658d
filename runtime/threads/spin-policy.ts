/**
 * How long the pool's idle threads spin before sleeping. Spinning hides the wake-up latency
 * of a sleeping thread (a futex wake, in a VM also the halted vCPU's wake-up) between the
 * ~100 batches of a decode step, as llama.cpp's threadpool busy-waits. But when other
 * processes already keep the cores busy, a spinning thread only takes CPU time from the thread
 * that has the work (2-core machine next to a 1-core job, 2-thread 1.1B decode: 15.4 tok/s
 * with no spin, 11.0 with 500 µs, 9.4 with 2 ms). The sign of that is the spinning thread
 * itself being descheduled: two clock reads of the spin loop further apart than PREEMPT_MS.
 * After that the thread spins only CONTENDED_SPIN_MICROS for BACKOFF_MS, then tries again.
 */

/** Spin (µs) while other processes compete for the cores: enough for back-to-back batches. */
export const CONTENDED_SPIN_MICROS = 20;
/** A gap this long (ms) between two polls of a spin means the thread was descheduled. */
export const PREEMPT_MS = 0.5;
/** How long (ms) a thread that was descheduled while spinning keeps to the short spin. */
export const BACKOFF_MS = 2000;

export class SpinPolicy {
  private shortUntil = -Infinity;

  constructor(private readonly maxSpin: number) {}

  /** The spin budget (µs) at time `now` (ms, performance.now()). */
  budget(now: number): number {
    return now < this.shortUntil ? Math.min(this.maxSpin, CONTENDED_SPIN_MICROS) : this.maxSpin;
  }

  /** Notes that the spinning thread saw a gap of `gapMs` between two polls at time `now`. */
  observe(gapMs: number, now: number): void {
    if (gapMs > PREEMPT_MS) this.shortUntil = now + BACKOFF_MS;
  }

  /** Spins until `done()` or the budget has passed (the clock is read every 64 polls). */
  spin(done: () => boolean): boolean {
    let previous = performance.now();
    const budget = this.budget(previous);
    if (budget <= 0) return done();
    const end = previous + budget / 1000;
    for (let k = 1; ; k++) {
      if (done()) return true;
      if ((k & 63) === 0) {
        const now = performance.now();
        this.observe(now - previous, now);
        if (now > end) return done();
        previous = now;
      }
    }
  }

  /** `spin` for the wait "words[i] ≥ min" without a callback (phase barriers run per call). */
  spinAtLeast(words: Int32Array, i: number, min: number): boolean {
    let previous = performance.now();
    const budget = this.budget(previous);
    if (budget <= 0) return Atomics.load(words, i) >= min;
    const end = previous + budget / 1000;
    for (let k = 1; ; k++) {
      if (Atomics.load(words, i) >= min) return true;
      if ((k & 63) === 0) {
        const now = performance.now();
        this.observe(now - previous, now);
        if (now > end) return Atomics.load(words, i) >= min;
        previous = now;
      }
    }
  }
}
