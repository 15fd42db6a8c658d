/**
 * llama.cpp's own ggml as a test oracle: the prebuilt libggml-base that the node-llama-cpp
 * dev dependency ships, called through bun:ffi. It exports ggml's reference
 * dequantize_row_<type> for every block type and ggml_quantize_chunk (llama-quantize's
 * per-tensor quantiser), so the importer's decoders can be compared with ggml bit for bit on
 * blocks ggml itself produced. Available on Bun under Linux x64/arm64 with the package installed.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ggmlTypeByName } from "../../runtime/import/gguf-types.ts";

export interface GgmlNative {
  /** ggml's dequantize_row_<type> on whole blocks. */
  dequantize(type: string, bytes: Uint8Array, numel: number): Float32Array;
  /** ggml_quantize_chunk: (rows, cols) fp32 → blocks of `type` (imatrix of ones where one is required). */
  quantize(type: string, x: Float32Array, rows: number, cols: number, bytesPerRow: number): Uint8Array;
}

/** Where the library should be on this platform, or undefined when the platform has none. */
export function ggmlLibraryPath(): string | undefined {
  if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64")) return undefined;
  const dir = `linux-${process.arch}`;
  return fileURLToPath(new URL(`../../node_modules/@node-llama-cpp/${dir}/bins/${dir}/libggml-base.so`, import.meta.url));
}

/** True when the oracle is expected here (Bun on a platform node-llama-cpp ships a CPU build for). */
export function ggmlNativeExpected(): boolean {
  const path = ggmlLibraryPath();
  return "Bun" in globalThis && path !== undefined && existsSync(path);
}

export async function loadGgmlNative(): Promise<GgmlNative> {
  const path = ggmlLibraryPath();
  if (path === undefined) throw new Error(`no prebuilt ggml for ${process.platform}-${process.arch}`);
  const { dlopen, FFIType, ptr } = await import("bun:ffi");
  const row = { args: [FFIType.ptr, FFIType.ptr, FFIType.i64], returns: FFIType.void } as const;
  const names = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_K", "iq2_xxs", "iq2_xs", "iq2_s",
    "iq3_xxs", "iq3_s", "iq1_s", "iq1_m", "iq4_nl", "iq4_xs", "tq1_0", "tq2_0"];
  const lib = dlopen(path, {
    ...Object.fromEntries(names.map((n) => [`dequantize_row_${n}`, row])),
    ggml_quantize_init: { args: [FFIType.i32], returns: FFIType.void },
    ggml_quantize_chunk: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr, FFIType.i64, FFIType.i64, FFIType.i64, FFIType.ptr], returns: FFIType.u64 },
  });
  const symbols = lib.symbols as unknown as Record<string, (...args: unknown[]) => unknown>;
  const fn = (type: string) => {
    const name = `dequantize_row_${type.toLowerCase().replace(/_k$/, "_K")}`;
    const f = symbols[name];
    if (f === undefined) throw new Error(`${path} has no ${name}`);
    return f;
  };
  return {
    dequantize(type, bytes, numel) {
      const out = new Float32Array(numel);
      fn(type)(ptr(bytes), ptr(out), numel);
      return out;
    },
    quantize(type, x, rows, cols, bytesPerRow) {
      const id = ggmlTypeByName(type)!.id;
      const out = new Uint8Array(rows * bytesPerRow);
      const importance = new Float32Array(cols).fill(1);
      symbols.ggml_quantize_init!(id);
      const written = Number(symbols.ggml_quantize_chunk!(id, ptr(x), ptr(out), 0, rows, cols, ptr(importance)));
      if (written !== out.length) throw new Error(`ggml_quantize_chunk(${type}) wrote ${written} bytes, expected ${out.length}`);
      return out;
    },
  };
}
