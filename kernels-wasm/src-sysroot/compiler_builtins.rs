//! The smallest `compiler_builtins` the kernels link against: Debian's rustc-web ships no
//! prebuilt wasm32 standard library, and the kernels (no_std, no allocator) only need the
//! two libm functions LLVM calls for `f32::max`/`f32::min` on scalars. IEEE 754 maxNum/minNum
//! semantics: a NaN operand yields the other one.
#![no_std]
#![feature(compiler_builtins)]
#![compiler_builtins]
#![no_builtins]

#[no_mangle]
pub extern "C" fn fmaxf(a: f32, b: f32) -> f32 {
    if a.is_nan() || b > a {
        b
    } else {
        a
    }
}

#[no_mangle]
pub extern "C" fn fminf(a: f32, b: f32) -> f32 {
    if a.is_nan() || b < a {
        b
    } else {
        a
    }
}
