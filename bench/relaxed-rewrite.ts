/**
 * Rewrites every `i8x16.swizzle` (0xFD 14) of a kernel binary into `i8x16.relaxed_swizzle`
 * (0xFD 256, relaxed-SIMD proposal). The runtime no longer needs it (kernels-wasm/build.sh emits
 * a relaxed-SIMD binary); bench/kernels-ab.ts uses it to time binaries built before that on
 * equal terms. The LUT kernel's indices are always masked to 0..15, where both instructions
 * give the same bytes, but plain swizzle must return 0 for indices >= 16, which costs x86
 * engines an extra saturating add per lookup; the relaxed form maps to one PSHUFB (and to TBL
 * on ARM64 either way).
 *
 * The walk decodes every instruction's immediates (WebAssembly core spec §5.4, plus the
 * SIMD, threads and bulk-memory opcodes) so that immediates are never mistaken for opcodes,
 * then re-encodes function body and section sizes.
 */
import { KernelError } from "../runtime/errors.ts";
import { Reader, uleb } from "../runtime/kernels/wasm-binary.ts";

const CODE_SECTION = 10;
const SWIZZLE = 14;
const RELAXED_SWIZZLE = 256;

/** Byte chunks concatenated at the end (bodies are copied, not pushed byte by byte). */
class Chunks {
  readonly parts: Uint8Array[] = [];
  length = 0;
  add(bytes: Uint8Array | number[]): void {
    const part = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    this.parts.push(part);
    this.length += part.length;
  }
  concat(): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const part of this.parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}

/** A copy of `binary` with relaxed swizzles, or undefined when it has no swizzle to rewrite. */
export function relaxedSwizzleBinary(binary: Uint8Array): Uint8Array<ArrayBuffer> | undefined {
  const r = new Reader(binary);
  r.skip(8);
  const out = new Chunks();
  out.add(binary.subarray(0, 8));
  let rewritten = 0;
  while (r.p < binary.length) {
    const id = r.byte();
    const size = r.u32();
    const start = r.p;
    if (id !== CODE_SECTION) {
      out.add([id, ...uleb(size)]);
      out.add(binary.subarray(start, start + size));
      r.p = start + size;
      continue;
    }
    const section = new Chunks();
    const count = r.u32();
    section.add(uleb(count));
    for (let f = 0; f < count; f++) {
      const bodySize = r.u32();
      const bodyEnd = r.p + bodySize;
      const body = new Chunks();
      let copied = r.p;
      const locals = r.u32();
      for (let i = 0; i < locals; i++) {
        r.u32();
        r.byte();
      }
      while (r.p < bodyEnd) {
        const at = r.p;
        if (skipInstruction(r)) {
          body.add(binary.subarray(copied, at));
          body.add([0xfd, ...uleb(RELAXED_SWIZZLE)]);
          copied = r.p;
          rewritten++;
        }
      }
      if (r.p !== bodyEnd) throw new KernelError(`kernel binary: function ${f} body does not end where its size says`);
      body.add(binary.subarray(copied, bodyEnd));
      section.add(uleb(body.length));
      section.add(body.concat());
    }
    out.add([id, ...uleb(section.length)]);
    out.add(section.concat());
    r.p = start + size;
  }
  return rewritten > 0 ? out.concat() : undefined;
}

/** Skips one instruction; returns true when it was i8x16.swizzle. */
function skipInstruction(r: Reader): boolean {
  const op = r.byte();
  if (op === 0x02 || op === 0x03 || op === 0x04) {
    blockType(r);
  } else if (op === 0x0c || op === 0x0d || op === 0x10 || (op >= 0x20 && op <= 0x24) || op === 0x25 || op === 0x26) {
    r.u32(); // label, function, local, global or table index
  } else if (op === 0x0e) {
    const n = r.u32();
    for (let i = 0; i <= n; i++) r.u32();
  } else if (op === 0x11) {
    r.u32();
    r.u32();
  } else if (op === 0x1c) {
    const n = r.u32();
    for (let i = 0; i < n; i++) r.byte();
  } else if (op >= 0x28 && op <= 0x3e) {
    r.u32(); // memarg: align, offset
    r.u32();
  } else if (op === 0x3f || op === 0x40) {
    r.byte();
  } else if (op === 0x41 || op === 0x42) {
    r.sleb();
  } else if (op === 0x43) {
    r.skip(4);
  } else if (op === 0x44) {
    r.skip(8);
  } else if (op === 0xd0) {
    r.byte();
  } else if (op === 0xd2) {
    r.u32();
  } else if (op === 0xfc) {
    miscInstruction(r);
  } else if (op === 0xfd) {
    return simdInstruction(r);
  } else if (op === 0xfe) {
    const sub = r.u32();
    if (sub === 0x03) r.byte(); // atomic.fence
    else {
      r.u32();
      r.u32();
    }
  }
  // Everything else (control without immediates, numeric, parametric) has no immediates.
  return false;
}

function blockType(r: Reader): void {
  const b = r.bytes[r.p];
  if (b === 0x40 || (b >= 0x7b && b <= 0x7f) || b === 0x70 || b === 0x6f) r.skip(1);
  else r.sleb(); // type index as s33
}

function miscInstruction(r: Reader): void {
  const sub = r.u32();
  if (sub <= 7) return; // saturating truncations
  if (sub === 8) { // memory.init
    r.u32();
    r.byte();
  } else if (sub === 9 || sub === 13 || sub === 15 || sub === 16 || sub === 17) r.u32(); // data.drop, elem.drop, table.grow/size/fill
  else if (sub === 10 || sub === 12 || sub === 14) { // memory.copy, table.init, table.copy
    if (sub === 10) r.skip(2);
    else {
      r.u32();
      r.u32();
    }
  } else if (sub === 11) r.byte(); // memory.fill
  else throw new KernelError(`kernel binary: unknown 0xFC ${sub} instruction; the relaxed rewrite does not know it`);
}

function simdInstruction(r: Reader): boolean {
  const sub = r.u32();
  if (sub <= 11 || sub === 92 || sub === 93) {
    r.u32(); // memarg of loads, stores, load_splat/extend/zero
    r.u32();
  } else if (sub === 12 || sub === 13) r.skip(16); // v128.const, i8x16.shuffle
  else if (sub >= 21 && sub <= 34) r.skip(1); // extract/replace lane
  else if (sub >= 84 && sub <= 91) { // load/store lane: memarg + lane
    r.u32();
    r.u32();
    r.skip(1);
  }
  return sub === SWIZZLE;
}
