//! IEEE 754 binary16 ↔ binary32 conversion for the f16 KV cache.
//! f16 → f32 is exact: the 15 magnitude bits shifted into f32 position and multiplied by 2^112
//! rebias the exponent and normalise subnormals in one step; Inf/NaN are patched afterwards.
//! The attention kernels' fast load skips the multiply (and the patch), leaving the 2^112
//! factor to the caller and flagging Inf/NaN instead.
//! f32 → f16 rounds to nearest, ties to even, with overflow to ±Inf and gradual underflow.
//! The weight scales of the matmul kernels are finite by construction (the packers check), so
//! their loads (f16x8_to_f32x4_pair, f16x4_finite_to_f32) skip the Inf/NaN patch.
use core::arch::wasm32::*;

/// Four f16 values (zero-extended in u32 lanes) to f32.
#[inline(always)]
pub fn f16x4_to_f32x4(h: v128) -> v128 {
    let sign = i32x4_shl(v128_and(h, i32x4_splat(0x8000)), 16);
    let mag = v128_and(h, i32x4_splat(0x7fff));
    let shifted = i32x4_shl(mag, 13);
    let scaled = f32x4_mul(shifted, f32x4_splat(5.192_296_9e33)); // 2^112
    let special = v128_or(shifted, i32x4_splat(0x7f80_0000));
    let is_special = i32x4_ge(mag, i32x4_splat(0x7c00));
    v128_or(v128_bitselect(special, scaled, is_special), sign)
}

/// Loads 4 f16 values at p as f32.
#[inline(always)]
pub unsafe fn load_f16x4(p: *const u16) -> v128 {
    f16x4_to_f32x4(u32x4_load_extend_u16x4(p))
}

/// Loads the first `len` (< 4) f16 values at p as f32; other lanes are 0.
#[inline(always)]
pub unsafe fn load_f16_partial(p: *const u16, len: usize) -> v128 {
    let mut buf = [0u16; 4];
    let mut i = 0;
    while i < len {
        buf[i] = *p.add(i);
        i += 1;
    }
    load_f16x4(buf.as_ptr())
}

/// One f32 to f16 bits, round to nearest even.
#[inline(always)]
pub fn f32_to_f16_bits(f: f32) -> u16 {
    let x = f.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let a = x & 0x7fff_ffff;
    if a >= 0x7f80_0000 {
        // Inf stays Inf; NaN keeps its top payload bits and is made quiet.
        let nan = if a > 0x7f80_0000 { 0x0200 | ((a >> 13) & 0x03ff) as u16 } else { 0 };
        return sign | 0x7c00 | nan;
    }
    if a >= 0x477f_f000 {
        return sign | 0x7c00; // ≥ 65520 rounds past the largest f16 (65504)
    }
    if a < 0x3880_0000 {
        // Below 2^-14: subnormal f16. Adding 0.5 puts the value's 2^-24 multiples in the low
        // mantissa bits, and the f32 addition rounds them to nearest even.
        let r = (f32::from_bits(a) + 0.5).to_bits() - 0x3f00_0000;
        return sign | r as u16;
    }
    let odd = (a >> 13) & 1;
    let rebased = a.wrapping_sub(112 << 23).wrapping_add(0x0fff + odd);
    sign | (rebased >> 13) as u16
}

/// dst[i] = f16(src[i]) for n values (src f32, dst u16 bits).
#[no_mangle]
pub unsafe extern "C" fn f32_to_f16(src: *const f32, dst: *mut u16, n: u32) {
    for i in 0..n as usize {
        *dst.add(i) = f32_to_f16_bits(*src.add(i));
    }
}

/// dst[i] = f32(src[i]) for n values (src u16 bits, dst f32).
#[no_mangle]
pub unsafe extern "C" fn f16_to_f32(src: *const u16, dst: *mut f32, n: u32) {
    let n = n as usize;
    let body = n & !3;
    let mut i = 0;
    while i < body {
        v128_store(dst.add(i) as *mut v128, load_f16x4(src.add(i)));
        i += 4;
    }
    if body < n {
        crate::vmath::store_partial(dst.add(body), load_f16_partial(src.add(body), n - body), n - body);
    }
}

/// 2^112: the f16 → f32 exponent rebias as a factor.
pub const TWO_112: f32 = 5.192_296_9e33;

/// 8 f16 values at p as f32 divided by 2^112, exact for finite values: sign-extended into
/// 32-bit lanes and shifted by 13, the 15 magnitude bits sit where f32 keeps them (sign copies
/// in bits 30..28 are masked off), so an f16 exponent e reads as the f32 exponent e, i.e. the
/// value times 2^-112 (f16 subnormals become f32 subnormals, still exact). A caller multiplying
/// by x·2^112 restores the factor: (x·2^112)·(k·2^-112) rounds exactly as x·k. Inf/NaN would
/// read as finite: `flag` keeps the largest magnitude bits seen so the caller can tell.
#[inline(always)]
pub unsafe fn load_f16x8_unscaled(p: *const u16, flag: &mut v128) -> (v128, v128) {
    let a = v128_load(p as *const v128);
    *flag = u16x8_max(*flag, v128_and(a, u16x8_splat(0x7fff)));
    let mask = u32x4_splat(0x8fff_e000);
    let lo = v128_and(i32x4_shl(i32x4_extend_low_i16x8(a), 13), mask);
    let hi = v128_and(i32x4_shl(i32x4_extend_high_i16x8(a), 13), mask);
    (lo, hi)
}

/// The even and odd lanes of 8 f16 values as f32 (finite values, zero and subnormals exact):
/// PMADDWD by (8192, 0) / (0, 8192) sign-extends a lane and shifts it by 13, which puts an
/// f16's 15 magnitude bits where f32 keeps them (the sign copies in bits 30..28 are masked
/// off): that reads as the value times 2^-112, and × 2^112 rebiases the exponent, normalising
/// subnormals. The LUT kernels store scales so that even lanes are rows 0-3 of a half.
/// The constants come from the caller: (8192, 0) and (0, 8192) as i16 pairs, 0x8fffe000 and
/// 2^112 (`even`, `odd`, `mask`, `two112`), so a kernel can keep them in registers.
#[inline(always)]
pub fn f16x8_to_f32x4_pair(v: v128, even: v128, odd: v128, mask: v128, two112: v128) -> [v128; 2] {
    let e = v128_and(i32x4_dot_i16x8(v, even), mask);
    let o = v128_and(i32x4_dot_i16x8(v, odd), mask);
    [f32x4_mul(e, two112), f32x4_mul(o, two112)]
}

/// The even and odd lanes of 8 bfloat16 values as f32 (exact: bf16 is the top half of f32);
/// `mask` = 0xffff0000 from the caller.
#[inline(always)]
pub fn bf16x8_to_f32x4_pair(v: v128, mask: v128) -> [v128; 2] {
    [i32x4_shl(v, 16), v128_and(v, mask)]
}

/// 4 f16 values zero-extended in u32 lanes to f32 (finite values only; see f16x8_to_f32x4_pair).
#[inline(always)]
pub fn f16x4_finite_to_f32(h: v128) -> v128 {
    let mag = i32x4_shl(v128_and(h, u32x4_splat(0x7fff)), 13);
    let val = f32x4_mul(mag, f32x4_splat(5.192_297e33)); // 2^112
    v128_or(val, i32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16))
}
