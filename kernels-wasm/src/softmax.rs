//! Numerically stable softmax over rows of f32, in place, SIMD128 (max-subtracted, as torch does).
use crate::vmath::softmax_in_place;

/// Softmax of each of `rows` rows of n floats at x (rows, n), in place.
#[no_mangle]
pub unsafe extern "C" fn softmax_f32(x: *mut f32, rows: u32, n: u32) {
    let n = n as usize;
    for r in 0..rows as usize {
        softmax_in_place(x.add(r * n), n);
    }
}
