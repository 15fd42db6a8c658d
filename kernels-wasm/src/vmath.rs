//! SIMD128 helpers shared by the elementwise and attention kernels: loads with zero/fill
//! padding for ragged tails, horizontal reductions (also of 4 vectors at once), and a vector exp.
//!
//! exp: Cody–Waite range reduction x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split into a 9-bit
//! head and a tail so n·ln2_hi is exact), a degree-7 Taylor polynomial for e^r (truncation
//! error < 6e-9 relative, so rounding dominates: ≤ 2 ulp), and 2^n applied as two exponent
//! multiplications so results down to the subnormal range stay correct.
use core::arch::wasm32::*;

/// Loads 4 floats (no alignment needed).
#[inline(always)]
pub unsafe fn load(p: *const f32) -> v128 {
    v128_load(p as *const v128)
}

/// Stores 4 floats (no alignment needed).
#[inline(always)]
pub unsafe fn store(p: *mut f32, v: v128) {
    v128_store(p as *mut v128, v)
}

/// Loads the first `len` (< 4) floats at `p`; the other lanes hold `fill`.
#[inline(always)]
pub unsafe fn load_partial(p: *const f32, len: usize, fill: f32) -> v128 {
    let mut buf = [fill; 4];
    let mut i = 0;
    while i < len {
        buf[i] = *p.add(i);
        i += 1;
    }
    load(buf.as_ptr())
}

/// Loads the first `n` (≤ 4) floats at `p`; other lanes are 0.
#[inline(always)]
pub unsafe fn load_upto(p: *const f32, n: usize) -> v128 {
    if n == 4 {
        load(p)
    } else {
        load_partial(p, n, 0.0)
    }
}

/// Stores the first `len` (< 4) lanes of `v` at `p`.
#[inline(always)]
pub unsafe fn store_partial(p: *mut f32, v: v128, len: usize) {
    let mut buf = [0f32; 4];
    store(buf.as_mut_ptr(), v);
    let mut i = 0;
    while i < len {
        *p.add(i) = buf[i];
        i += 1;
    }
}

#[inline(always)]
pub fn hsum(v: v128) -> f32 {
    (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
        + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
}

/// Lane-wise sums of 4 vectors: [Σa0, Σa1, Σa2, Σa3], each as (l0 + l2) + (l1 + l3).
#[inline(always)]
pub fn transpose_add(a: &[v128; 4]) -> v128 {
    let t0 = f32x4_add(i32x4_shuffle::<0, 4, 1, 5>(a[0], a[1]), i32x4_shuffle::<2, 6, 3, 7>(a[0], a[1]));
    let t1 = f32x4_add(i32x4_shuffle::<0, 4, 1, 5>(a[2], a[3]), i32x4_shuffle::<2, 6, 3, 7>(a[2], a[3]));
    f32x4_add(i32x4_shuffle::<0, 1, 4, 5>(t0, t1), i32x4_shuffle::<2, 3, 6, 7>(t0, t1))
}

#[inline(always)]
pub fn hmax(v: v128) -> f32 {
    let a = f32x4_extract_lane::<0>(v).max(f32x4_extract_lane::<1>(v));
    let b = f32x4_extract_lane::<2>(v).max(f32x4_extract_lane::<3>(v));
    a.max(b)
}

/// Scalar square root through the vector instruction (core has no f32::sqrt in no_std).
#[inline(always)]
pub fn sqrt(x: f32) -> f32 {
    f32x4_extract_lane::<0>(f32x4_sqrt(f32x4_splat(x)))
}

/// e^x per lane. Overflows to +inf above ln(f32::MAX), underflows to 0 below -104, NaN stays NaN.
#[inline(always)]
pub fn exp(x: v128) -> v128 {
    const LOG2E: f32 = 1.442_695_04;
    const LN2_HI: f32 = 0.693_359_375; // 355/512: n·LN2_HI is exact for |n| < 2^15
    const LN2_LO: f32 = -2.121_944_4e-4; // ln2 − LN2_HI
    const MAX_X: f32 = 88.722_84; // ln(f32::MAX)
    let xc = f32x4_max(f32x4_min(x, f32x4_splat(MAX_X)), f32x4_splat(-104.0));
    let nf = f32x4_nearest(f32x4_mul(xc, f32x4_splat(LOG2E)));
    let r = f32x4_sub(f32x4_sub(xc, f32x4_mul(nf, f32x4_splat(LN2_HI))), f32x4_mul(nf, f32x4_splat(LN2_LO)));
    // Taylor series of e^r to degree 7, Horner form.
    let mut p = f32x4_splat(1.0 / 5040.0);
    p = f32x4_add(f32x4_mul(p, r), f32x4_splat(1.0 / 720.0));
    p = f32x4_add(f32x4_mul(p, r), f32x4_splat(1.0 / 120.0));
    p = f32x4_add(f32x4_mul(p, r), f32x4_splat(1.0 / 24.0));
    p = f32x4_add(f32x4_mul(p, r), f32x4_splat(1.0 / 6.0));
    p = f32x4_add(f32x4_mul(p, r), f32x4_splat(0.5));
    p = f32x4_add(f32x4_mul(p, r), f32x4_splat(1.0));
    p = f32x4_add(f32x4_mul(p, r), f32x4_splat(1.0));
    // 2^n as 2^n1 · 2^n2 with n1 = n >> 1: both factors stay normal for n in [-150, 128].
    let n = i32x4_trunc_sat_f32x4(nf);
    let n1 = i32x4_shr(n, 1);
    let n2 = i32x4_sub(n, n1);
    let s1 = i32x4_shl(i32x4_add(n1, i32x4_splat(127)), 23);
    let s2 = i32x4_shl(i32x4_add(n2, i32x4_splat(127)), 23);
    let y = f32x4_mul(f32x4_mul(p, s1), s2);
    // Above MAX_X the clamp would give f32::MAX-ish; make it +inf as IEEE exp does.
    v128_bitselect(f32x4_splat(f32::INFINITY), y, f32x4_gt(x, f32x4_splat(MAX_X)))
}

/// 1 / (1 + e^-x) per lane.
#[inline(always)]
pub fn sigmoid(x: v128) -> v128 {
    let one = f32x4_splat(1.0);
    f32x4_div(one, f32x4_add(one, exp(f32x4_neg(x))))
}

/// Applies `f` to n floats from `x` into `out` (which may alias `x`).
#[inline(always)]
pub unsafe fn map1(x: *const f32, out: *mut f32, n: usize, f: impl Fn(v128) -> v128) {
    let body = n & !3;
    let mut i = 0;
    while i < body {
        store(out.add(i), f(load(x.add(i))));
        i += 4;
    }
    if body < n {
        store_partial(out.add(body), f(load_partial(x.add(body), n - body, 0.0)), n - body);
    }
}

/// Applies `f` lane-wise to n pairs from `a` and `b` into `out` (which may alias either).
#[inline(always)]
pub unsafe fn map2(a: *const f32, b: *const f32, out: *mut f32, n: usize, f: impl Fn(v128, v128) -> v128) {
    let body = n & !3;
    let mut i = 0;
    while i < body {
        store(out.add(i), f(load(a.add(i)), load(b.add(i))));
        i += 4;
    }
    if body < n {
        let rest = n - body;
        let v = f(load_partial(a.add(body), rest, 0.0), load_partial(b.add(body), rest, 0.0));
        store_partial(out.add(body), v, rest);
    }
}

/// Numerically stable softmax of n floats in place: subtract the max, exponentiate, normalise.
#[inline(always)]
pub unsafe fn softmax_in_place(x: *mut f32, n: usize) {
    let body = n & !3;
    let mut vmax = f32x4_splat(f32::NEG_INFINITY);
    let mut i = 0;
    while i < body {
        vmax = f32x4_max(vmax, load(x.add(i)));
        i += 4;
    }
    if body < n {
        vmax = f32x4_max(vmax, load_partial(x.add(body), n - body, f32::NEG_INFINITY));
    }
    let m = f32x4_splat(hmax(vmax));
    let mut sum = f32x4_splat(0.0);
    i = 0;
    while i < body {
        let e = exp(f32x4_sub(load(x.add(i)), m));
        store(x.add(i), e);
        sum = f32x4_add(sum, e);
        i += 4;
    }
    if body < n {
        let rest = n - body;
        let e = exp(f32x4_sub(load_partial(x.add(body), rest, f32::NEG_INFINITY), m));
        store_partial(x.add(body), e, rest);
        sum = f32x4_add(sum, e);
    }
    let inv = f32x4_splat(1.0 / hsum(sum));
    map1(x, x, n, |v| f32x4_mul(v, inv));
}
