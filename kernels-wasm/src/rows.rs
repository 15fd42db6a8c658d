//! Row kernels of the run state (runtime/ops/wasm-ops.ts), SIMD128: a bias broadcast over the
//! rows of a matmul output, and one row of a q8 matrix to f32 (embedding lookups of q8 tables).
//! Both are exact: the bias add is one f32 addition per element, and a q8 code times its f16
//! group scale needs at most 8 + 11 significant bits, so the f32 product is not rounded.
use crate::f16::f16x4_finite_to_f32;
use crate::vmath::*;
use core::arch::wasm32::*;

/// out (rows, n) = x (rows, n) + bias (n) on every row; out may be x.
#[no_mangle]
pub unsafe extern "C" fn add_rows_f32(x: *const f32, bias: *const f32, out: *mut f32, rows: u32, n: u32) {
    let n = n as usize;
    for r in 0..rows as usize {
        map2(x.add(r * n), bias, out.add(r * n), n, |a, b| f32x4_add(a, b));
    }
}

/// out (n) = codes (n int8) · scales (ceil(n/group) f16) per group of `group` codes (q8 layout of
/// runtime/format/encoding.ts, one row); group ≥ 1.
#[no_mangle]
pub unsafe extern "C" fn q8_row_f32(codes: *const i8, scales: *const u16, group: u32, n: u32, out: *mut f32) {
    let (group, n) = (group as usize, n as usize);
    let mut c = 0;
    while c < n {
        let g = c / group;
        let s = f32x4_extract_lane::<0>(f16x4_finite_to_f32(u32x4_splat(*scales.add(g) as u32)));
        let scale = f32x4_splat(s);
        let end = n.min((g + 1) * group);
        while c + 4 <= end {
            let q = i32x4_extend_low_i16x8(i16x8_extend_low_i8x16(v128_load32_zero(codes.add(c) as *const u32)));
            store(out.add(c), f32x4_mul(f32x4_convert_i32x4(q), scale));
            c += 4;
        }
        while c < end {
            *out.add(c) = *codes.add(c) as f32 * s;
            c += 1;
        }
    }
}
