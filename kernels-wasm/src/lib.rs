//! crumb kernels: plain `extern "C"` exports over raw pointers into one (shared) linear
//! memory, compiled to wasm32 with SIMD128. Each module below owns a family of exports;
//! every export has a TypeScript twin in runtime/kernels/reference/ and a parity test.
#![no_std]

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

mod probe;
mod simd;
mod activation;
mod attention;
mod attention_tokens;
mod kv_elem;
mod f16;
mod norm;
mod rope;
mod softmax;
mod vmath;
mod dense;
mod gemm;
mod lut_sums;
mod lut;
mod q8dot;
// The benchmark's measuring sticks (dequantise-then-dot GEMV, streaming read) live beside the
// benchmark and are compiled only into its own binary (pkg/crumb_kernels_bench.wasm).
#[cfg(feature = "bench")]
#[path = "../../bench/baseline/baseline.rs"]
mod baseline;
mod kv_dequant;
mod checksum;
mod rows;
