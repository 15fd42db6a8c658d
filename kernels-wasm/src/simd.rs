//! SIMD primitives whose best instruction depends on the build (build.sh makes a relaxed-SIMD
//! binary and a baseline SIMD128 one from the same source). Each primitive is specified so
//! that both builds give identical results for the inputs the kernels pass.
use core::arch::wasm32::*;

/// 16 table lookups: byte i of the result is byte `idx[i]` of `table`. Callers keep every
/// index in 0..15, where the relaxed swizzle (one PSHUFB on x86, TBL on ARM64) and the plain
/// one (which must return 0 for indices >= 16, an extra saturating add on x86) agree.
#[inline(always)]
pub fn lookup16(table: v128, idx: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        i8x16_relaxed_swizzle(table, idx)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        i8x16_swizzle(table, idx)
    }
}

/// Exact f32 of i32 lanes with |v| < 2^22: 1.5*2^23 + v, read as f32, minus 1.5*2^23.
/// (Written out because LLVM turns sign-extend + f32x4.convert into per-lane scalar code.)
#[inline(always)]
pub fn small_i32x4_to_f32(v: v128) -> v128 {
    f32x4_sub(i32x4_add(v, i32x4_splat(0x4B40_0000)), f32x4_splat(12582912.0))
}
