//! Dequantisation of the compressed attention caches' rows (KIVI q8/q4 keys and values, XQuant's
//! X and latents): asymmetric uniform b-bit codes, b ∈ {2, 3, 4, 8}, x̂ = min + code·step with
//! f16 (min, step) pairs. Codes are bit-packed per row, least significant bits first, so a row
//! of `width` codes takes ceil(width·b/8) bytes (runtime/engine/kv-cache/kv-quant.ts writes
//! them; its dequantisers are the twins). Two parameter layouts:
//!   per token:   params (rows, ceil(width/group), 2), one pair per group of channels of a row;
//!   per channel: params (blocks, width, 2), one pair per channel shared by the rows of a block.
//! code·step is exact in f32 (8-bit code × 11-bit f16 mantissa), so min + code·step rounds
//! once, as the twins' f64 sum rounded to f32 does: the outputs are bit-identical.
//! Sixteen codes start on a byte boundary for every b (16·b bits), which the SIMD path uses.
use crate::f16::f16x4_to_f32x4;
use core::arch::wasm32::*;

fn f16_to_f32(h: u16) -> f32 {
    f32x4_extract_lane::<0>(f16x4_to_f32x4(u32x4_splat(h as u32)))
}

/// Code `c` of a packed row (scalar; any b ≤ 8).
#[inline(always)]
unsafe fn code_at(row: *const u8, c: usize, bits: usize) -> u32 {
    let bit = c * bits;
    let shift = bit & 7;
    let mut v = (*row.add(bit >> 3) as u32) >> shift;
    if shift + bits > 8 {
        v |= (*row.add((bit >> 3) + 1) as u32) << (8 - shift);
    }
    v & ((1 << bits) - 1)
}

/// The 16 codes c0..c0+15 of a packed row (c0 a multiple of 16, all 16 inside the row) as u8 lanes.
#[inline(always)]
unsafe fn codes16(row: *const u8, c0: usize, bits: usize) -> v128 {
    let at = row.add(c0 * bits / 8);
    match bits {
        8 => v128_load(at as *const v128),
        4 => {
            let packed = v128_load64_zero(at as *const u64);
            let lo = v128_and(packed, u8x16_splat(15));
            let hi = u8x16_shr(packed, 4);
            i8x16_shuffle::<0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23>(lo, hi)
        }
        _ => {
            let mut out = [0u8; 16];
            for (j, o) in out.iter_mut().enumerate() {
                *o = code_at(at, j, bits) as u8;
            }
            v128_load(out.as_ptr() as *const v128)
        }
    }
}

/// Four groups of four u8 code lanes as f32x4. A code v becomes the f32 with bits 0x4B00_0000 | v
/// (2^23 + v, exact) minus 2^23: LLVM turns u32→f32 conversions of extended lanes into
/// per-lane scalar converts, which made this loop several times slower.
#[inline(always)]
fn codes_to_f32(c: v128) -> [v128; 4] {
    let lo = u16x8_extend_low_u8x16(c);
    let hi = u16x8_extend_high_u8x16(c);
    let exponent = u32x4_splat(0x4B00_0000);
    let two23 = f32x4_splat(8_388_608.0);
    let as_f32 = |w: v128| f32x4_sub(v128_or(w, exponent), two23);
    [
        as_f32(u32x4_extend_low_u16x8(lo)),
        as_f32(u32x4_extend_high_u16x8(lo)),
        as_f32(u32x4_extend_low_u16x8(hi)),
        as_f32(u32x4_extend_high_u16x8(hi)),
    ]
}

/// Per-token groups: out (rows, width) f32 from codes (rows, ceil(width·bits/8)) and params
/// (rows, ceil(width/group), 2) f16.
#[no_mangle]
pub unsafe extern "C" fn kv_dequant_token(codes: *const u8, params: *const u16, out: *mut f32, rows: u32, width: u32, group: u32, bits: u32) {
    let (width, group, bits) = (width as usize, group as usize, bits as usize);
    let row_bytes = (width * bits + 7) / 8;
    let groups = (width + group - 1) / group;
    let simd = group % 16 == 0;
    for r in 0..rows as usize {
        let row = codes.add(r * row_bytes);
        let p = params.add(r * 2 * groups);
        let o = out.add(r * width);
        for g in 0..groups {
            let (min, step) = (f16_to_f32(*p.add(2 * g)), f16_to_f32(*p.add(2 * g + 1)));
            let (c0, c1) = (g * group, width.min((g + 1) * group));
            let mut c = c0;
            if simd {
                let (vmin, vstep) = (f32x4_splat(min), f32x4_splat(step));
                while c + 16 <= c1 {
                    let x = codes_to_f32(codes16(row, c, bits));
                    for (k, xk) in x.iter().enumerate() {
                        v128_store(o.add(c + 4 * k) as *mut v128, f32x4_add(vmin, f32x4_mul(*xk, vstep)));
                    }
                    c += 16;
                }
            }
            while c < c1 {
                *o.add(c) = min + code_at(row, c, bits) as f32 * step;
                c += 1;
            }
        }
    }
}

/// Per-channel parameters: out (rows, width) f32 from codes (rows, ceil(width·bits/8)) and
/// params (ceil(rows/block), width, 2) f16, one (min, step) per channel for each block of
/// `block` rows (row 0 starts a block).
#[no_mangle]
pub unsafe extern "C" fn kv_dequant_channel(codes: *const u8, params: *const u16, out: *mut f32, rows: u32, width: u32, bits: u32, block: u32) {
    let (rows, width, bits, block) = (rows as usize, width as usize, bits as usize, block as usize);
    let row_bytes = (width * bits + 7) / 8;
    let mut r0 = 0;
    while r0 < rows {
        let n = block.min(rows - r0);
        channel_block(codes.add(r0 * row_bytes), params.add(r0 / block * 2 * width), out.add(r0 * width), n, width, bits);
        r0 += n;
    }
}

/// One block: `rows` rows sharing the (width, 2) parameters.
unsafe fn channel_block(codes: *const u8, params: *const u16, out: *mut f32, rows: usize, width: usize, bits: usize) {
    let row_bytes = (width * bits + 7) / 8;
    let mut c0 = 0;
    // Channels outer, rows inner: a chunk's 16 (min, step) pairs are decoded once per block.
    while c0 + 16 <= width {
        let mut mins = [f32x4_splat(0.0); 4];
        let mut steps = [f32x4_splat(0.0); 4];
        for k in 0..4 {
            let pairs = params.add(2 * (c0 + 4 * k));
            let lanes = |j: usize| f16_to_f32(*pairs.add(j));
            mins[k] = f32x4(lanes(0), lanes(2), lanes(4), lanes(6));
            steps[k] = f32x4(lanes(1), lanes(3), lanes(5), lanes(7));
        }
        for r in 0..rows {
            let x = codes_to_f32(codes16(codes.add(r * row_bytes), c0, bits));
            let o = out.add(r * width + c0);
            for k in 0..4 {
                v128_store(o.add(4 * k) as *mut v128, f32x4_add(mins[k], f32x4_mul(x[k], steps[k])));
            }
        }
        c0 += 16;
    }
    for c in c0..width {
        let (min, step) = (f16_to_f32(*params.add(2 * c)), f16_to_f32(*params.add(2 * c + 1)));
        for r in 0..rows {
            *out.add(r * width + c) = min + code_at(codes.add(r * row_bytes), c, bits) as f32 * step;
        }
    }
}
