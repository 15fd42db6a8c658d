//! Attention of a block of consecutive query tokens (prefill) against a layer's KV cache,
//! f32 or f16 cache, SIMD128. Each token is computed with the decode kernel's arithmetic
//! (attention.rs), so a prompt gives bit-identical outputs whether it is prefilled in blocks
//! or fed token by token; four tokens of a head share every K and V row load.
use core::arch::wasm32::unreachable;
use crate::attention::{attention, prescale, probabilities, scores_rows, values_rows, Rows, MAX_HEAD_DIM};
use crate::kv_elem::{flagged, F16Fast, KvElem};

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
    let flag = scores_rows::<T>(m, qbuf, k, row, d, stride, scale, s, stride);
    if T::FLAGS && flagged(flag) {
        return true;
    }
    for r in 0..m {
        probabilities::<T>(s.add(r * stride), kv_len + r);
    }
    let rows = Rows { p_stride: stride, out_stride: q_stride, extra: 1 };
    let flag = values_rows::<T>(m, s, v, row, d, kv_len, rows, out);
    T::FLAGS && flagged(flag)
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
