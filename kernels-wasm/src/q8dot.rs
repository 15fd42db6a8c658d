//! q8 GEMV/GEMM on int8 activations (the llama.cpp q8_0 x q8_0 scheme): activations are
//! quantised per block of the weight group (absmax, round half to even) into int16 lanes, and
//! each (row, group) dot product is exact in int32 (`i32x4.dot_i16x8_s`), then scaled by
//! weight scale x activation scale in f32. Weight layout: runtime/format/encoding.ts (q8).
//! Twin: runtime/kernels/reference/matmul.ts (same lanes and f32 order: bit-exact).
use crate::dense::f16_to_f32;
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

/// One row: sum over groups of (int32 dot, 4 lanes) * (weight scale * activation scale).
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
    for g in 0..groups {
        let mut acc = i32x4_splat(0);
        let base = g * group;
        let mut i = base;
        while i < base + group {
            let q = v128_load(w.add(i) as *const v128);
            let a = v128_load(xq.add(i) as *const v128);
            let b = v128_load(xq.add(i + 8) as *const v128);
            acc = i32x4_add(acc, i32x4_dot_i16x8(i16x8_extend_low_i8x16(q), a));
            acc = i32x4_add(acc, i32x4_dot_i16x8(i16x8_extend_high_i8x16(q), b));
            i += 16;
        }
        let s = f16_to_f32(*wscales.add(g)) * *xs.add(g);
        row = f32x4_add(row, f32x4_mul(f32x4_convert_i32x4(acc), f32x4_splat(s)));
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
