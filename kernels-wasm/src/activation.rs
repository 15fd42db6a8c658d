//! Activations and elementwise combinations over f32 vectors, SIMD128. `out` may alias inputs.
//!
//! SiLU (Elfwing et al. 2018): x·σ(x). GELU (Hendrycks & Gimpel 2016) in both forms used by
//! Hugging Face: `gelu_tanh` ("gelu_pytorch_tanh"/"gelu_new"), 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))),
//! evaluated through the identity 0.5(1 + tanh u) = σ(2u); and `gelu_erf` ("gelu"), 0.5x(1 + erf(x/√2)),
//! with erfc from Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7), evaluated as erfc for negative
//! arguments to avoid cancellation. relu² (So et al. 2021, BitNet b1.58): max(x, 0)².
//! Gated forms (Shazeer 2020): act(gate) · up, e.g. SwiGLU = silu(gate) · up.
use crate::vmath::*;
use core::arch::wasm32::*;

#[inline(always)]
fn silu(x: v128) -> v128 {
    f32x4_mul(x, sigmoid(x))
}

#[inline(always)]
fn gelu_tanh(x: v128) -> v128 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let x3 = f32x4_mul(f32x4_mul(x, x), x);
    let u = f32x4_mul(f32x4_splat(SQRT_2_OVER_PI), f32x4_add(x, f32x4_mul(f32x4_splat(0.044_715), x3)));
    f32x4_mul(x, sigmoid(f32x4_add(u, u)))
}

/// erfc(|z|) for every lane (A&S 7.1.26: t = 1/(1 + p|z|), erfc = t·poly(t)·e^{−z²}).
#[inline(always)]
fn erfc_abs(z: v128) -> v128 {
    let a = f32x4_abs(z);
    let one = f32x4_splat(1.0);
    let t = f32x4_div(one, f32x4_add(one, f32x4_mul(f32x4_splat(0.327_591_1), a)));
    let mut p = f32x4_splat(1.061_405_429);
    p = f32x4_add(f32x4_mul(p, t), f32x4_splat(-1.453_152_027));
    p = f32x4_add(f32x4_mul(p, t), f32x4_splat(1.421_413_741));
    p = f32x4_add(f32x4_mul(p, t), f32x4_splat(-0.284_496_736));
    p = f32x4_add(f32x4_mul(p, t), f32x4_splat(0.254_829_592));
    p = f32x4_mul(p, t);
    f32x4_mul(p, exp(f32x4_neg(f32x4_mul(a, a))))
}

#[inline(always)]
fn gelu_erf(x: v128) -> v128 {
    const FRAC_1_SQRT_2: f32 = 0.707_106_77;
    let c = erfc_abs(f32x4_mul(x, f32x4_splat(FRAC_1_SQRT_2)));
    // 1 + erf(z) = 2 − erfc(z) for z ≥ 0 and erfc(−z) for z < 0.
    let one_plus_erf = v128_bitselect(c, f32x4_sub(f32x4_splat(2.0), c), f32x4_lt(x, f32x4_splat(0.0)));
    f32x4_mul(f32x4_mul(f32x4_splat(0.5), x), one_plus_erf)
}

#[inline(always)]
fn relu2(x: v128) -> v128 {
    let r = f32x4_max(x, f32x4_splat(0.0));
    f32x4_mul(r, r)
}

macro_rules! unary {
    ($name:ident, $f:ident) => {
        /// out[i] = act(x[i]) for n floats.
        #[no_mangle]
        pub unsafe extern "C" fn $name(x: *const f32, out: *mut f32, n: u32) {
            map1(x, out, n as usize, $f);
        }
    };
}

macro_rules! gated {
    ($name:ident, $f:ident) => {
        /// out[i] = act(gate[i]) · up[i] for n floats.
        #[no_mangle]
        pub unsafe extern "C" fn $name(gate: *const f32, up: *const f32, out: *mut f32, n: u32) {
            map2(gate, up, out, n as usize, |g, u| f32x4_mul($f(g), u));
        }
    };
}

unary!(silu_f32, silu);
unary!(gelu_tanh_f32, gelu_tanh);
unary!(gelu_erf_f32, gelu_erf);
unary!(relu2_f32, relu2);
gated!(silu_mul_f32, silu);
gated!(gelu_tanh_mul_f32, gelu_tanh);
gated!(gelu_erf_mul_f32, gelu_erf);
gated!(relu2_mul_f32, relu2);

/// out[i] = a[i] + b[i] for n floats (residual add).
#[no_mangle]
pub unsafe extern "C" fn add_f32(a: *const f32, b: *const f32, out: *mut f32, n: u32) {
    map2(a, b, out, n as usize, |x, y| f32x4_add(x, y));
}

/// out[i] = a[i] · b[i] for n floats.
#[no_mangle]
pub unsafe extern "C" fn mul_f32(a: *const f32, b: *const f32, out: *mut f32, n: u32) {
    map2(a, b, out, n as usize, |x, y| f32x4_mul(x, y));
}

/// out[i] = x[i] · s for n floats.
#[no_mangle]
pub unsafe extern "C" fn scale_f32(x: *const f32, s: f32, out: *mut f32, n: u32) {
    let sv = f32x4_splat(s);
    map1(x, out, n as usize, |v| f32x4_mul(v, sv));
}
