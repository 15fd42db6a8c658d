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
use crate::gemm::{block_bytes, COL_BLOCK, MODE_OFFSET, MODE_PER_PLANE, MODE_TERNARY, ROW_TILE, SCALE_BF16};
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

/// f32 of one stored scale (f16 or bf16 bits).
fn scale_value(bits: u16, scale_type: u32) -> f32 {
    if scale_type == SCALE_BF16 {
        f32::from_bits((bits as u32) << 16)
    } else {
        f16_to_f32(bits)
    }
}

/// Row `row` of a bit-plane/ternary matrix (layout: runtime/format/encoding.ts) to f32 at dst
/// (groups * group values): for each group, find the row's block in its column block, gather
/// the row's bits from the unit vectors, then apply the row's scales.
unsafe fn dequant_lut_row(
    w: *const u8,
    planes: usize,
    group: usize,
    mode: u32,
    scale_type: u32,
    rows: usize,
    cols: usize,
    row: usize,
    dst: *mut f32,
) {
    let groups = (cols + group - 1) / group;
    let tiles = (rows + ROW_TILE - 1) / ROW_TILE;
    let blk_bytes = block_bytes(planes, group, mode);
    let per_block = COL_BLOCK / group;
    let (tile, j) = (row / ROW_TILE, row % ROW_TILE);
    let (h, rr) = (j / 8, j % 8);
    // Byte of the row in a pair vector of half h (plane offset p added), and in a lone vector.
    let pair_at = 4 * (rr % 4) + 2 * (rr / 4);
    let lone_at = pair_at + h;
    let pairs = planes / 2;
    let vectors = 2 * pairs + (planes & 1);
    let mut codes = [0u8; 256];
    for g in 0..groups {
        let g0 = (g / per_block) * per_block;
        let gn = if groups - g0 < per_block { groups - g0 } else { per_block };
        let blk = w.add(g0 * tiles * blk_bytes + (tile * gn + g - g0) * blk_bytes);
        for c in 0..group {
            codes[c] = 0;
        }
        for i in 0..group / 8 {
            let v0 = blk.add(16 * vectors * i);
            for p in 0..planes {
                let byte = if p < 2 * pairs {
                    *v0.add(16 * (2 * (p / 2) + h) + pair_at + p % 2)
                } else {
                    *v0.add(16 * 2 * pairs + lone_at)
                };
                for b in 0..8 {
                    codes[8 * i + b] |= ((byte >> b) & 1) << p;
                }
            }
        }
        let sc = blk.add(2 * planes * group) as *const u16;
        let scale = |v: usize| scale_value(*sc.add(16 * v + 8 * h + 2 * (rr % 4) + rr / 4), scale_type);
        let out = dst.add(g * group);
        match mode {
            MODE_OFFSET => {
                let (d, m) = (scale(0), scale(1));
                for c in 0..group {
                    *out.add(c) = d * codes[c] as f32 + m;
                }
            }
            MODE_PER_PLANE => {
                let m = scale(planes);
                for c in 0..group {
                    let mut w = m;
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

/// Rows [begin, end) of out = W x for a bit-plane (mode 0 offset, 1 per-plane) or ternary
/// (mode 2, planes 2 or 4) matrix W (rows, cols) at `w` with f16 (0) or bf16 (1) scales;
/// `scratch` holds one dequantised row. Returns 0, or -1 for an unsupported combination or a
/// bad row range.
#[no_mangle]
pub unsafe extern "C" fn gemv_dequant_lut(
    planes: usize,
    group: usize,
    mode: u32,
    scale_type: u32,
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
        MODE_OFFSET | MODE_PER_PLANE => planes >= 1 && planes <= 4,
        MODE_TERNARY => planes == 2 || planes == 4,
        _ => false,
    };
    if !planes_ok || (group != 32 && group != 64 && group != 128 && group != 256) || scale_type > SCALE_BF16 || begin > end || end > rows {
        return -1;
    }
    for r in begin..end {
        dequant_lut_row(w, planes, group, mode, scale_type, rows, cols, r, scratch);
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
