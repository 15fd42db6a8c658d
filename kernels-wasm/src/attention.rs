//! Attention of one query token (decode) against a layer's KV cache, f32 or f16 cache, SIMD128;
//! the prefill block's kernel (attention_tokens.rs) reuses the pieces marked pub(crate).
//!
//! Scaled dot-product attention (Vaswani et al. 2017) with grouped-query heads (Ainslie et al.
//! 2023): query head h reads KV head h / (n_heads / n_kv_heads). For each head:
//!   s[t] = scale · q_h · k[t, kvh]  for t < kv_len (causal: the cache holds positions 0..pos),
//!   p = softmax(s),  out_h = Σ_t p[t] · v[t, kvh].
//! Cache layout per layer: k, v (seq_len, n_kv_heads, head_dim); only the first kv_len rows are
//! read. Heads [head_begin, head_end) are computed, so a worker pool can split heads; the
//! query heads sharing a KV head are processed together (up to 4) so each K/V row load and
//! f16 conversion serves several heads. Every head's arithmetic is the same whatever the head
//! range and batching, so a split run gives bit-identical results.
//!
//! Scores take 4 positions at a time (2 when 3-4 heads share the rows): the dot products
//! accumulate lane-wise in registers and one transpose-add reduces 4 of them together. Values
//! walk the positions per column chunk, keeping that chunk of each head's output in registers.
//! f16 rows are converted in registers (load_f16x8_unscaled in f16.rs) with the 2^112 rebias folded into the
//! prescaled q and p; a KV head whose rows hold Inf/NaN, which that conversion does not handle,
//! (or a query too large to prescale) is recomputed with the exact converter, so results match
//! the exact decode everywhere.
use crate::kv_elem::{flagged, F16Fast, KvElem};
use crate::vmath::*;
use core::arch::wasm32::*;

/// Largest head_dim the kernels accept (the TypeScript wrapper enforces it).
pub const MAX_HEAD_DIM: usize = 512;

/// Scores of H query heads (q rows head_dim apart, scratch rows s_stride apart) against
/// positions [0, kv_len) of one KV head (k rows `row` elements apart), P positions at a time
/// (P = 4, or 2 with H ≤ 4: H·P ≤ 8 accumulators). Returns the flag. Every score's sum has
/// the same order whatever H and P: lane-wise over the columns, then (l0 + l2) + (l1 + l3).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn scores<T: KvElem, const H: usize, const P: usize>(
    q: *const f32,
    k: *const T,
    row: usize,
    d: usize,
    kv_len: usize,
    scale: f32,
    s: *mut f32,
    s_stride: usize,
) -> v128 {
    let mut flag = u16x8_splat(0);
    let body = d & !7;
    let sc = f32x4_splat(scale);
    let mut t = 0;
    while t + P <= kv_len {
        let mut acc = [[f32x4_splat(0.0); P]; H];
        let mut i = 0;
        while i < body {
            for j in 0..P {
                let (k0, k1) = T::load8(k.add((t + j) * row + i), &mut flag);
                for h in 0..H {
                    let qh = q.add(h * d + i);
                    let m = f32x4_add(f32x4_mul(load(qh), k0), f32x4_mul(load(qh.add(4)), k1));
                    acc[h][j] = f32x4_add(acc[h][j], m);
                }
            }
            i += 8;
        }
        while i < d {
            let n = if d - i < 4 { d - i } else { 4 };
            for j in 0..P {
                let kj = T::load_n(k.add((t + j) * row + i), n);
                for h in 0..H {
                    acc[h][j] = f32x4_add(acc[h][j], f32x4_mul(load_upto(q.add(h * d + i), n), kj));
                }
            }
            i += n;
        }
        if P == 4 {
            for h in 0..H {
                let four = [acc[h][0], acc[h][1], acc[h][2], acc[h][3]];
                store(s.add(h * s_stride + t), f32x4_mul(transpose_add(&four), sc));
            }
        } else {
            // Two heads' two positions per transpose_add; 64-bit lane stores.
            let mut h = 0;
            while h < H {
                let next = if h + 1 < H { acc[h + 1] } else { acc[h] };
                let r = f32x4_mul(transpose_add(&[acc[h][0], acc[h][1], next[0], next[1]]), sc);
                v128_store64_lane::<0>(r, s.add(h * s_stride + t) as *mut u64);
                if h + 1 < H {
                    v128_store64_lane::<1>(r, s.add((h + 1) * s_stride + t) as *mut u64);
                }
                h += 2;
            }
        }
        t += P;
    }
    while t < kv_len {
        let mut acc = [f32x4_splat(0.0); H];
        let mut i = 0;
        while i < body {
            let (k0, k1) = T::load8(k.add(t * row + i), &mut flag);
            for h in 0..H {
                let qh = q.add(h * d + i);
                acc[h] = f32x4_add(acc[h], f32x4_add(f32x4_mul(load(qh), k0), f32x4_mul(load(qh.add(4)), k1)));
            }
            i += 8;
        }
        while i < d {
            let n = if d - i < 4 { d - i } else { 4 };
            let kt = T::load_n(k.add(t * row + i), n);
            for h in 0..H {
                acc[h] = f32x4_add(acc[h], f32x4_mul(load_upto(q.add(h * d + i), n), kt));
            }
            i += n;
        }
        for h in 0..H {
            let a = acc[h];
            let sum = (f32x4_extract_lane::<0>(a) + f32x4_extract_lane::<2>(a))
                + (f32x4_extract_lane::<1>(a) + f32x4_extract_lane::<3>(a));
            *s.add(h * s_stride + t) = sum * scale;
        }
        t += 1;
    }
    flag
}

/// Where the rows of one values pass live: probabilities `p_stride` floats apart, outputs
/// `out_stride` apart; row h attends kv_len + h·extra positions (extra = 0 for the heads of one
/// token, 1 for consecutive tokens of one head).
#[derive(Clone, Copy)]
pub(crate) struct Rows {
    pub(crate) p_stride: usize,
    pub(crate) out_stride: usize,
    pub(crate) extra: usize,
}

/// Columns [0, 8C) of out_h = Σ_t p_h[t] · v[t] for H rows (as `values`).
#[inline(always)]
unsafe fn values_chunk<T: KvElem, const H: usize, const C: usize>(
    p: *const f32,
    v: *const T,
    row: usize,
    kv_len: usize,
    rows: Rows,
    out: *mut f32,
    flag: &mut v128,
) {
    let mut acc = [[[f32x4_splat(0.0); 2]; C]; H];
    let step = |acc: &mut [[v128; 2]; C], t: usize, ph: v128, flag: &mut v128| {
        for c in 0..C {
            let (v0, v1) = T::load8(v.add(t * row + 8 * c), flag);
            acc[c][0] = f32x4_add(acc[c][0], f32x4_mul(ph, v0));
            acc[c][1] = f32x4_add(acc[c][1], f32x4_mul(ph, v1));
        }
    };
    for t in 0..kv_len {
        let mut vt = [[f32x4_splat(0.0); 2]; C];
        for c in 0..C {
            let (v0, v1) = T::load8(v.add(t * row + 8 * c), flag);
            vt[c] = [v0, v1];
        }
        for h in 0..H {
            let ph = f32x4_splat(*p.add(h * rows.p_stride + t));
            for c in 0..C {
                acc[h][c][0] = f32x4_add(acc[h][c][0], f32x4_mul(ph, vt[c][0]));
                acc[h][c][1] = f32x4_add(acc[h][c][1], f32x4_mul(ph, vt[c][1]));
            }
        }
    }
    // Longer rows go on in the same position order, so each sum equals a pass of its own.
    for h in 1..H {
        for t in kv_len..kv_len + h * rows.extra {
            step(&mut acc[h], t, f32x4_splat(*p.add(h * rows.p_stride + t)), flag);
        }
    }
    for h in 0..H {
        for c in 0..C {
            store(out.add(h * rows.out_stride + 8 * c), acc[h][c][0]);
            store(out.add(h * rows.out_stride + 8 * c + 4), acc[h][c][1]);
        }
    }
}

/// out_h = Σ_t p_h[t] · v[t] for H rows laid out as `rows`. Returns the flag.
#[inline(always)]
unsafe fn values<T: KvElem, const H: usize>(
    p: *const f32,
    v: *const T,
    row: usize,
    d: usize,
    kv_len: usize,
    rows: Rows,
    out: *mut f32,
) -> v128 {
    let mut flag = u16x8_splat(0);
    let mut i = 0;
    // Column chunks of 8·C values with 2·C·H ≤ 8 accumulators, then chunks of 8.
    let c = if H == 1 { 4 } else if H == 2 { 2 } else { 1 };
    while i + 8 * c <= d {
        let (vi, oi) = (v.add(i), out.add(i));
        match H {
            1 => values_chunk::<T, 1, 4>(p, vi, row, kv_len, rows, oi, &mut flag),
            2 => values_chunk::<T, 2, 2>(p, vi, row, kv_len, rows, oi, &mut flag),
            _ => values_chunk::<T, H, 1>(p, vi, row, kv_len, rows, oi, &mut flag),
        }
        i += 8 * c;
    }
    while i + 8 <= d {
        values_chunk::<T, H, 1>(p, v.add(i), row, kv_len, rows, out.add(i), &mut flag);
        i += 8;
    }
    while i < d {
        let n = if d - i < 4 { d - i } else { 4 };
        let mut acc = [f32x4_splat(0.0); H];
        for t in 0..kv_len {
            let vt = T::load_n(v.add(t * row + i), n);
            for h in 0..H {
                acc[h] = f32x4_add(acc[h], f32x4_mul(f32x4_splat(*p.add(h * rows.p_stride + t)), vt));
            }
        }
        for h in 1..H {
            for t in kv_len..kv_len + h * rows.extra {
                let vt = T::load_n(v.add(t * row + i), n);
                acc[h] = f32x4_add(acc[h], f32x4_mul(f32x4_splat(*p.add(h * rows.p_stride + t)), vt));
            }
        }
        for h in 0..H {
            if n == 4 {
                store(out.add(h * rows.out_stride + i), acc[h]);
            } else {
                store_partial(out.add(h * rows.out_stride + i), acc[h], n);
            }
        }
        i += n;
    }
    flag
}

/// dst = src · u for n floats; false when some |src| ≥ 2^15 (or NaN), where src · u could
/// overflow.
#[inline(always)]
pub(crate) unsafe fn prescale(src: *const f32, dst: *mut f32, n: usize, u: f32) -> bool {
    let (uv, mut big) = (f32x4_splat(u), f32x4_splat(0.0));
    let mut i = 0;
    while i < n {
        let m = if n - i < 4 { n - i } else { 4 };
        let x = load_upto(src.add(i), m);
        big = f32x4_max(big, f32x4_abs(x));
        let y = f32x4_mul(x, uv);
        if m == 4 {
            store(dst.add(i), y);
        } else {
            store_partial(dst.add(i), y, m);
        }
        i += m;
    }
    hmax(big) < 32768.0
}

/// `scores` for n ≤ 4 rows: 3-4 rows take 2 positions at a time, fewer take 4 (H·P ≤ 8).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn scores_rows<T: KvElem>(
    n: usize,
    q: *const f32,
    k: *const T,
    row: usize,
    d: usize,
    kv_len: usize,
    scale: f32,
    s: *mut f32,
    s_stride: usize,
) -> v128 {
    match n {
        4 => scores::<T, 4, 2>(q, k, row, d, kv_len, scale, s, s_stride),
        3 => scores::<T, 3, 2>(q, k, row, d, kv_len, scale, s, s_stride),
        2 => scores::<T, 2, 4>(q, k, row, d, kv_len, scale, s, s_stride),
        _ => scores::<T, 1, 4>(q, k, row, d, kv_len, scale, s, s_stride),
    }
}

/// Scores of one row to probabilities in place, then × UNSCALE (p ≤ 1: stays finite, exact).
#[inline(always)]
pub(crate) unsafe fn probabilities<T: KvElem>(s: *mut f32, kv_len: usize) {
    softmax_in_place(s, kv_len);
    if T::UNSCALE != 1.0 {
        let u = f32x4_splat(T::UNSCALE);
        map1(s, s, kv_len, |x| f32x4_mul(x, u));
    }
}

/// `values` for n ≤ 4 rows laid out as `rows`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn values_rows<T: KvElem>(
    n: usize,
    p: *const f32,
    v: *const T,
    row: usize,
    d: usize,
    kv_len: usize,
    rows: Rows,
    out: *mut f32,
) -> v128 {
    match n {
        4 => values::<T, 4>(p, v, row, d, kv_len, rows, out),
        3 => values::<T, 3>(p, v, row, d, kv_len, rows, out),
        2 => values::<T, 2>(p, v, row, d, kv_len, rows, out),
        _ => values::<T, 1>(p, v, row, d, kv_len, rows, out),
    }
}

/// Runs `f` over heads [h0, h1) in batches of at most H (then smaller for the remainder).
macro_rules! head_batches {
    ($h0:expr, $h1:expr, $max:expr, |$h:ident, $n:ident| $body:expr) => {{
        let mut $h = $h0;
        while $h < $h1 {
            let $n = if $h1 - $h >= $max { $max } else { $h1 - $h };
            $body;
            $h += $n;
        }
    }};
}

/// Scores then values of heads [h0, h1), which share one KV head (k, v at its first row).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn group<T: KvElem>(
    q: *const f32,
    k: *const T,
    v: *const T,
    out: *mut f32,
    s: *mut f32,
    row: usize,
    d: usize,
    kv_len: usize,
    scale: f32,
    h0: usize,
    h1: usize,
) -> bool {
    let mut flag = u16x8_splat(0);
    // Prescaled q of one head batch (only the n·d floats written are read).
    let mut qbuf = core::mem::MaybeUninit::<[f32; 4 * MAX_HEAD_DIM]>::uninit();
    let qbuf = qbuf.as_mut_ptr() as *mut f32;
    // Up to 4 heads share each K row conversion (2 positions at a time), else 2 heads × 4.
    let batch = if h1 - h0 >= 3 { 4 } else { 2 };
    head_batches!(h0, h1, batch, |h, n| {
        let mut qh = q.add(h * d);
        if T::UNSCALE != 1.0 {
            // q·UNSCALE must stay finite (|q| < 2^15 leaves room); otherwise the exact path.
            if !prescale(qh, qbuf, n * d, T::UNSCALE) {
                return true;
            }
            qh = qbuf;
        }
        let f = scores_rows::<T>(n, qh, k, row, d, kv_len, scale, s.add((h - h0) * kv_len), kv_len);
        flag = u16x8_max(flag, f);
    });
    if T::FLAGS && flagged(flag) {
        return true;
    }
    for h in h0..h1 {
        probabilities::<T>(s.add((h - h0) * kv_len), kv_len);
    }
    let rows = Rows { p_stride: kv_len, out_stride: d, extra: 0 };
    head_batches!(h0, h1, 4, |h, n| {
        let f = values_rows::<T>(n, s.add((h - h0) * kv_len), v, row, d, kv_len, rows, out.add(h * d));
        flag = u16x8_max(flag, f);
    });
    T::FLAGS && flagged(flag)
}

#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub(crate) unsafe fn attention<T: KvElem>(
    q: *const f32,
    k: *const T,
    v: *const T,
    out: *mut f32,
    scratch: *mut f32,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    kv_len: usize,
    scale: f32,
    head_begin: usize,
    head_end: usize,
) {
    if head_dim > MAX_HEAD_DIM {
        unreachable(); // the TypeScript wrapper rejects this first
    }
    let group_size = n_heads / n_kv_heads;
    let row = n_kv_heads * head_dim; // stride between positions in the cache
    let mut h0 = head_begin;
    while h0 < head_end {
        let kvh = h0 / group_size;
        let h1 = head_end.min((kvh + 1) * group_size); // query heads [h0, h1) share KV head kvh
        let s = scratch.add((h0 - head_begin) * kv_len);
        let (kk, vk) = (k.add(kvh * head_dim), v.add(kvh * head_dim));
        if group::<T>(q, kk, vk, out, s, row, head_dim, kv_len, scale, h0, h1) {
            // Inf/NaN in this KV head's rows (or a query too large to prescale): redo exactly.
            let (ke, ve) = (kk as *const T::Exact, vk as *const T::Exact);
            group::<T::Exact>(q, ke, ve, out, s, row, head_dim, kv_len, scale, h0, h1);
        }
        h0 = h1;
    }
}

/// Attention of one query token over an f32 cache. q (n_heads, head_dim); k, v
/// (≥ kv_len, n_kv_heads, head_dim); out (n_heads, head_dim), only heads [head_begin, head_end)
/// written; scratch holds (head_end − head_begin)·kv_len floats.
#[no_mangle]
pub unsafe extern "C" fn attention_f32(
    q: *const f32,
    k: *const f32,
    v: *const f32,
    out: *mut f32,
    scratch: *mut f32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    kv_len: u32,
    scale: f32,
    head_begin: u32,
    head_end: u32,
) {
    let (n_heads, n_kv_heads, d, kv_len) = (n_heads as usize, n_kv_heads as usize, head_dim as usize, kv_len as usize);
    attention(q, k, v, out, scratch, n_heads, n_kv_heads, d, kv_len, scale, head_begin as usize, head_end as usize);
}

/// As `attention_f32`, over an f16 cache (k, v hold IEEE binary16 bits).
#[no_mangle]
pub unsafe extern "C" fn attention_f16(
    q: *const f32,
    k: *const u16,
    v: *const u16,
    out: *mut f32,
    scratch: *mut f32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    kv_len: u32,
    scale: f32,
    head_begin: u32,
    head_end: u32,
) {
    let (n_heads, n_kv_heads, d, kv_len) = (n_heads as usize, n_kv_heads as usize, head_dim as usize, kv_len as usize);
    let (k, v) = (k as *const F16Fast, v as *const F16Fast);
    attention(q, k, v, out, scratch, n_heads, n_kv_heads, d, kv_len, scale, head_begin as usize, head_end as usize);
}
