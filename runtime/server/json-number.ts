/**
 * Number bounds (JSON Schema minimum, maximum, exclusiveMinimum, exclusiveMaximum) checked on
 * the prefix of a number as it is generated: `reachable` says whether some completion of the
 * text within a few more characters lands inside the bounds. Exact decimal arithmetic on
 * BigInt (a bound like 0.1 is the decimal the client wrote, not the nearest binary double).
 *
 * Bounded numbers are written without an exponent, so the values a prefix can still reach are a
 * few intervals on a decimal grid: the integer part may gain k more digits, and a fraction f
 * digits, with k + 1 + f characters to spare. The set of reachable values only grows with the
 * room left, which makes "the shortest completion" a search over that room.
 */

/** An exact decimal m * 10^e. */
interface Decimal {
  readonly m: bigint;
  readonly e: number;
}

export interface NumberBounds {
  readonly lo?: Decimal;
  readonly loExclusive: boolean;
  readonly hi?: Decimal;
  readonly hiExclusive: boolean;
}

/** The exact decimal a JSON number denotes (as JavaScript prints it: "0.1", "1e+21", "-5e-7"). */
export function decimalOf(value: number): Decimal {
  const match = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/.exec(String(value));
  if (match === null) throw new RangeError(`not a finite number: ${value}`);
  const [, sign, int, frac = "", exp = "0"] = match;
  const m = BigInt(sign + int + frac);
  return { m, e: Number(exp) - frac.length };
}

const pow10 = (n: number) => 10n ** BigInt(n);

/** a and b as integers over a common scale. */
function aligned(a: Decimal, b: Decimal): [bigint, bigint] {
  const e = Math.min(a.e, b.e);
  return [a.m * pow10(a.e - e), b.m * pow10(b.e - e)];
}

function compare(a: Decimal, b: Decimal): number {
  const [x, y] = aligned(a, b);
  return x < y ? -1 : x > y ? 1 : 0;
}

const neg = (d: Decimal): Decimal => ({ m: -d.m, e: d.e });

/** Bounds whose interval is empty (lo above hi, or equal with one end open). */
export function emptyBounds(b: NumberBounds): boolean {
  if (b.lo === undefined || b.hi === undefined) return false;
  const c = compare(b.lo, b.hi);
  return c > 0 || (c === 0 && (b.loExclusive || b.hiExclusive));
}

function above(x: Decimal, bound: Decimal | undefined, exclusive: boolean): boolean {
  if (bound === undefined) return true;
  const c = compare(x, bound);
  return c > 0 || (c === 0 && !exclusive);
}

function below(x: Decimal, bound: Decimal | undefined, exclusive: boolean): boolean {
  if (bound === undefined) return true;
  const c = compare(x, bound);
  return c < 0 || (c === 0 && !exclusive);
}

/** Whether the value of a complete, exponent-free number text ("-12.50") lies within the bounds. */
export function withinBounds(text: string, b: NumberBounds): boolean {
  const match = /^(-?)(\d+)(?:\.(\d*))?$/.exec(text);
  if (match === null) return false;
  const [, sign, int, frac = ""] = match;
  const value: Decimal = { m: BigInt(sign + int + frac), e: -frac.length };
  return above(value, b.lo, b.loExclusive) && below(value, b.hi, b.hiExclusive);
}

/**
 * Whether a grid point n * 10^-f lies in [from, to] (inclusive ends) and within the bounds
 * [lo, hi] on magnitudes (exclusive flags as given).
 */
function gridHits(
  from: Decimal,
  to: Decimal,
  f: number,
  lo: Decimal | undefined,
  loEx: boolean,
  hi: Decimal | undefined,
  hiEx: boolean,
): boolean {
  let start = from;
  let startEx = false;
  if (lo !== undefined) {
    const c = compare(lo, from);
    if (c > 0) [start, startEx] = [lo, loEx];
    else if (c === 0) startEx = loEx;
  }
  let end = to;
  let endEx = false;
  if (hi !== undefined) {
    const c = compare(hi, to);
    if (c < 0) [end, endEx] = [hi, hiEx];
    else if (c === 0) endEx = hiEx;
  }
  // Scale everything to units of 10^-f (or finer, when a bound has more digits).
  const e = Math.min(-f, start.e, end.e);
  const s = start.m * pow10(start.e - e);
  const t = end.m * pow10(end.e - e);
  const step = pow10(-f - e);
  let first = s >= 0n ? (s + step - 1n) / step : -((-s) / step);
  if (startEx && first * step === s) first++;
  let last = t >= 0n ? t / step : -((-t + step - 1n) / step);
  if (endEx && last * step === t) last--;
  return first <= last;
}

/**
 * Whether `text` (a prefix of an exponent-free number: "", "-", "12", "0.", "-3.25") can be
 * completed within `extra` more characters to a number inside the bounds (an integer when
 * `integer`).
 */
export function reachable(text: string, b: NumberBounds, integer: boolean, extra: number): boolean {
  if (extra < 0) return false;
  const negative = text.startsWith("-");
  const u = negative ? text.slice(1) : text;
  if (u === "") {
    for (let d = 0; d <= 9; d++) if (reachable(text + d, b, integer, extra - 1)) return true;
    return !negative && reachable("-", b, integer, extra - 1);
  }
  const match = /^(\d+)(?:(\.)(\d*))?$/.exec(u);
  if (match === null) return false;
  const [, int, dot, frac = ""] = match;
  if (dot !== undefined && integer) return false;
  // Bounds on the magnitude A (the value is -A when negative).
  const lo = negative ? (b.hi === undefined ? undefined : neg(b.hi)) : b.lo;
  const loEx = negative ? b.hiExclusive : b.loExclusive;
  const hi = negative ? (b.lo === undefined ? undefined : neg(b.lo)) : b.hi;
  const hiEx = negative ? b.loExclusive : b.hiExclusive;
  const D = BigInt(int);
  if (dot !== undefined) {
    const f0 = frac.length;
    const f = f0 + extra;
    if (f0 === 0 && extra < 1) return false;
    const from: Decimal = { m: BigInt(int + frac), e: -f0 };
    // from + 10^-f0 - 10^-f, at scale 10^-f.
    const to: Decimal = { m: from.m * pow10(extra) + pow10(extra) - 1n, e: -f };
    return gridHits(from, to, f, lo, loEx, hi, hiEx);
  }
  const maxK = int === "0" ? 0 : extra;
  for (let k = 0; k <= maxK; k++) {
    const base = D * pow10(k);
    const f = integer ? 0 : extra - k - 1;
    if (f >= 1) {
      const to: Decimal = { m: (base + pow10(k)) * pow10(f) - 1n, e: -f };
      if (gridHits({ m: base, e: 0 }, to, f, lo, loEx, hi, hiEx)) return true;
    } else if (gridHits({ m: base, e: 0 }, { m: base + pow10(k) - 1n, e: 0 }, 0, lo, loEx, hi, hiEx)) return true;
  }
  return false;
}

/** Fewest characters still needed to complete `text` inside the bounds (Infinity: none within `room`). */
export function shortestCompletion(text: string, b: NumberBounds, integer: boolean, room: number): number {
  for (let extra = 0; extra <= room; extra++) if (reachable(text, b, integer, extra)) return extra;
  return Infinity;
}
