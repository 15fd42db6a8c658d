//! Decode attention: one query token against a layer's KV cache, f32 or f16 cache, SIMD128.
//!
//! Scaled dot-product attention (Vaswani et al. 2017) with grouped-query heads (Ainslie et al.
//! 2023): query head h reads KV head h / (n_heads / n_kv_heads). For each head:
//!   s[t] = scale · q_h · k[t, kvh]  for t < kv_len (causal: the cache holds positions 0..pos),
//!   p = softmax(s),  out_h = Σ_t p[t] · v[t, kvh].
//! Cache layout per layer: k, v (seq_len, n_kv_heads, head_dim); only the first kv_len rows are
//! read. Heads [head_begin, head_end) are computed, so a worker pool can split heads; the
//! query heads sharing a KV head are processed together so each K/V row is read once per group.
use crate::f16::{load_f16_partial, load_f16x4};
use crate::vmath::*;
use core::arch::wasm32::*;

/// Largest head_dim the kernels accept (the f16 path converts one cache row into a stack buffer).
pub const MAX_HEAD_DIM: usize = 512;

/// Element type of the cache: yields a cache row as f32, converting into `buf` when needed, so
/// an f16 row is converted once per GQA group rather than once per query head.
trait KvElem {
    unsafe fn row_f32(p: *const Self, d: usize, buf: &mut [f32; MAX_HEAD_DIM]) -> *const f32;
}

impl KvElem for f32 {
    #[inline(always)]
    unsafe fn row_f32(p: *const f32, _d: usize, _buf: &mut [f32; MAX_HEAD_DIM]) -> *const f32 {
        p
    }
}

impl KvElem for u16 {
    #[inline(always)]
    unsafe fn row_f32(p: *const u16, d: usize, buf: &mut [f32; MAX_HEAD_DIM]) -> *const f32 {
        let out = buf.as_mut_ptr();
        let mut i = 0;
        while i + 4 <= d {
            store(out.add(i), load_f16x4(p.add(i)));
            i += 4;
        }
        if i < d {
            store_partial(out.add(i), load_f16_partial(p.add(i), d - i), d - i);
        }
        out
    }
}

/// q · k over d values, two accumulators for instruction-level parallelism.
#[inline(always)]
unsafe fn dot(q: *const f32, k: *const f32, d: usize) -> f32 {
    let mut a0 = f32x4_splat(0.0);
    let mut a1 = f32x4_splat(0.0);
    let mut i = 0;
    while i + 8 <= d {
        a0 = f32x4_add(a0, f32x4_mul(load(q.add(i)), load(k.add(i))));
        a1 = f32x4_add(a1, f32x4_mul(load(q.add(i + 4)), load(k.add(i + 4))));
        i += 8;
    }
    if i + 4 <= d {
        a0 = f32x4_add(a0, f32x4_mul(load(q.add(i)), load(k.add(i))));
        i += 4;
    }
    if i < d {
        a1 = f32x4_add(a1, f32x4_mul(load_partial(q.add(i), d - i, 0.0), load_partial(k.add(i), d - i, 0.0)));
    }
    hsum(f32x4_add(a0, a1))
}

/// out[0..d] += p · v[0..d].
#[inline(always)]
unsafe fn axpy(out: *mut f32, p: f32, v: *const f32, d: usize) {
    let pv = f32x4_splat(p);
    let mut i = 0;
    while i + 4 <= d {
        store(out.add(i), f32x4_add(load(out.add(i)), f32x4_mul(pv, load(v.add(i)))));
        i += 4;
    }
    if i < d {
        let rest = d - i;
        let acc = f32x4_add(load_partial(out.add(i), rest, 0.0), f32x4_mul(pv, load_partial(v.add(i), rest, 0.0)));
        store_partial(out.add(i), acc, rest);
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
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
    let mut buf = [0f32; MAX_HEAD_DIM];
    let group = n_heads / n_kv_heads;
    let row = n_kv_heads * head_dim; // stride between positions in the cache
    let mut h0 = head_begin;
    while h0 < head_end {
        let kvh = h0 / group;
        let h1 = head_end.min((kvh + 1) * group); // query heads [h0, h1) share KV head kvh
        for t in 0..kv_len {
            let kt = T::row_f32(k.add(t * row + kvh * head_dim), head_dim, &mut buf);
            for h in h0..h1 {
                let s = dot(q.add(h * head_dim), kt, head_dim);
                *scratch.add((h - head_begin) * kv_len + t) = s * scale;
            }
        }
        for h in h0..h1 {
            softmax_in_place(scratch.add((h - head_begin) * kv_len), kv_len);
            let oh = out.add(h * head_dim);
            map1(oh, oh, head_dim, |_| f32x4_splat(0.0));
        }
        for t in 0..kv_len {
            let vt = T::row_f32(v.add(t * row + kvh * head_dim), head_dim, &mut buf);
            for h in h0..h1 {
                let p = *scratch.add((h - head_begin) * kv_len + t);
                axpy(out.add(h * head_dim), p, vt, head_dim);
            }
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
    attention(
        q, k, v, out, scratch, n_heads as usize, n_kv_heads as usize, head_dim as usize, kv_len as usize, scale,
        head_begin as usize, head_end as usize,
    );
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
    attention(
        q, k, v, out, scratch, n_heads as usize, n_kv_heads as usize, head_dim as usize, kv_len as usize, scale,
        head_begin as usize, head_end as usize,
    );
}
