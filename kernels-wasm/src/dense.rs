//! Dense GEMV/GEMM for f32, f16 and q8 weights (layouts: runtime/format/encoding.ts), SIMD128.
//! Plain dot products in f32 with 4-lane partial sums; the TypeScript twins in
//! runtime/kernels/reference/matmul.ts sum in f64, and the tests bound the difference.
//! GEMM is a loop of GEMV for now (prefill of dense layers is rare in low-bit models).
//! gemm_q8 here takes f32 activations (exact activations, ~4x slower); the runtime wrapper
//! runs q8 matrices through q8dot.rs on int8 activations instead.
use crate::f16::f16x4_finite_to_f32;
use crate::simd::small_i32x4_to_f32;
use core::arch::wasm32::*;

#[inline(always)]
fn hsum(v: v128) -> f32 {
    (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
        + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
}

/// Exact f16 -> f32 for finite values.
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let mag = f32::from_bits(((h & 0x7fff) as u32) << 13) * 5.192_297e33;
    f32::from_bits(mag.to_bits() | (((h & 0x8000) as u32) << 16))
}

unsafe fn dot_f32(w: *const f32, x: *const f32, n: usize) -> f32 {
    let mut a0 = f32x4_splat(0.0);
    let mut a1 = f32x4_splat(0.0);
    let mut i = 0;
    while i + 8 <= n {
        a0 = f32x4_add(
            a0,
            f32x4_mul(
                v128_load(w.add(i) as *const v128),
                v128_load(x.add(i) as *const v128),
            ),
        );
        a1 = f32x4_add(
            a1,
            f32x4_mul(
                v128_load(w.add(i + 4) as *const v128),
                v128_load(x.add(i + 4) as *const v128),
            ),
        );
        i += 8;
    }
    let mut s = hsum(f32x4_add(a0, a1));
    while i < n {
        s += *w.add(i) * *x.add(i);
        i += 1;
    }
    s
}

unsafe fn dot_f16(w: *const u16, x: *const f32, n: usize) -> f32 {
    let mut a0 = f32x4_splat(0.0);
    let mut a1 = f32x4_splat(0.0);
    let mut i = 0;
    while i + 8 <= n {
        let h = v128_load(w.add(i) as *const v128);
        a0 = f32x4_add(
            a0,
            f32x4_mul(
                f16x4_finite_to_f32(u32x4_extend_low_u16x8(h)),
                v128_load(x.add(i) as *const v128),
            ),
        );
        a1 = f32x4_add(
            a1,
            f32x4_mul(
                f16x4_finite_to_f32(u32x4_extend_high_u16x8(h)),
                v128_load(x.add(i + 4) as *const v128),
            ),
        );
        i += 8;
    }
    let mut s = hsum(f32x4_add(a0, a1));
    while i < n {
        s += f16_to_f32(*w.add(i)) * *x.add(i);
        i += 1;
    }
    s
}

/// q8 row: `groups` groups of `group` int8 (row padded to groups*group), f16 scale per group.
/// Each group's 4-lane partial sums are scaled and added to a row accumulator; one horizontal
/// sum per row.
unsafe fn dot_q8(
    w: *const i8,
    scales: *const u16,
    x: *const f32,
    cols: usize,
    group: usize,
) -> f32 {
    let groups = (cols + group - 1) / group;
    let mut row = f32x4_splat(0.0);
    let mut tail = 0.0f32;
    for g in 0..groups {
        let start = g * group;
        let end = if start + group < cols {
            start + group
        } else {
            cols
        };
        let mut acc = f32x4_splat(0.0);
        let mut i = start;
        while i + 16 <= end {
            let q = v128_load(w.add(i) as *const v128);
            let lo = i16x8_extend_low_i8x16(q);
            let hi = i16x8_extend_high_i8x16(q);
            let parts = [
                i32x4_extend_low_i16x8(lo),
                i32x4_extend_high_i16x8(lo),
                i32x4_extend_low_i16x8(hi),
                i32x4_extend_high_i16x8(hi),
            ];
            for k in 0..4 {
                let xv = v128_load(x.add(i + 4 * k) as *const v128);
                acc = f32x4_add(acc, f32x4_mul(small_i32x4_to_f32(parts[k]), xv));
            }
            i += 16;
        }
        let scale = f16_to_f32(*scales.add(g));
        row = f32x4_add(row, f32x4_mul(acc, f32x4_splat(scale)));
        let mut s = 0.0f32;
        while i < end {
            s += (*w.add(i) as f32) * *x.add(i);
            i += 1;
        }
        tail += s * scale;
    }
    hsum(row) + tail
}

/// out (m, out_stride) = x (m, x_stride) times W^T for W (rows, cols) f32 row-major.
#[no_mangle]
pub unsafe extern "C" fn gemm_f32(
    w: *const f32,
    x: *const f32,
    x_stride: usize,
    m: usize,
    rows: usize,
    cols: usize,
    out: *mut f32,
    out_stride: usize,
) {
    for t in 0..m {
        for r in 0..rows {
            *out.add(t * out_stride + r) = dot_f32(w.add(r * cols), x.add(t * x_stride), cols);
        }
    }
}

/// As gemm_f32 for W (rows, cols) f16 row-major.
#[no_mangle]
pub unsafe extern "C" fn gemm_f16(
    w: *const u16,
    x: *const f32,
    x_stride: usize,
    m: usize,
    rows: usize,
    cols: usize,
    out: *mut f32,
    out_stride: usize,
) {
    for t in 0..m {
        for r in 0..rows {
            *out.add(t * out_stride + r) = dot_f16(w.add(r * cols), x.add(t * x_stride), cols);
        }
    }
}

/// As gemm_f32 for q8 weights (encoding.ts layout; scales from `scale_offset` bytes).
#[no_mangle]
pub unsafe extern "C" fn gemm_q8(
    w: *const i8,
    scale_offset: usize,
    group: usize,
    x: *const f32,
    x_stride: usize,
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
    let scales = (w as *const u8).add(scale_offset) as *const u16;
    for t in 0..m {
        for r in 0..rows {
            *out.add(t * out_stride + r) = dot_q8(
                w.add(r * row_bytes),
                scales.add(r * groups),
                x.add(t * x_stride),
                cols,
                group,
            );
        }
    }
    0
}

