//! q8 GEMV/GEMM on int8 activations (the llama.cpp q8_0 x q8_0 scheme): activations are
//! quantised per block of the weight group (absmax, round half to even) into int16 lanes, and
//! each (row, group) dot product is exact in int32 (`i32x4.dot_i16x8_s`, lanes reduced in
//! int32), then converted to f32 and scaled by weight scale x activation scale. Groups go in
//! fours: one transpose-add reduces four dot products, and their scales convert together.
//! Weight layout: runtime/format/encoding.ts (q8).
//! Twin: runtime/kernels/reference/matmul.ts (same lanes and f32 order: bit-exact).
use crate::f16::f16x4_finite_to_f32;
use crate::lut::round_even;
use core::arch::wasm32::*;

/// Bytes of one token's quantised activations for `cols` at block `group`: int16 codes for
/// groups*group columns (zero padded), then one f32 scale per group.
#[inline(always)]
pub fn q8_act_bytes(cols: usize, group: usize) -> usize {
    let groups = (cols + group - 1) / group;
    groups * group * 2 + groups * 4
}

/// Quantises `m` tokens (x rows `x_stride` floats apart) per block of `group` columns into
/// consecutive buffers of `q8_act_bytes(cols, group)` bytes at `out`. Returns 0, or -1 when
/// `group` is not a positive multiple of 16.
#[no_mangle]
pub unsafe extern "C" fn quantize_q8_act(
    x: *const f32,
    x_stride: usize,
    m: usize,
    cols: usize,
    group: usize,
    out: *mut u8,
) -> i32 {
    if group == 0 || group % 16 != 0 {
        return -1;
    }
    let groups = (cols + group - 1) / group;
    let stride = q8_act_bytes(cols, group);
    for t in 0..m {
        let xt = x.add(t * x_stride);
        let q = out.add(t * stride) as *mut i16;
        let scales = out.add(t * stride + groups * group * 2) as *mut f32;
        for g in 0..groups {
            let start = g * group;
            let end = if start + group < cols {
                start + group
            } else {
                cols
            };
            let mut amax = 0.0f32;
            for i in start..end {
                let a = f32::from_bits((*xt.add(i)).to_bits() & 0x7fff_ffff);
                if a > amax {
                    amax = a;
                }
            }
            let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
            for i in start..start + group {
                let v = if i < end {
                    round_even(*xt.add(i) * inv)
                } else {
                    0.0
                };
                let v = if v > 127.0 {
                    127.0
                } else if v < -127.0 {
                    -127.0
                } else {
                    v
                };
                *q.add(i) = v as i32 as i16;
            }
            *scales.add(g) = amax / 127.0;
        }
    }
    0
}

/// Exact int32 dot of one group (4 lanes to be summed).
#[inline(always)]
unsafe fn group_dot(w: *const i8, xq: *const i16, group: usize) -> v128 {
    let mut acc = i32x4_splat(0);
    let mut i = 0;
    while i < group {
        let q = v128_load(w.add(i) as *const v128);
        let a = v128_load(xq.add(i) as *const v128);
        let b = v128_load(xq.add(i + 8) as *const v128);
        acc = i32x4_add(acc, i32x4_dot_i16x8(i16x8_extend_low_i8x16(q), a));
        acc = i32x4_add(acc, i32x4_dot_i16x8(i16x8_extend_high_i8x16(q), b));
        i += 16;
    }
    acc
}

/// One row: groups in fours, lane j taking group 4c+j. Each group's exact int32 dot is
/// converted to f32 and scaled by f32(weight scale x activation scale), lane j sums its groups
/// in order, and the lanes are added pairwise at the end.
#[inline(always)]
unsafe fn dot_row(
    w: *const i8,
    wscales: *const u16,
    xq: *const i16,
    xs: *const f32,
    groups: usize,
    group: usize,
) -> f32 {
    let mut row = f32x4_splat(0.0);
    let mut g = 0;
    while g < groups {
        let n = if groups - g < 4 { groups - g } else { 4 };
        let mut acc = [i32x4_splat(0); 4];
        for j in 0..n {
            acc[j] = group_dot(w.add((g + j) * group), xq.add((g + j) * group), group);
        }
        // Transpose-add: lane j = the sum of acc[j]'s lanes (exact in int32).
        let t0 = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(acc[0], acc[1]), i32x4_shuffle::<2, 6, 3, 7>(acc[0], acc[1]));
        let t1 = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(acc[2], acc[3]), i32x4_shuffle::<2, 6, 3, 7>(acc[2], acc[3]));
        let dots = i32x4_add(i32x4_shuffle::<0, 1, 4, 5>(t0, t1), i32x4_shuffle::<2, 3, 6, 7>(t0, t1));
        let (ws, sx) = if n == 4 {
            (u32x4_extend_low_u16x8(v128_load64_zero(wscales.add(g) as *const u64)), v128_load(xs.add(g) as *const v128))
        } else {
            let (mut h, mut a) = ([0u32; 4], [0f32; 4]);
            for j in 0..n {
                h[j] = *wscales.add(g + j) as u32;
                a[j] = *xs.add(g + j);
            }
            (v128_load(h.as_ptr() as *const v128), v128_load(a.as_ptr() as *const v128))
        };
        let s = f32x4_mul(f16x4_finite_to_f32(ws), sx);
        row = f32x4_add(row, f32x4_mul(f32x4_convert_i32x4(dots), s));
        g += n;
    }
    (f32x4_extract_lane::<0>(row) + f32x4_extract_lane::<1>(row))
        + (f32x4_extract_lane::<2>(row) + f32x4_extract_lane::<3>(row))
}

/// out (m, out_stride) = W (rows, cols; q8, scales `scale_offset` bytes after w) times the
/// m quantised tokens at `xq` (from quantize_q8_act, q8_act_bytes apart). Returns 0 or -1.
#[no_mangle]
pub unsafe extern "C" fn gemm_q8_i8(
    w: *const i8,
    scale_offset: usize,
    group: usize,
    xq: *const u8,
    m: usize,
    rows: usize,
    cols: usize,
    out: *mut f32,
    out_stride: usize,
) -> i32 {
    if group == 0 || group % 16 != 0 {
        return -1;
    }
    let groups = (cols + group - 1) / group;
    let row_bytes = groups * group;
    let stride = q8_act_bytes(cols, group);
    let wscales = (w as *const u8).add(scale_offset) as *const u16;
    for r in 0..rows {
        for t in 0..m {
            let xt = xq.add(t * stride);
            *out.add(t * out_stride + r) = dot_row(
                w.add(r * row_bytes),
                wscales.add(r * groups),
                xt as *const i16,
                xt.add(row_bytes * 2) as *const f32,
                groups,
                group,
            );
        }
    }
    0
}
