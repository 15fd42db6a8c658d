//! Activation side of the LUT matmul (T-MAC, arXiv 2407.00088): per-group int8 lookup
//! tables and per-token int8 activation quantisation.
//!
//! Table layout for one input vector of `cols` activations and weight group `group` (G):
//! `groups = ceil(cols / G)` blocks of `G/4` tables of 16 bytes each (quad c of the group at
//! byte 16*c), then `groups` pairs of f32 (table scale ts, sum of the group's activations).
//! Entry `idx` of quad (a0,a1,a2,a3) is q + 128 (stored biased, unsigned: see gemm.rs
//! group_sums) with the int8 q approximating sum_i (bit i of idx ? +a_i : -a_i) / ts.
//! Mirror consolidation: the 8 entries with bit 3 set are computed, entry 15-idx is the
//! negation of entry idx (exactly, in the int8 domain). Columns past `cols` read as 0.
//! One scale per group (the weight group) keeps the per-group rescale a single f32 multiply.
//! Rounding is round-half-to-even through the 1.5*2^23 trick, so the TypeScript twin
//! (runtime/kernels/reference/matmul.ts) reproduces every byte.

const ROUND_MAGIC: f32 = 12582912.0; // 1.5 * 2^23

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

#[inline(always)]
unsafe fn act(x: *const f32, cols: usize, i: usize) -> f32 {
    if i < cols {
        *x.add(i)
    } else {
        0.0
    }
}

/// Builds the tables of one input vector `x` (cols f32) for weight group `group` at `lut`.
/// Returns 0, or -1 when `group` is not 32, 64 or 128.
#[no_mangle]
pub unsafe extern "C" fn build_lut_f32(x: *const f32, cols: usize, group: usize, lut: *mut u8) -> i32 {
    if group != 32 && group != 64 && group != 128 {
        return -1;
    }
    let groups = (cols + group - 1) / group;
    let meta = lut.add(groups * 4 * group) as *mut f32;
    for g in 0..groups {
        let base = g * group;
        let quads = group / 4;
        let mut lane = [0.0f32; 4];
        let mut maxsum = 0.0f32;
        for c in 0..quads {
            let mut a = [0.0f32; 4];
            for i in 0..4 {
                a[i] = act(x, cols, base + 4 * c + i);
                lane[i] += a[i];
            }
            let s = (abs(a[0]) + abs(a[1])) + (abs(a[2]) + abs(a[3]));
            if s > maxsum {
                maxsum = s;
            }
        }
        let ts = maxsum / 127.0;
        let inv = if maxsum > 0.0 { 127.0 / maxsum } else { 0.0 };
        let tables = lut.add(g * 4 * group);
        for c in 0..quads {
            let mut a = [0.0f32; 4];
            for i in 0..4 {
                a[i] = act(x, cols, base + 4 * c + i);
            }
            let t = tables.add(16 * c);
            for idx in 8..16usize {
                let s0 = if idx & 1 != 0 { a[0] } else { -a[0] };
                let s1 = if idx & 2 != 0 { a[1] } else { -a[1] };
                let s2 = if idx & 4 != 0 { a[2] } else { -a[2] };
                let e = ((a[3] + s0) + s1) + s2;
                let mut q = round_even(e * inv);
                if q > 127.0 {
                    q = 127.0;
                } else if q < -127.0 {
                    q = -127.0;
                }
                let q = q as i32;
                *t.add(idx) = (q + 128) as u8;
                *t.add(15 - idx) = (128 - q) as u8;
            }
        }
        *meta.add(2 * g) = ts;
        *meta.add(2 * g + 1) = (lane[0] + lane[1]) + (lane[2] + lane[3]);
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
        let r = build_lut_f32(x.add(t * x_stride), cols, group, lut.add(t * stride));
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
