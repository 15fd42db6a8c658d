/**
 * Value parsers for command-line flags: numbers with their range, choices, byte counts and
 * paths. Each throws a UsageError naming the flag, the value and what it accepts; paths are
 * made absolute against the directory the user typed them in (user-path.ts).
 */
import { UsageError } from "../errors.ts";
import { parseBytes } from "../engine/kv-cache/auto.ts";
import type { ValueParser } from "./command-line.ts";
import { userPath } from "./user-path.ts";

function describeRange(kind: string, min: number, max: number): string {
  if (max === Infinity) return `${kind} >= ${min}`;
  if (min === -Infinity) return `${kind} <= ${max}`;
  return `${kind} from ${min} to ${max}`;
}

/** A finite number in [min, max]. */
export function numberValue({ min = -Infinity, max = Infinity } = {}): ValueParser {
  return (text, flag) => {
    const value = Number(text);
    if (text.trim() === "" || !Number.isFinite(value) || value < min || value > max) {
      throw new UsageError(flag, `${flag} must be ${describeRange("a number", min, max)}, got "${text}"`);
    }
    return value;
  };
}

/** An integer in [min, max]. */
export function integerValue({ min = -Infinity, max = Infinity } = {}): ValueParser {
  return (text, flag) => {
    const value = Number(text);
    if (!/^\s*[-+]?\d+\s*$/.test(text) || value < min || value > max) {
      throw new UsageError(flag, `${flag} must be ${describeRange("an integer", min, max)}, got "${text}"`);
    }
    return value;
  };
}

/** One of `allowed` (compared case-insensitively when `caseless`); returns the allowed spelling. */
export function choiceValue<T extends string>(allowed: readonly T[], { caseless = false } = {}): ValueParser {
  return (text, flag) => {
    const found = allowed.find((a) => (caseless ? a.toLowerCase() === text.toLowerCase() : a === text));
    if (found === undefined) throw new UsageError(flag, `${flag} must be one of ${allowed.join(", ")}, got "${text}"`);
    return found;
  };
}

/** A byte count: 200000, 512MB, 1.5GiB. */
export const bytesValue: ValueParser = (text, flag) => {
  try {
    return parseBytes(text);
  } catch {
    throw new UsageError(flag, `${flag} must be a byte count like 200000, 512MB or 1.5GiB, got "${text}"`);
  }
};

/** A path, made absolute against the user's working directory. */
export const pathValue: ValueParser = (text, flag) => {
  if (text.trim() === "") throw new UsageError(flag, `${flag} needs a path, got an empty string`);
  return userPath(text);
};

/** Text that must not be empty. */
export const textValue: ValueParser = (text, flag) => {
  if (text === "") throw new UsageError(flag, `${flag} needs a value, got an empty string`);
  return text;
};
