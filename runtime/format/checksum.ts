/**
 * xxHash32 (Yann Collet, XXH32 as specified in the xxHash repository's doc/xxhash_spec.md),
 * in plain TypeScript: the checksum of every tensor and of the checkpoint header + table.
 * One-shot `xxhash32(bytes, seed)` and an incremental `XxHash32` that accepts the data in
 * chunks of any size (so the loader can verify while it streams into WASM memory).
 * All arithmetic is modulo 2^32 (Math.imul and `>>> 0`).
 */

const PRIME1 = 0x9e3779b1;
const PRIME2 = 0x85ebca77;
const PRIME3 = 0xc2b2ae3d;
const PRIME4 = 0x27d4eb2f;
const PRIME5 = 0x165667b1;

/** True when the host stores u32 little-endian, so aligned stripes can be read as a Uint32Array. */
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function round(acc: number, lane: number): number {
  acc = (acc + Math.imul(lane, PRIME2)) | 0;
  return Math.imul(rotl(acc, 13), PRIME1);
}

function readU32(bytes: Uint8Array, i: number): number {
  return bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
}

/** Incremental XXH32. `update` as often as needed, then `digest` once (further updates are allowed). */
export class XxHash32 {
  readonly seed: number;
  private v1: number;
  private v2: number;
  private v3: number;
  private v4: number;
  /** Bytes of an incomplete 16-byte stripe carried to the next update. */
  private readonly pending = new Uint8Array(16);
  private pendingLength = 0;
  private totalLength = 0;

  constructor(seed = 0) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new RangeError(`xxhash32 seed must be a u32, got ${seed}`);
    }
    this.seed = seed >>> 0;
    this.v1 = (this.seed + PRIME1 + PRIME2) | 0;
    this.v2 = (this.seed + PRIME2) | 0;
    this.v3 = this.seed | 0;
    this.v4 = (this.seed - PRIME1) | 0;
  }

  update(bytes: Uint8Array): this {
    let i = 0;
    const n = bytes.length;
    this.totalLength += n;
    if (this.pendingLength > 0) {
      const take = Math.min(16 - this.pendingLength, n);
      this.pending.set(bytes.subarray(0, take), this.pendingLength);
      this.pendingLength += take;
      i = take;
      if (this.pendingLength < 16) return this;
      this.consumeStripe(this.pending, 0);
      this.pendingLength = 0;
    }
    const stripesEnd = i + ((n - i) & ~15);
    if (stripesEnd > i) this.consumeStripes(bytes, i, stripesEnd);
    i = stripesEnd;
    if (i < n) {
      this.pending.set(bytes.subarray(i), 0);
      this.pendingLength = n - i;
    }
    return this;
  }

  /** The hash of everything passed to `update` so far, as an unsigned 32-bit integer. */
  digest(): number {
    let h: number;
    if (this.totalLength >= 16) {
      h = (rotl(this.v1, 1) + rotl(this.v2, 7) + rotl(this.v3, 12) + rotl(this.v4, 18)) | 0;
    } else {
      h = (this.seed + PRIME5) | 0;
    }
    // The spec adds the input length modulo 2^32.
    h = (h + (this.totalLength % 0x100000000)) | 0;
    const tail = this.pending;
    let i = 0;
    for (; i + 4 <= this.pendingLength; i += 4) {
      h = (h + Math.imul(readU32(tail, i), PRIME3)) | 0;
      h = Math.imul(rotl(h, 17), PRIME4);
    }
    for (; i < this.pendingLength; i++) {
      h = (h + Math.imul(tail[i], PRIME5)) | 0;
      h = Math.imul(rotl(h, 11), PRIME1);
    }
    h ^= h >>> 15;
    h = Math.imul(h, PRIME2);
    h ^= h >>> 13;
    h = Math.imul(h, PRIME3);
    h ^= h >>> 16;
    return h >>> 0;
  }

  private consumeStripe(bytes: Uint8Array, i: number): void {
    this.v1 = round(this.v1, readU32(bytes, i));
    this.v2 = round(this.v2, readU32(bytes, i + 4));
    this.v3 = round(this.v3, readU32(bytes, i + 8));
    this.v4 = round(this.v4, readU32(bytes, i + 12));
  }

  /** Hashes the whole 16-byte stripes in bytes[start, end); end - start is a multiple of 16. */
  private consumeStripes(bytes: Uint8Array, start: number, end: number): void {
    let v1 = this.v1;
    let v2 = this.v2;
    let v3 = this.v3;
    let v4 = this.v4;
    if (HOST_LITTLE_ENDIAN && (bytes.byteOffset + start) % 4 === 0) {
      // Fast path: the same lanes read as host u32 words (identical values on a little-endian host).
      const words = new Uint32Array(bytes.buffer, bytes.byteOffset + start, (end - start) >>> 2);
      for (let w = 0; w < words.length; w += 4) {
        v1 = Math.imul(rotl((v1 + Math.imul(words[w], PRIME2)) | 0, 13), PRIME1);
        v2 = Math.imul(rotl((v2 + Math.imul(words[w + 1], PRIME2)) | 0, 13), PRIME1);
        v3 = Math.imul(rotl((v3 + Math.imul(words[w + 2], PRIME2)) | 0, 13), PRIME1);
        v4 = Math.imul(rotl((v4 + Math.imul(words[w + 3], PRIME2)) | 0, 13), PRIME1);
      }
    } else {
      for (let i = start; i < end; i += 16) {
        v1 = round(v1, readU32(bytes, i));
        v2 = round(v2, readU32(bytes, i + 4));
        v3 = round(v3, readU32(bytes, i + 8));
        v4 = round(v4, readU32(bytes, i + 12));
      }
    }
    this.v1 = v1;
    this.v2 = v2;
    this.v3 = v3;
    this.v4 = v4;
  }
}

/** XXH32 of `bytes` with `seed` (default 0), as an unsigned 32-bit integer. */
export function xxhash32(bytes: Uint8Array, seed = 0): number {
  return new XxHash32(seed).update(bytes).digest();
}

/** Formats a checksum the way FORMAT.md and error messages show it: 0x-prefixed, 8 hex digits. */
export function formatChecksum(value: number): string {
  return `0x${(value >>> 0).toString(16).padStart(8, "0")}`;
}
