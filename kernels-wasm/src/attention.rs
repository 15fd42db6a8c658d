//! Attention against a layer's KV cache, f32 or f16 cache, SIMD128: one query token (decode,
//! attention_*) or a block of consecutive query tokens (prefill, attention_tokens_*, each token
//! computed with the decode arithmetic, so both give bit-identical outputs per token).
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
use crate::f16::{f16x4_to_f32x4, load_f16_partial, load_f16x8_unscaled, TWO_112};
use crate::vmath::*;
use core::arch::wasm32::*;

/// Largest head_dim the kernels accept (the TypeScript wrapper enforces it).
pub const MAX_HEAD_DIM: usize = 512;

/// Element type of the cache: loads of 8 (and ≤ 4, zero-padded) values as f32, divided by
/// UNSCALE (a power of two the caller folds into q and p instead).
trait KvElem: Sized {
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
#[derive(Clone, Copy)]
struct F16Fast(u16);
/// f16 cache, exact conversion of every value (the fallback for blocks holding Inf/NaN).
#[derive(Clone, Copy)]
struct F16Exact(u16);

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
fn flagged(flag: v128) -> bool {
    u16x8_bitmask(u16x8_gt(flag, u16x8_splat(0x7bff))) != 0
}

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
struct Rows {
    p_stride: usize,
    out_stride: usize,
    extra: usize,
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
unsafe fn prescale(src: *const f32, dst: *mut f32, n: usize, u: f32) -> bool {
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
        let sh = s.add((h - h0) * kv_len);
        let f = match n {
            4 => scores::<T, 4, 2>(qh, k, row, d, kv_len, scale, sh, kv_len),
            3 => scores::<T, 3, 2>(qh, k, row, d, kv_len, scale, sh, kv_len),
            2 => scores::<T, 2, 4>(qh, k, row, d, kv_len, scale, sh, kv_len),
            _ => scores::<T, 1, 4>(qh, k, row, d, kv_len, scale, sh, kv_len),
        };
        flag = u16x8_max(flag, f);
    });
    if T::FLAGS && flagged(flag) {
        return true;
    }
    for h in h0..h1 {
        let sh = s.add((h - h0) * kv_len);
        softmax_in_place(sh, kv_len);
        if T::UNSCALE != 1.0 {
            let u = f32x4_splat(T::UNSCALE);
            map1(sh, sh, kv_len, |x| f32x4_mul(x, u)); // p ≤ 1: stays finite, exact
        }
    }
    let rows = Rows { p_stride: kv_len, out_stride: d, extra: 0 };
    head_batches!(h0, h1, 4, |h, n| {
        let (sh, oh) = (s.add((h - h0) * kv_len), out.add(h * d));
        let f = match n {
            4 => values::<T, 4>(sh, v, row, d, kv_len, rows, oh),
            3 => values::<T, 3>(sh, v, row, d, kv_len, rows, oh),
            2 => values::<T, 2>(sh, v, row, d, kv_len, rows, oh),
            _ => values::<T, 1>(sh, v, row, d, kv_len, rows, oh),
        };
        flag = u16x8_max(flag, f);
    });
    T::FLAGS && flagged(flag)
}

#[allow(clippy::too_many_arguments)]
#[inline(never)]
unsafe fn attention<T: KvElem>(
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

/// Scores then values of one query head for m ≤ 4 consecutive tokens (q and out rows
/// `q_stride` apart) over one KV head (k, v at its first row): token r attends positions
/// [0, kv_len + r). The tokens share every K and V row load the way `group` shares them
/// between heads, and each token's arithmetic is `group`'s for that token alone, so the
/// results equal per-token calls bit for bit. `s` holds m rows of kv_len + m − 1 floats.
/// Returns true when the exact conversion must redo it (as `group`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn token_tile<T: KvElem>(
    q: *const f32,
    k: *const T,
    v: *const T,
    out: *mut f32,
    s: *mut f32,
    row: usize,
    d: usize,
    q_stride: usize,
    kv_len: usize,
    m: usize,
    scale: f32,
) -> bool {
    let mut qbuf = core::mem::MaybeUninit::<[f32; 4 * MAX_HEAD_DIM]>::uninit();
    let qbuf = qbuf.as_mut_ptr() as *mut f32;
    for r in 0..m {
        // f32 (UNSCALE 1) only gathers the rows; f16 must keep q·UNSCALE finite.
        if !prescale(q.add(r * q_stride), qbuf.add(r * d), d, T::UNSCALE) && T::UNSCALE != 1.0 {
            return true;
        }
    }
    let stride = kv_len + m - 1;
    let f = match m {
        4 => scores::<T, 4, 2>(qbuf, k, row, d, stride, scale, s, stride),
        3 => scores::<T, 3, 2>(qbuf, k, row, d, stride, scale, s, stride),
        2 => scores::<T, 2, 4>(qbuf, k, row, d, stride, scale, s, stride),
        _ => scores::<T, 1, 4>(qbuf, k, row, d, stride, scale, s, stride),
    };
    if T::FLAGS && flagged(f) {
        return true;
    }
    for r in 0..m {
        let sr = s.add(r * stride);
        softmax_in_place(sr, kv_len + r);
        if T::UNSCALE != 1.0 {
            let u = f32x4_splat(T::UNSCALE);
            map1(sr, sr, kv_len + r, |x| f32x4_mul(x, u));
        }
    }
    let rows = Rows { p_stride: stride, out_stride: q_stride, extra: 1 };
    let f = match m {
        4 => values::<T, 4>(s, v, row, d, kv_len, rows, out),
        3 => values::<T, 3>(s, v, row, d, kv_len, rows, out),
        2 => values::<T, 2>(s, v, row, d, kv_len, rows, out),
        _ => values::<T, 1>(s, v, row, d, kv_len, rows, out),
    };
    T::FLAGS && flagged(f)
}

/// Attention of n_tokens consecutive query tokens: token t attends [first, end0 + t), first =
/// 0 or, with a sliding window w > 0, max(0, end0 + t − w). Tokens that all start at position
/// 0 go through `token_tile` four at a time, the others one by one through `attention`;
/// scratch holds 4·(end0 + n_tokens − 1) floats.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
unsafe fn attention_tokens<T: KvElem>(
    q: *const f32,
    k: *const T,
    v: *const T,
    out: *mut f32,
    scratch: *mut f32,
    n_heads: usize,
    n_kv_heads: usize,
    d: usize,
    end0: usize,
    n_tokens: usize,
    window: usize,
    scale: f32,
    head_begin: usize,
    head_end: usize,
) {
    if d > MAX_HEAD_DIM {
        unreachable(); // the TypeScript wrapper rejects this first
    }
    let (group_size, row, q_stride) = (n_heads / n_kv_heads, n_kv_heads * d, n_heads * d);
    // Heads outermost: all tiles of one head (and the heads sharing its KV head next) re-read
    // the same K and V rows, which then stay in cache.
    for h in head_begin..head_end {
        let (kk, vk) = (k.add((h / group_size) * d), v.add((h / group_size) * d));
        let mut t = 0;
        while t < n_tokens {
            let end = end0 + t;
            let first = if window > 0 && end > window { end - window } else { 0 };
            let mut m = if n_tokens - t < 4 { n_tokens - t } else { 4 };
            if window > 0 {
                m = if first > 0 { 1 } else { m.min(window + 1 - end) };
            }
            let (qt, ot) = (q.add(t * q_stride), out.add(t * q_stride));
            if m == 1 {
                let (kf, vf) = (k.add(first * row), v.add(first * row));
                attention::<T>(qt, kf, vf, ot, scratch, n_heads, n_kv_heads, d, end - first, scale, h, h + 1);
            } else {
                let (qh, oh) = (qt.add(h * d), ot.add(h * d));
                if token_tile::<T>(qh, kk, vk, oh, scratch, row, d, q_stride, end, m, scale) {
                    let (ke, ve) = (kk as *const T::Exact, vk as *const T::Exact);
                    token_tile::<T::Exact>(qh, ke, ve, oh, scratch, row, d, q_stride, end, m, scale);
                }
            }
            t += m;
        }
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

/// Attention of n_tokens consecutive query tokens (a prefill block) over an f32 cache, equal
/// bit for bit to `attention_f32` called per token. q, out (n_tokens, n_heads, head_dim); token
/// t attends cache positions [first, end0 + t), first = 0 or, with a sliding window > 0,
/// max(0, end0 + t − window); only heads [head_begin, head_end) are written. scratch holds
/// 4·(end0 + n_tokens − 1) floats.
#[no_mangle]
pub unsafe extern "C" fn attention_tokens_f32(
    q: *const f32,
    k: *const f32,
    v: *const f32,
    out: *mut f32,
    scratch: *mut f32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    end0: u32,
    n_tokens: u32,
    window: u32,
    scale: f32,
    head_begin: u32,
    head_end: u32,
) {
    attention_tokens(
        q, k, v, out, scratch, n_heads as usize, n_kv_heads as usize, head_dim as usize, end0 as usize,
        n_tokens as usize, window as usize, scale, head_begin as usize, head_end as usize,
    );
}

/// As `attention_tokens_f32`, over an f16 cache.
#[no_mangle]
pub unsafe extern "C" fn attention_tokens_f16(
    q: *const f32,
    k: *const u16,
    v: *const u16,
    out: *mut f32,
    scratch: *mut f32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    end0: u32,
    n_tokens: u32,
    window: u32,
    scale: f32,
    head_begin: u32,
    head_end: u32,
) {
    attention_tokens(
        q, k as *const F16Fast, v as *const F16Fast, out, scratch, n_heads as usize, n_kv_heads as usize,
        head_dim as usize, end0 as usize, n_tokens as usize, window as usize, scale, head_begin as usize,
        head_end as usize,
    );
}
