/**
 * Helpers for normalising Hugging Face config.json objects into the readonly `Args` each
 * model file exports: every key is checked for type and range, defaults are filled, and a
 * missing required key throws ConfigError naming it.
 */
import { ConfigError, UnsupportedModelError } from "../errors.ts";
import type { RawConfig } from "./types.ts";

export function requireInt(raw: RawConfig, key: string, min = 1): number {
  const value = raw[key];
  if (value === undefined || value === null) {
    throw new ConfigError(`config is missing required key "${key}"`, { key });
  }
  return checkInt(key, value, min);
}

export function optionalInt(raw: RawConfig, key: string, fallback: number, min = 1): number {
  const value = raw[key];
  return value === undefined || value === null ? fallback : checkInt(key, value, min);
}

export function optionalNumber(raw: RawConfig, key: string, fallback: number): number {
  const value = raw[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new ConfigError(`config key "${key}" must be a finite number, got ${JSON.stringify(value)}`, { key });
  }
  return value;
}

export function optionalBool(raw: RawConfig, key: string, fallback: boolean): boolean {
  const value = raw[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "boolean") {
    throw new ConfigError(`config key "${key}" must be true or false, got ${JSON.stringify(value)}`, { key });
  }
  return value;
}

/** eos_token_id may be a number or a list of numbers in HF configs. */
export function tokenIdList(raw: RawConfig, key: string): number[] {
  const value = raw[key];
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.map((id) => checkInt(key, id, 0));
}

function checkInt(key: string, value: unknown, min: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new ConfigError(`config key "${key}" must be an integer >= ${min}, got ${JSON.stringify(value)}`, { key });
  }
  return value;
}

/** RoPE frequency scaling as HF expresses it in `rope_scaling`. */
export type RopeScaling =
  | { readonly type: "none" }
  | { readonly type: "linear"; readonly factor: number }
  | {
    readonly type: "llama3";
    readonly factor: number;
    readonly lowFreqFactor: number;
    readonly highFreqFactor: number;
    readonly originalMaxPositions: number;
  };

const SUPPORTED_ROPE_SCALING = ["none", "linear", "llama3"];

export function normalizeRopeScaling(raw: RawConfig): RopeScaling {
  const scaling = raw.rope_scaling;
  if (scaling === undefined || scaling === null) return { type: "none" };
  if (typeof scaling !== "object" || Array.isArray(scaling)) {
    throw new ConfigError(`config key "rope_scaling" must be an object, got ${JSON.stringify(scaling)}`, { key: "rope_scaling" });
  }
  const s = scaling as RawConfig;
  const type = s.rope_type ?? s.type ?? "default";
  if (type === "default") return { type: "none" };
  if (type === "linear") return { type: "linear", factor: optionalNumber(s, "factor", 1) };
  if (type === "llama3") {
    return {
      type: "llama3",
      factor: optionalNumber(s, "factor", 8),
      lowFreqFactor: optionalNumber(s, "low_freq_factor", 1),
      highFreqFactor: optionalNumber(s, "high_freq_factor", 4),
      originalMaxPositions: optionalInt(s, "original_max_position_embeddings", 8192),
    };
  }
  throw new UnsupportedModelError(`rope_scaling type "${String(type)}" is not supported`, SUPPORTED_ROPE_SCALING);
}
