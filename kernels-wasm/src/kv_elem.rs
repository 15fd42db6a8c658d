//! Element types of a KV cache as the attention kernels read them (attention.rs,
//! attention_tokens.rs): f32, and f16 with a fast in-register conversion that flags Inf/NaN
//! or an exact one for the redo.
use crate::f16::{f16x4_to_f32x4, load_f16_partial, load_f16x8_unscaled, TWO_112};
use crate::vmath::{load, load_upto};
use core::arch::wasm32::*;

/// Element type of the cache: loads of 8 (and ≤ 4, zero-padded) values as f32, divided by
/// UNSCALE (a power of two the caller folds into q and p instead).
pub(crate) trait KvElem: Sized {
    /// The same cache read with exact conversion: the redo when a fast load flags Inf/NaN.
    type Exact: KvElem;
    /// True when `load8` may mishandle Inf/NaN and records them in its flag instead.
    const FLAGS: bool;
    const UNSCALE: f32;
    unsafe fn load8(p: *const Self, flag: &mut v128) -> (v128, v128);
    unsafe fn load_n(p: *const Self, n: usize) -> v128;
}

impl KvElem for f32 {
    type Exact = f32;
    const FLAGS: bool = false;
    const UNSCALE: f32 = 1.0;
    #[inline(always)]
    unsafe fn load8(p: *const f32, _flag: &mut v128) -> (v128, v128) {
        (load(p), load(p.add(4)))
    }
    #[inline(always)]
    unsafe fn load_n(p: *const f32, n: usize) -> v128 {
        load_upto(p, n)
    }
}

/// f16 cache, fast conversion: exact for finite values; Inf/NaN lanes set the flag.
/// (The field is the stored f16 bits, only ever read through pointer casts.)
#[derive(Clone, Copy)]
#[allow(dead_code)]
pub(crate) struct F16Fast(u16);
/// f16 cache, exact conversion of every value (the fallback for blocks holding Inf/NaN).
#[derive(Clone, Copy)]
#[allow(dead_code)]
pub(crate) struct F16Exact(u16);

impl KvElem for F16Fast {
    type Exact = F16Exact;
    const FLAGS: bool = true;
    const UNSCALE: f32 = TWO_112;
    #[inline(always)]
    unsafe fn load8(p: *const F16Fast, flag: &mut v128) -> (v128, v128) {
        load_f16x8_unscaled(p as *const u16, flag)
    }
    #[inline(always)]
    unsafe fn load_n(p: *const F16Fast, n: usize) -> v128 {
        f32x4_mul(load_f16_partial(p as *const u16, n), f32x4_splat(1.0 / TWO_112)) // exact
    }
}

impl KvElem for F16Exact {
    type Exact = F16Exact;
    const FLAGS: bool = false;
    const UNSCALE: f32 = 1.0;
    #[inline(always)]
    unsafe fn load8(p: *const F16Exact, _flag: &mut v128) -> (v128, v128) {
        let a = v128_load(p as *const v128);
        (f16x4_to_f32x4(u32x4_extend_low_u16x8(a)), f16x4_to_f32x4(u32x4_extend_high_u16x8(a)))
    }
    #[inline(always)]
    unsafe fn load_n(p: *const F16Exact, n: usize) -> v128 {
        load_f16_partial(p as *const u16, n)
    }
}

/// True when a flag (max of f16 magnitudes) saw an Inf or NaN.
#[inline(always)]
pub(crate) fn flagged(flag: v128) -> bool {
    u16x8_bitmask(u16x8_gt(flag, u16x8_splat(0x7bff))) != 0
}
