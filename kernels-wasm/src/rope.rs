//! Rotary position embedding (Su et al. 2021) in the Hugging Face Llama/Qwen "rotate-half"
//! convention: within the first `rot_dim` dims of each head, dim i pairs with i + rot_dim/2:
//!   y[i]        = x[i]·cos θ_i − x[i+half]·sin θ_i
//!   y[i + half] = x[i+half]·cos θ_i + x[i]·sin θ_i,   θ_i = pos · inv_freq[i] (rounded to f32),
//! dims from rot_dim to head_dim pass through (partial rotary, as GPT-NeoX/Phi do).
//! Scaling schemes (llama3, YaRN, linear) only change inv_freq and a cos/sin factor, so the
//! caller passes inv_freq; `rope_table_f32` turns it into a per-position cos/sin table.
//! sin/cos are evaluated in f64 (reduction by π/2, Taylor series to degree 16 on [−π/4, π/4])
//! and rounded to f32, which matches torch's f32 sin/cos to within 1 ulp.
use crate::vmath::*;
use core::arch::wasm32::*;

const FRAC_PI_2: f64 = 1.570_796_326_794_896_6;

/// (sin r, cos r) for |r| ≤ π/4 by Taylor series (truncation error < 1e-16).
fn sincos_reduced(r: f64) -> (f64, f64) {
    let r2 = r * r;
    let mut s = 0.0;
    let mut c = 0.0;
    // Horner in r²: sin r = r·Σ (−r²)^k/(2k+1)!, cos r = Σ (−r²)^k/(2k)!, k = 0..8.
    let mut k = 8;
    loop {
        let fs = factorial(2 * k + 1);
        let fc = factorial(2 * k);
        let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
        s = s * r2 + sign / fs;
        c = c * r2 + sign / fc;
        if k == 0 {
            break;
        }
        k -= 1;
    }
    (r * s, c)
}

fn factorial(n: u32) -> f64 {
    let mut f = 1.0;
    let mut i = 2;
    while i <= n {
        f *= i as f64;
        i += 1;
    }
    f
}

/// (sin θ, cos θ) in f64 for any finite θ of moderate size (|θ| < 2^40).
fn sincos(theta: f64) -> (f64, f64) {
    let v = theta / FRAC_PI_2;
    let k = if v >= 0.0 { (v + 0.5) as i64 } else { (v - 0.5) as i64 };
    let r = theta - k as f64 * FRAC_PI_2;
    let (s, c) = sincos_reduced(r);
    match k & 3 {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

/// Writes the cos/sin table for positions pos0 .. pos0+n_tokens: table (n_tokens, 2·half) holds
/// [factor·cos θ_0 .. factor·cos θ_{half−1}, factor·sin θ_0 .. factor·sin θ_{half−1}] per position,
/// θ_i = f32(pos · inv_freq[i]). `factor` is the attention scaling of YaRN-style RoPE (1 otherwise).
#[no_mangle]
pub unsafe extern "C" fn rope_table_f32(inv_freq: *const f32, half: u32, pos0: u32, n_tokens: u32, factor: f32, table: *mut f32) {
    let half = half as usize;
    for t in 0..n_tokens as usize {
        let pos = (pos0 as usize + t) as f32;
        let row = table.add(t * 2 * half);
        for i in 0..half {
            let theta = pos * *inv_freq.add(i);
            let (s, c) = sincos(theta as f64);
            *row.add(i) = (c as f32) * factor;
            *row.add(half + i) = (s as f32) * factor;
        }
    }
}

/// Rotates x (n_tokens, n_heads, head_dim) in place with table (n_tokens, rot_dim) from
/// `rope_table_f32` (half = rot_dim/2); rot_dim is even and ≤ head_dim.
#[no_mangle]
pub unsafe extern "C" fn rope_f32(x: *mut f32, table: *const f32, n_tokens: u32, n_heads: u32, head_dim: u32, rot_dim: u32) {
    let (head_dim, half) = (head_dim as usize, rot_dim as usize / 2);
    for t in 0..n_tokens as usize {
        let cos = table.add(t * 2 * half);
        let sin = cos.add(half);
        for h in 0..n_heads as usize {
            let lo = x.add((t * n_heads as usize + h) * head_dim);
            let hi = lo.add(half);
            let mut i = 0;
            while i < half {
                let rest = half - i;
                let (a, b, c, s) = if rest >= 4 {
                    (load(lo.add(i)), load(hi.add(i)), load(cos.add(i)), load(sin.add(i)))
                } else {
                    (
                        load_partial(lo.add(i), rest, 0.0),
                        load_partial(hi.add(i), rest, 0.0),
                        load_partial(cos.add(i), rest, 0.0),
                        load_partial(sin.add(i), rest, 0.0),
                    )
                };
                let ya = f32x4_sub(f32x4_mul(a, c), f32x4_mul(b, s));
                let yb = f32x4_add(f32x4_mul(b, c), f32x4_mul(a, s));
                if rest >= 4 {
                    store(lo.add(i), ya);
                    store(hi.add(i), yb);
                } else {
                    store_partial(lo.add(i), ya, rest);
                    store_partial(hi.add(i), yb, rest);
                }
                i += 4;
            }
        }
    }
}
