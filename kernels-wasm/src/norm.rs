//! RMSNorm and LayerNorm over rows of f32, SIMD128.
//!
//! RMSNorm follows Hugging Face `LlamaRMSNorm` in f32: y = (x · 1/sqrt(mean(x²) + eps)) · w
//! (Zhang & Sennrich 2019). LayerNorm follows `torch.nn.LayerNorm`: y = (x − μ)/sqrt(σ² + eps)·w + b
//! with the biased variance, computed in two passes (Ba et al. 2016).
//! Sums run over four SIMD lanes in blocks (see `blocked_sum`), so they differ from an exact sum
//! by a few hundred f32 ulp at most, less than torch's own f32 reductions vary between devices.
use crate::vmath::*;
use core::arch::wasm32::*;

/// Σ f(x[i..i+4]) over n floats, the tail padded with `fill`. Blocked: each lane sums at most
/// BLOCK/4 terms before the block is added to the total, so the rounding error grows like
/// (BLOCK/4 + n/BLOCK)·ε rather than n/4·ε.
#[inline(always)]
unsafe fn blocked_sum(x: *const f32, n: usize, fill: f32, f: impl Fn(v128) -> v128) -> f32 {
    const BLOCK: usize = 128;
    let body = n & !3;
    let mut total = f32x4_splat(0.0);
    let mut i = 0;
    while i < body {
        let end = body.min(i + BLOCK);
        let mut acc = f32x4_splat(0.0);
        while i < end {
            acc = f32x4_add(acc, f(load(x.add(i))));
            i += 4;
        }
        total = f32x4_add(total, acc);
    }
    if body < n {
        total = f32x4_add(total, f(load_partial(x.add(body), n - body, fill)));
    }
    hsum(total)
}

/// Σ x[i]² over n floats.
#[inline(always)]
unsafe fn sum_squares(x: *const f32, n: usize) -> f32 {
    blocked_sum(x, n, 0.0, |v| f32x4_mul(v, v))
}

/// Σ x[i] over n floats.
#[inline(always)]
unsafe fn sum(x: *const f32, n: usize) -> f32 {
    blocked_sum(x, n, 0.0, |v| v)
}

/// Σ (x[i] − mean)² over n floats (the tail is padded with the mean, contributing 0).
#[inline(always)]
unsafe fn sum_sq_dev(x: *const f32, n: usize, mean: f32) -> f32 {
    let m = f32x4_splat(mean);
    blocked_sum(x, n, mean, |v| {
        let d = f32x4_sub(v, m);
        f32x4_mul(d, d)
    })
}

/// RMSNorm of `rows` rows of n floats: x (rows, n), weight (n) or null, out (rows, n), may alias x.
#[no_mangle]
pub unsafe extern "C" fn rmsnorm_f32(x: *const f32, weight: *const f32, out: *mut f32, rows: u32, n: u32, eps: f32) {
    let n = n as usize;
    for r in 0..rows as usize {
        let xr = x.add(r * n);
        let or = out.add(r * n);
        let inv = f32x4_splat(1.0 / sqrt(sum_squares(xr, n) / n as f32 + eps));
        if weight.is_null() {
            map1(xr, or, n, |v| f32x4_mul(v, inv));
        } else {
            map2(xr, weight, or, n, |v, w| f32x4_mul(f32x4_mul(v, inv), w));
        }
    }
}

/// LayerNorm of `rows` rows of n floats: x (rows, n), weight (n) or null, bias (n) or null,
/// out (rows, n), may alias x.
#[no_mangle]
pub unsafe extern "C" fn layernorm_f32(
    x: *const f32,
    weight: *const f32,
    bias: *const f32,
    out: *mut f32,
    rows: u32,
    n: u32,
    eps: f32,
) {
    let n = n as usize;
    for r in 0..rows as usize {
        let xr = x.add(r * n);
        let or = out.add(r * n);
        let mean = sum(xr, n) / n as f32;
        let inv = 1.0 / sqrt(sum_sq_dev(xr, n, mean) / n as f32 + eps);
        let (m, s) = (f32x4_splat(mean), f32x4_splat(inv));
        if weight.is_null() {
            map1(xr, or, n, |v| f32x4_mul(f32x4_sub(v, m), s));
        } else {
            map2(xr, weight, or, n, |v, w| f32x4_mul(f32x4_mul(f32x4_sub(v, m), s), w));
        }
        if !bias.is_null() {
            map2(or, bias, or, n, |y, b| f32x4_add(y, b));
        }
    }
}
