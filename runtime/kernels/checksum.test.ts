/**
 * The WASM XXH32 (kernels-wasm/src/checksum.rs) equals its twin in runtime/format/checksum.ts on
 * the published vectors, on seeded random bytes of every length 0..300 at every alignment
 * 0..15, on long inputs, with several seeds, in both kernel binaries; the stream gives the
 * one-shot hash for any split of the input; the wrappers refuse what the kernels cannot hash.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { KernelError } from "../errors.ts";
import { XxHash32, xxhash32 } from "../format/checksum.ts";
import { seededBytes } from "../../test/fixtures/format-samples.ts";
import { xxh32, xxh32StateBytes, xxh32StreamAt } from "./checksum.ts";
import { withArena } from "../../test/fixtures/kernel-data.ts";
import { Arena, instantiateKernels, type Kernels, loadKernels } from "./wasm.ts";

const binary = (name: string) => new Uint8Array(readFileSync(new URL(`../../kernels-wasm/pkg/${name}.wasm`, import.meta.url)));

function kernelsFrom(bytes: Uint8Array<ArrayBuffer>): Kernels {
  const memory = new WebAssembly.Memory({ initial: 32, maximum: 65536, shared: true });
  const instance = instantiateKernels(memory, undefined, new WebAssembly.Module(bytes));
  return { ...instance, arena: new Arena(memory, Number(instance.exports.__heap_base.value)) };
}

/** Copies `data` into the arena at an address ≡ `misalign` (mod 64); returns the view. */
function place(kern: Kernels, data: Uint8Array, misalign: number): Uint8Array {
  const ptr = kern.arena.alloc(data.length + misalign, 64) + misalign;
  const view = new Uint8Array(kern.memory.buffer, ptr, data.length);
  view.set(data);
  return view;
}

const SEEDS = [0, 1, 0x9e3779b1, 0xffffffff];
const text = (s: string) => new TextEncoder().encode(s);

for (
  const [variant, kern] of [["baseline SIMD128", kernelsFrom(binary("crumb_kernels"))], [
    "relaxed SIMD",
    kernelsFrom(binary("crumb_kernels_relaxed")),
  ]] as const
) {
  describe(`xxh32 (${variant} binary)`, () => {
    test("matches the published vectors", () => {
      withArena(kern, () => {
        expect(xxh32(kern, place(kern, text(""), 3))).toBe(0x02cc5d05);
        expect(xxh32(kern, place(kern, text("a"), 0))).toBe(0x550d7456);
        expect(xxh32(kern, place(kern, text("abc"), 1))).toBe(0x32d153ff);
        expect(xxh32(kern, place(kern, text("Nobody inspects the spammish repetition"), 2))).toBe(0xe2293b2f);
        expect(xxh32(kern, place(kern, text("abc"), 0), 0x9e3779b1)).toBe(0xa1ae7709);
      });
    });

    test("equals xxhash32 for every length 0..300 at every alignment 0..15, for several seeds", () => {
      withArena(kern, () => {
        const data = seededBytes(300, 17);
        for (let misalign = 0; misalign < 16; misalign++) {
          const view = place(kern, data, misalign);
          for (let n = 0; n <= 300; n++) {
            const seed = SEEDS[n % SEEDS.length];
            const want = xxhash32(data.subarray(0, n), seed);
            const got = xxh32(kern, view.subarray(0, n), seed);
            if (got !== want) expect({ misalign, n, seed, got }).toEqual({ misalign, n, seed, got: want });
          }
        }
      });
    });

    test("equals xxhash32 on long inputs (1 MiB + 13 bytes, 65 536 + 7 at an odd address)", () => {
      withArena(kern, () => {
        for (const [n, misalign, seed] of [[(1 << 20) + 13, 0, 0], [65536 + 7, 5, 0x9e3779b1]]) {
          const data = seededBytes(n, n);
          expect(xxh32(kern, place(kern, data, misalign), seed)).toBe(xxhash32(data, seed));
        }
      });
    });

    test("a stream fed in pieces of any size gives the one-shot hash", () => {
      withArena(kern, () => {
        const data = seededBytes(4099, 11);
        const view = place(kern, data, 1);
        const state = kern.arena.alloc(xxh32StateBytes(kern), 4);
        for (const seed of [0, 0x9e3779b1]) {
          const want = xxhash32(data, seed);
          for (const step of [1, 3, 4, 15, 16, 17, 64, 1000, 4099]) {
            const stream = xxh32StreamAt(kern, state, seed);
            for (let at = 0; at < data.length; at += step) stream.update(view.subarray(at, at + step));
            expect({ step, seed, hash: stream.digest() }).toEqual({ step, seed, hash: want });
          }
          // Uneven pieces (a short one after a long one), and digests taken along the way.
          const stream = xxh32StreamAt(kern, state, seed);
          const twin = new XxHash32(seed);
          for (const [from, to] of [[0, 5], [5, 5], [5, 2000], [2000, 2007], [2007, 4099]]) {
            stream.update(view.subarray(from, to));
            twin.update(data.subarray(from, to));
            expect(stream.digest()).toBe(twin.digest());
          }
        }
      });
    });
  });
}

describe("xxh32 wrappers refuse what the kernel cannot hash", () => {
  const kern = loadKernels();
  test("bytes outside the kernel memory", () => {
    expect(() => xxh32(kern, text("abc"))).toThrow(KernelError);
    expect(() => xxh32(kern, text("abc"))).toThrow("not a view of the kernel memory");
  });

  test("a seed that is not a u32", () => {
    withArena(kern, () => {
      const view = place(kern, text("abc"), 0);
      for (const seed of [-1, 2 ** 32, 0.5]) expect(() => xxh32(kern, view, seed)).toThrow(KernelError);
    });
  });

  test("a misaligned or out-of-memory state, and data overlapping the state", () => {
    withArena(kern, () => {
      const state = kern.arena.alloc(64, 4);
      expect(() => xxh32StreamAt(kern, state + 2)).toThrow("4-byte aligned");
      expect(() => xxh32StreamAt(kern, kern.memory.buffer.byteLength - 4)).toThrow("inside the kernel memory");
      const stream = xxh32StreamAt(kern, state);
      expect(() => stream.update(new Uint8Array(kern.memory.buffer, state + 8, 16))).toThrow("overlaps the hash state");
      expect(() => stream.update(text("abc"))).toThrow(KernelError);
    });
  });
});
