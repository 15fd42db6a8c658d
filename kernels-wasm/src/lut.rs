//! Activation side of the LUT matmul (T-MAC, arXiv 2407.00088): per-quad int8 lookup tables
//! and per-token int8 activation quantisation.
//!
//! Table layout for one input vector of `cols` activations at weight group `group` (G):
//! `groups = ceil(cols / G)` blocks of `G/4` tables of 16 bytes (quad c of the group at byte
//! 16*c), then `groups` pairs of f32 (ts, sum of the group's activations).
//! Entry `idx` of quad (a0, a1, a2, a3) is the int8 q nearest to sum_i (bit i of idx ? +a_i :
//! -a_i) / ts, with ts = M/127 and M the largest sum_i |a_i| of a quad in the group (T-MAC's
//! signed tables). Mirror consolidation: the 8 entries with bit 3 set are computed, entry
//! 15-idx is the negation of entry idx (exactly, in the int8 domain). One scale per group
//! keeps the per-group rescale a single f32 multiply.
//! Measured against the alternatives on stories260K (KL between the kernels and exact
//! arithmetic on the same 4-bit weights): these tables 8.0e-4; subset-sum tables (entry =
//! sum of the a_i whose bit is set, no activation-sum correction) 2.0e-3, since their
//! entries are not halved; subset sums limited to 7 bits (two lookups added in int8) 5.9e-3.
//! Rounding is round-half-to-even through the 1.5*2^23 trick, so the TypeScript twin
//! (runtime/kernels/reference/matmul.ts) reproduces every byte.

use core::arch::wasm32::*;

const ROUND_MAGIC: f32 = 12582912.0; // 1.5 * 2^23

/// Largest table entry magnitude.
pub const TABLE_LIMIT: f32 = 127.0;

#[inline(always)]
pub fn round_even(x: f32) -> f32 {
    (x + ROUND_MAGIC) - ROUND_MAGIC
}

#[inline(always)]
fn abs(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0x7fff_ffff)
}

/// Bytes of the table block for `cols` activations at weight group `group`.
#[inline(always)]
pub fn lut_bytes(cols: usize, group: usize) -> usize {
    let groups = (cols + group - 1) / group;
    groups * (4 * group + 8)
}

/// Tables and (ts, sum) of one group of G activations at `a` (all present, zero-padded).
#[inline(always)]
unsafe fn build_group(a: *const f32, group: usize, tables: *mut u8, meta: *mut f32) {
    let quads = group / 4;
    let mut lane = f32x4_splat(0.0);
    let mut maxv = f32x4_splat(0.0);
    for c in 0..quads {
        let q = v128_load(a.add(4 * c) as *const v128);
        lane = f32x4_add(lane, q);
        let m = f32x4_abs(q);
        let p = f32x4_add(m, i32x4_shuffle::<1, 0, 3, 2>(m, m));
        maxv = f32x4_max(maxv, f32x4_add(p, i32x4_shuffle::<2, 3, 0, 1>(p, p)));
    }
    let maxsum = f32x4_extract_lane::<0>(maxv);
    let ts = maxsum / TABLE_LIMIT;
    let inv = f32x4_splat(if maxsum > 0.0 { TABLE_LIMIT / maxsum } else { 0.0 });
    // Lane j of the entries with bit 3 set: idx = 8 + j (+4 for the second vector).
    let s0 = f32x4(-1.0, 1.0, -1.0, 1.0);
    let s1 = f32x4(-1.0, -1.0, 1.0, 1.0);
    let magic = f32x4_splat(ROUND_MAGIC);
    let (lo, hi) = (f32x4_splat(-TABLE_LIMIT), f32x4_splat(TABLE_LIMIT));
    for c in 0..quads {
        let q = v128_load(a.add(4 * c) as *const v128);
        let a0 = i32x4_shuffle::<0, 0, 0, 0>(q, q);
        let a1 = i32x4_shuffle::<1, 1, 1, 1>(q, q);
        let a2 = i32x4_shuffle::<2, 2, 2, 2>(q, q);
        let a3 = i32x4_shuffle::<3, 3, 3, 3>(q, q);
        let common = f32x4_add(f32x4_add(a3, f32x4_mul(s0, a0)), f32x4_mul(s1, a1));
        let mut e = [f32x4_sub(common, a2), f32x4_add(common, a2)];
        for v in e.iter_mut() {
            let r = f32x4_sub(f32x4_add(f32x4_mul(*v, inv), magic), magic);
            *v = i32x4_trunc_sat_f32x4(f32x4_min(f32x4_max(r, lo), hi));
        }
        let pos = i16x8_narrow_i32x4(e[0], e[1]); // q of idx 8..15
        let neg = i16x8_sub(i16x8_splat(0), pos);
        let neg = i16x8_shuffle::<7, 6, 5, 4, 3, 2, 1, 0>(neg, neg); // idx 0..7 = -q(15-idx)
        v128_store(tables.add(16 * c) as *mut v128, i8x16_narrow_i16x8(neg, pos));
    }
    *meta = ts;
    *meta.add(1) = (f32x4_extract_lane::<0>(lane) + f32x4_extract_lane::<1>(lane))
        + (f32x4_extract_lane::<2>(lane) + f32x4_extract_lane::<3>(lane));
}

/// Builds the tables of one input vector `x` (cols f32) for weight group `group` at `lut`.
/// Returns 0, or -1 when `group` is not 32, 64, 128 or 256.
unsafe fn build_lut(x: *const f32, cols: usize, group: usize, lut: *mut u8) -> i32 {
    if group != 32 && group != 64 && group != 128 && group != 256 {
        return -1;
    }
    let groups = (cols + group - 1) / group;
    let meta = lut.add(groups * 4 * group) as *mut f32;
    let mut tail = [0.0f32; 256];
    for g in 0..groups {
        let base = g * group;
        let a = if base + group <= cols {
            x.add(base)
        } else {
            for i in 0..group {
                tail[i] = if base + i < cols { *x.add(base + i) } else { 0.0 };
            }
            tail.as_ptr()
        };
        build_group(a, group, lut.add(g * 4 * group), meta.add(2 * g));
    }
    0
}

/// Builds the tables of `m` input vectors (row stride `x_stride` floats) into consecutive
/// table blocks of `lut_bytes(cols, group)` bytes each.
#[no_mangle]
pub unsafe extern "C" fn build_lut_f32_batch(
    x: *const f32,
    x_stride: usize,
    m: usize,
    cols: usize,
    group: usize,
    lut: *mut u8,
) -> i32 {
    let stride = lut_bytes(cols, group);
    for t in 0..m {
        let r = build_lut(x.add(t * x_stride), cols, group, lut.add(t * stride));
        if r != 0 {
            return r;
        }
    }
    0
}

/// Per-token symmetric int8 quantisation (BitNet b1.58 activations): scale = max|x|/127,
/// q = round_half_even(x / scale) computed as x * (127 / max|x|). Writes n int8 and one f32.
#[no_mangle]
pub unsafe extern "C" fn quantize_i8_f32(x: *const f32, n: usize, q: *mut i8, scale: *mut f32) {
    let mut amax = 0.0f32;
    for i in 0..n {
        let a = abs(*x.add(i));
        if a > amax {
            amax = a;
        }
    }
    let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    for i in 0..n {
        let mut v = round_even(*x.add(i) * inv);
        if v > 127.0 {
            v = 127.0;
        } else if v < -127.0 {
            v = -127.0;
        }
        *q.add(i) = v as i32 as i8;
    }
    *scale = amax / 127.0;
}
