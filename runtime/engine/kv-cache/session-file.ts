/**
 * Sessions: a conversation's tokens and its attention state, in the cache's compact form
 * (quantised codes, windows, X or latents), saved to one file and restored into a cache of
 * the same mode and settings. Restoring needs no prefill: KIVI and f16 caches hold their
 * keys and values, and an XQuant cache rebuilds K and V from the restored X/latents on the
 * next step (one rematerialisation).
 *
 * Layout (little-endian): magic "CRUMBSES", u32 version, u32 header bytes, the UTF-8 JSON
 * header {model, tokens, mode, length, meta, arrays: [{name, type, count, offset}]}, zero
 * padding to 8 bytes, then each array's bytes at its offset (relative to the data start,
 * 8-byte aligned).
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { FormatError, InvalidArgumentError } from "../../errors.ts";
import { xxhash32 } from "../../format/checksum.ts";
import type { KvCache, KvCacheState, StateArray } from "./types.ts";

export const SESSION_VERSION = 1;
const MAGIC = "CRUMBSES";
const TYPES = { u8: Uint8Array, u16: Uint16Array, u32: Uint32Array, f32: Float32Array } as const;
type TypeName = keyof typeof TYPES;

export interface Session {
  /** Identifies the model the state belongs to (restoring into another model is refused). */
  readonly model: string;
  /** Tokens whose state the cache holds, in order. */
  readonly tokens: readonly number[];
  readonly state: KvCacheState;
}

interface ArrayRecord {
  readonly name: string;
  readonly type: TypeName;
  readonly count: number;
  readonly offset: number;
}

const align8 = (n: number) => Math.ceil(n / 8) * 8;

function typeName(a: StateArray): TypeName {
  if (a instanceof Uint8Array) return "u8";
  if (a instanceof Uint16Array) return "u16";
  if (a instanceof Uint32Array) return "u32";
  return "f32";
}

export function encodeSession(session: Session): Uint8Array {
  const records: ArrayRecord[] = [];
  let offset = 0;
  for (const [name, array] of Object.entries(session.state.arrays)) {
    records.push({ name, type: typeName(array), count: array.length, offset });
    offset = align8(offset + array.byteLength);
  }
  const { mode, length, meta } = session.state;
  const header = new TextEncoder().encode(JSON.stringify({ model: session.model, tokens: session.tokens, mode, length, meta, arrays: records }));
  const dataStart = align8(16 + header.length);
  const out = new Uint8Array(dataStart + offset);
  out.set(new TextEncoder().encode(MAGIC), 0);
  const view = new DataView(out.buffer);
  view.setUint32(8, SESSION_VERSION, true);
  view.setUint32(12, header.length, true);
  out.set(header, 16);
  for (const r of records) {
    const a = session.state.arrays[r.name];
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), dataStart + r.offset);
  }
  return out;
}

export function decodeSession(bytes: Uint8Array, file = "session"): Session {
  const fail = (message: string, offset?: number): never => {
    throw new FormatError(`${message}; save the session again`, { file, offset });
  };
  if (bytes.length < 16 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) fail("not a crumb session file (bad magic)", 0);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== SESSION_VERSION) fail(`session version ${version} is not supported (this crumb reads version ${SESSION_VERSION})`, 8);
  const headerBytes = view.getUint32(12, true);
  if (16 + headerBytes > bytes.length) fail(`header of ${headerBytes} bytes runs past the end of the file (${bytes.length} bytes)`, 12);
  let header: { model: string; tokens: number[]; mode: KvCacheState["mode"]; length: number; meta: Record<string, unknown>; arrays: ArrayRecord[] };
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + headerBytes)));
  } catch (cause) {
    throw new FormatError(`session header is not valid JSON; save the session again`, { file, offset: 16, cause });
  }
  const dataStart = align8(16 + headerBytes);
  const arrays: Record<string, StateArray> = {};
  for (const r of header.arrays) {
    const type = TYPES[r.type];
    if (type === undefined) fail(`array ${r.name} has unknown type ${r.type}`, 16);
    const start = dataStart + r.offset;
    const end = start + r.count * type.BYTES_PER_ELEMENT;
    if (end > bytes.length) fail(`array ${r.name} runs past the end of the file (needs ${end} bytes, file has ${bytes.length})`, start);
    arrays[r.name] = new type(bytes.slice(start, end).buffer);
  }
  return { model: header.model, tokens: header.tokens, state: { mode: header.mode, length: header.length, meta: header.meta, arrays } };
}

/** A model's identity for sessions: a hash of its config. */
export function modelKey(config: Readonly<Record<string, unknown>>): string {
  return `config-xxh32-${xxhash32(new TextEncoder().encode(JSON.stringify(config))).toString(16).padStart(8, "0")}`;
}

/** Writes a cache's state and its tokens to `path` (atomically: a temporary file, then rename). */
export function saveSession(path: string, model: string, tokens: readonly number[], cache: KvCache): number {
  if (tokens.length !== cache.length()) {
    throw new InvalidArgumentError("session", `the cache holds ${cache.length()} positions but ${tokens.length} tokens were given; save after a forward pass`);
  }
  const bytes = encodeSession({ model, tokens, state: cache.exportState() });
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, bytes);
  renameSync(temporary, path);
  return bytes.length;
}

/** Reads a session file and loads its state into `cache`; returns the tokens it holds. */
export function restoreSession(path: string, model: string, cache: KvCache): number[] {
  const session = decodeSession(new Uint8Array(readFileSync(path)), path);
  if (session.model !== model) {
    throw new InvalidArgumentError("session", `session ${path} was saved with model ${session.model}, not ${model}; start a new session`);
  }
  if (session.state.mode !== cache.mode) {
    throw new InvalidArgumentError("session", `session ${path} holds a --kv ${session.state.mode} cache; run with --kv ${session.state.mode} to restore it`);
  }
  cache.importState(session.state);
  return [...session.tokens];
}
