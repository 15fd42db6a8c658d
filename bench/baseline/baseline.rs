//! Measuring sticks for bench/kernels.ts, not used by the runtime: compiled into the crate
//! (kernels-wasm/src/lib.rs) only with the `bench` feature, for pkg/crumb_kernels_bench.wasm.
//!
//! `gemv_dequant_*`: the GEMV a straightforward port without lookup tables would write:
//! dequantise one weight row to f32 into a scratch row, then a plain SIMD128 f32 dot product
//! with the activations. They read the same packed layouts as the LUT and q8 kernels
//! (runtime/format/encoding.ts), so one PackedMatrix feeds both. Each call computes the rows
//! [begin, end) so a worker pool can shard it like the real kernels; every shard needs its own
//! scratch of cols rounded up to the group, in f32.
//!
//! `stream_sum_u32`: a streaming read (wrapping sum of u32 words, four accumulators) whose
//! time over a buffer much larger than the last-level cache is the machine's read bandwidth.
//!
//! Twins: runtime/kernels/reference/baseline.ts.
use crate::dense::f16_to_f32;
use crate::gemm::{block_bytes, MODE_PER_PLANE, MODE_TERNARY, MODE_ZERO_POINT, ROW_TILE};
use core::arch::wasm32::*;

/// Plain f32 dot product: two 4-lane accumulators, one horizontal sum, scalar tail.
unsafe fn dot(w: *const f32, x: *const f32, n: usize) -> f32 {
    let mut a0 = f32x4_splat(0.0);
    let mut a1 = f32x4_splat(0.0);
    let mut i = 0;
    while i + 8 <= n {
        let w0 = v128_load(w.add(i) as *const v128);
        let w1 = v128_load(w.add(i + 4) as *const v128);
        a0 = f32x4_add(a0, f32x4_mul(w0, v128_load(x.add(i) as *const v128)));
        a1 = f32x4_add(a1, f32x4_mul(w1, v128_load(x.add(i + 4) as *const v128)));
        i += 8;
    }
    let a = f32x4_add(a0, a1);
    let mut s = (f32x4_extract_lane::<0>(a) + f32x4_extract_lane::<1>(a))
        + (f32x4_extract_lane::<2>(a) + f32x4_extract_lane::<3>(a));
    while i < n {
        s += *w.add(i) * *x.add(i);
        i += 1;
    }
    s
}

/// Row `j` (0..16) of one row tile of a bit-plane/ternary matrix to f32 at dst
/// (groups * group values). Index byte `2(j%8) + j/8` of every 16-byte vector holds the row's
/// 8 columns of one plane (bit b = column 8i + b); the row's scales are entry j of each scale
/// vector.
unsafe fn dequant_lut_row(
    tile: *const u8,
    planes: usize,
    group: usize,
    groups: usize,
    mode: u32,
    j: usize,
    dst: *mut f32,
) {
    let blk_bytes = block_bytes(planes, group, mode);
    let at = 2 * (j % 8) + j / 8;
    let mut codes = [0u8; 128];
    for g in 0..groups {
        let blk = tile.add(g * blk_bytes);
        for c in 0..group {
            codes[c] = 0;
        }
        for i in 0..group / 8 {
            for p in 0..planes {
                let byte = *blk.add(16 * (i * planes + p) + at);
                for b in 0..8 {
                    codes[8 * i + b] |= ((byte >> b) & 1) << p;
                }
            }
        }
        let sc = blk.add(2 * planes * group) as *const u16;
        let scale = |v: usize| f16_to_f32(*sc.add(16 * v + j));
        let out = dst.add(g * group);
        match mode {
            MODE_ZERO_POINT => {
                let (d, z) = (scale(0), scale(1));
                for c in 0..group {
                    *out.add(c) = d * (codes[c] as f32 - z);
                }
            }
            MODE_PER_PLANE => {
                let z = scale(planes);
                for c in 0..group {
                    let mut w = z;
                    for p in 0..planes {
                        w += scale(p) * ((codes[c] >> p) & 1) as f32;
                    }
                    *out.add(c) = w;
                }
            }
            _ => {
                for c in 0..group {
                    let mut w = 0.0f32;
                    for k in 0..planes / 2 {
                        w += scale(k) * (((codes[c] >> (2 * k)) & 3) as f32 - 1.0);
                    }
                    *out.add(c) = w;
                }
            }
        }
    }
}

/// Rows [begin, end) of out = W x for a bit-plane (mode 0 zero-point, 1 per-plane) or ternary
/// (mode 2, planes 2 or 4) matrix W (rows, cols) at `w`; `scratch` holds one dequantised row.
/// Returns 0, or -1 for an unsupported planes/group/mode or a bad row range.
#[no_mangle]
pub unsafe extern "C" fn gemv_dequant_lut(
    planes: usize,
    group: usize,
    mode: u32,
    w: *const u8,
    x: *const f32,
    rows: usize,
    cols: usize,
    begin: usize,
    end: usize,
    out: *mut f32,
    scratch: *mut f32,
) -> i32 {
    let planes_ok = match mode {
        MODE_ZERO_POINT | MODE_PER_PLANE => planes >= 1 && planes <= 4,
        MODE_TERNARY => planes == 2 || planes == 4,
        _ => false,
    };
    if !planes_ok || (group != 32 && group != 64 && group != 128) || begin > end || end > rows {
        return -1;
    }
    let groups = (cols + group - 1) / group;
    let tile_bytes = groups * block_bytes(planes, group, mode);
    for r in begin..end {
        let tile = w.add((r / ROW_TILE) * tile_bytes);
        dequant_lut_row(tile, planes, group, groups, mode, r % ROW_TILE, scratch);
        *out.add(r) = dot(scratch, x, cols);
    }
    0
}

/// Rows [begin, end) of out = W x for a q8 matrix (int8 rows padded to the group, f16 scales
/// `scale_offset` bytes after w). Returns 0, or -1 for a bad group or row range.
#[no_mangle]
pub unsafe extern "C" fn gemv_dequant_q8(
    w: *const i8,
    scale_offset: usize,
    group: usize,
    x: *const f32,
    rows: usize,
    cols: usize,
    begin: usize,
    end: usize,
    out: *mut f32,
    scratch: *mut f32,
) -> i32 {
    if group == 0 || group % 16 != 0 || begin > end || end > rows {
        return -1;
    }
    let groups = (cols + group - 1) / group;
    let scales = (w as *const u8).add(scale_offset) as *const u16;
    for r in begin..end {
        let row = w.add(r * groups * group);
        for g in 0..groups {
            let d = f16_to_f32(*scales.add(r * groups + g));
            for c in g * group..(g + 1) * group {
                *scratch.add(c) = *row.add(c) as f32 * d;
            }
        }
        *out.add(r) = dot(scratch, x, cols);
    }
    0
}

/// Rows [begin, end) of out = W x for an f16 row-major matrix, one row converted at a time.
#[no_mangle]
pub unsafe extern "C" fn gemv_dequant_f16(
    w: *const u16,
    x: *const f32,
    rows: usize,
    cols: usize,
    begin: usize,
    end: usize,
    out: *mut f32,
    scratch: *mut f32,
) -> i32 {
    if begin > end || end > rows {
        return -1;
    }
    for r in begin..end {
        let row = w.add(r * cols);
        for c in 0..cols {
            *scratch.add(c) = f16_to_f32(*row.add(c));
        }
        *out.add(r) = dot(scratch, x, cols);
    }
    0
}

/// Rows [begin, end) of out = W x for an f32 row-major matrix: nothing to dequantise, the
/// plain dot on the weights in place.
#[no_mangle]
pub unsafe extern "C" fn gemv_dequant_f32(
    w: *const f32,
    x: *const f32,
    rows: usize,
    cols: usize,
    begin: usize,
    end: usize,
    out: *mut f32,
) -> i32 {
    if begin > end || end > rows {
        return -1;
    }
    for r in begin..end {
        *out.add(r) = dot(w.add(r * cols), x, cols);
    }
    0
}

/// Wrapping sum of the `words` u32 at p (p 16-byte aligned): reads every byte once.
#[no_mangle]
pub unsafe extern "C" fn stream_sum_u32(p: *const u32, words: usize) -> u32 {
    let mut acc = [i32x4_splat(0); 4];
    let mut i = 0;
    while i + 16 <= words {
        for k in 0..4 {
            acc[k] = i32x4_add(acc[k], v128_load(p.add(i + 4 * k) as *const v128));
        }
        i += 16;
    }
    let a = i32x4_add(i32x4_add(acc[0], acc[1]), i32x4_add(acc[2], acc[3]));
    let mut s = (i32x4_extract_lane::<0>(a) as u32)
        .wrapping_add(i32x4_extract_lane::<1>(a) as u32)
        .wrapping_add(i32x4_extract_lane::<2>(a) as u32)
        .wrapping_add(i32x4_extract_lane::<3>(a) as u32);
    while i < words {
        s = s.wrapping_add(*p.add(i));
        i += 1;
    }
    s
}
