//! LUT mixed-precision GEMV/GEMM over bit-plane and ternary weights (T-MAC, arXiv
//! 2407.00088), SIMD128. Weight layout: runtime/format/encoding.ts; tables: lut.rs.
//!
//! Layout in brief: 2048-column blocks, within a block row tiles of 16, within a tile one
//! block per weight group: index vectors, then the scale vectors. For each pair of 4-column
//! quads (2i, 2i+1) the index vectors come unit by unit: a *pair unit* (bit-planes 2u, 2u+1)
//! is two vectors (rows 0-7, rows 8-15) whose byte 4j+2s+p holds row j+4s, plane 2u+p; a
//! *lone unit* (the last plane when the count is odd) is one vector whose byte 4j+2s+e holds
//! row 8e+j+4s. The low nibble indexes quad 2i's table, the high nibble quad 2i+1's.
//!
//! Per index vector: two `i8x16.relaxed_swizzle` lookups (signed tables, lut.rs), each
//! widened with the plane weights in one instruction. Two flavours with identical integer
//! results, chosen per process (`set_lut_flavor`):
//! - `FLAVOR_MADD` (x86): `i16x8.relaxed_dot_i8x16_i7x16` (PMADDUBSW) with byte weights
//!   (1, 2) per pair, into one i16 lane per row;
//! - `FLAVOR_DOT` (ARM64 with dot products): `i32x4.relaxed_dot_i8x16_i7x16_add` (SDOT) with
//!   weights (1, 2, 0, 0) and (0, 0, 1, 2), into i32 lanes for rows 0-3 and 4-7.
//! Both orders give rows (0,4,1,5,2,6,3,7) per 8-row half in i16 lanes, which is the order of
//! the stored scales, so PMADDWD both extracts rows 0-3 / 4-7 and widens f16 scales.
//! The weights (1, 2, 4, 8) are the i7 operand, within 0..127 on every engine.
//!
//! Integer sums per (row, group, set) S, then in f32 per group (ts, sx: the tables' scale
//! and activation sum; S8 = 8192*S and ts8 = ts/2/8192 so both flavours share PMADDWD's
//! constant and give identical f32 values; the signed tables give bit*a = (ts*L + sx)/2):
//!   offset (w = d*q + m):              acc += ((S8*ts8)*d + (d*(2^B-1)/2 + m)*sx)
//!   per-plane (w = sum_p s_p*bit_p + m): acc += (sum_p (S8_p*ts8)*s_p + ((sum_p s_p)/2 + m)*sx)
//!   ternary (w = sum_k alpha_k*t_k):    acc += sum_k ((S8_k*ts8) + sx/2)*alpha_k
//! i16 accumulation bound: a quad pair adds at most 254 * (sum of the set's plane weights) to
//! a lane, so a chunk of at most 128 / 32 / 16 / 8 quad pairs (offset mode with 1 / 2 / 3 / 4
//! planes; ternary 32, per-plane 128) stays within i16; longer groups are summed chunk by
//! chunk and widened in between. Several tokens share each index vector load and nibble split (prefill
//! tiles of up to 4).
use crate::f16::{bf16x8_to_f32x4_pair, f16x8_to_f32x4_pair};
use crate::lut_sums::{block_sums_dot, block_sums_madd, sets};
use core::arch::wasm32::*;

pub const ROW_TILE: usize = 16;
/// Columns per column block: one block's tables (4 bytes per column) stay in L1 while the
/// weights stream.
pub const COL_BLOCK: usize = 2048;
pub const MODE_OFFSET: u32 = 0;
pub const MODE_PER_PLANE: u32 = 1;
pub const MODE_TERNARY: u32 = 2;
pub const SCALE_F16: u32 = 0;
pub const SCALE_BF16: u32 = 1;
pub const FLAVOR_MADD: u32 = 0;
pub const FLAVOR_DOT: u32 = 1;
pub(crate) const MAX_SETS: usize = 4;
const TOKEN_TILE: usize = 4;

/// Quad pairs per i16 accumulation chunk (see the module comment): the whole group when it
/// fits, else the largest power of two under the bound.
#[inline(always)]
pub(crate) const fn chunk_pairs(planes: usize, mode: u32, group: usize) -> usize {
    let limit = match mode {
        MODE_OFFSET => [128, 32, 16, 8][planes - 1],
        MODE_TERNARY => 32,
        _ => 128,
    };
    if group / 8 < limit {
        group / 8
    } else {
        limit
    }
}

const _: () = assert!(254 * 1 * 128 < 32768 && 254 * 3 * 32 < 32768 && 254 * 7 * 16 < 32768 && 254 * 15 * 8 < 32768);

/// Which widening instruction the LUT kernels use (both give the same results). Lives in
/// linear memory, so one call configures every instance over the shared memory.
pub(crate) static mut FLAVOR: u32 = FLAVOR_MADD;

/// Selects the kernel flavour: 0 = i16 relaxed dot (x86), 1 = i32 relaxed dot-add (ARM64).
/// Returns 0, or -1 for an unknown flavour or one this build cannot run (the baseline build
/// has no relaxed SIMD and keeps the i16 flavour, emulated).
#[no_mangle]
pub unsafe extern "C" fn set_lut_flavor(flavor: u32) -> i32 {
    if flavor > FLAVOR_DOT || (flavor == FLAVOR_DOT && !cfg!(target_feature = "relaxed-simd")) {
        return -1;
    }
    FLAVOR = flavor;
    0
}

/// Scale vectors per block: offset 2 (d, m), per-plane B + 1 (s_0.., m), ternary B/2 (alpha_k).
#[inline(always)]
pub fn scale_vectors(planes: usize, mode: u32) -> usize {
    match mode {
        MODE_OFFSET => 2,
        MODE_PER_PLANE => planes + 1,
        _ => planes / 2,
    }
}

#[inline(always)]
pub fn block_bytes(planes: usize, group: usize, mode: u32) -> usize {
    2 * planes * group + 32 * scale_vectors(planes, mode)
}

/// The vector constants of the finalisation, made once per kernel call (see lut_sums.rs's `opaque`).
#[derive(Clone, Copy)]
pub(crate) struct Consts {
    /// PMADDWD multipliers (8192, 0) and (0, 8192): rows 0-3 / 4-7 of an i16 lane pair, x 8192.
    even: v128,
    odd: v128,
    f16_mask: v128,
    two112: v128,
    bf16_mask: v128,
}

/// The constants' values, read through a mutable static: JavaScriptCore forwards a constant
/// stored and reloaded within a function and then rematerialises it, but cannot see into
/// linear memory written by the data segment.
static mut CONSTS: [u32; 20] = [
    8192, 8192, 8192, 8192,
    8192 << 16, 8192 << 16, 8192 << 16, 8192 << 16,
    0x8fff_e000, 0x8fff_e000, 0x8fff_e000, 0x8fff_e000,
    0x7780_0000, 0x7780_0000, 0x7780_0000, 0x7780_0000, // 2^112
    0xffff_0000, 0xffff_0000, 0xffff_0000, 0xffff_0000,
];

impl Consts {
    #[inline(always)]
    pub(crate) fn new() -> Consts {
        unsafe {
            let p = core::ptr::addr_of!(CONSTS) as *const v128;
            let v = |i: usize| core::ptr::read_volatile(p.add(i));
            Consts { even: v(0), odd: v(1), f16_mask: v(2), two112: v(3), bf16_mask: v(4) }
        }
    }
}

/// Scale vector k of half h of a block as f32 (rows 0-3, rows 4-7).
#[inline(always)]
unsafe fn scales(scale_ptr: *const u8, k: usize, h: usize, scale_type: u32, c: &Consts) -> [v128; 2] {
    let v = v128_load(scale_ptr.add(32 * k + 16 * h) as *const v128);
    if scale_type == SCALE_F16 {
        f16x8_to_f32x4_pair(v, c.even, c.odd, c.f16_mask, c.two112)
    } else {
        bf16x8_to_f32x4_pair(v, c.bf16_mask)
    }
}

/// A block's scales as f32, converted once for all the tokens of a tile: sc[set][half][r]
/// (rows 0-3 / 4-7 of a half) and, for the bit-plane modes, the activation-sum coefficient
/// c = d*(2^B-1)/2 + m (offset) or (sum_p s_p)/2 + m (per-plane). The tables are signed (+-a
/// sums, lut.rs): sum_i bit_i*a_i = (ts*L + sx)/2, hence the sx terms.
struct BlockScales {
    sc: [[[v128; 2]; 2]; MAX_SETS],
    c: [[v128; 2]; 2],
}

#[inline(always)]
unsafe fn block_scales<const B: usize>(scale_ptr: *const u8, nsets: usize, mode: u32, scale_type: u32, k: &Consts) -> BlockScales {
    let mut out = BlockScales { sc: [[[f32x4_splat(0.0); 2]; 2]; MAX_SETS], c: [[f32x4_splat(0.0); 2]; 2] };
    for h in 0..2 {
        let mut sum = [f32x4_splat(0.0); 2];
        for set in 0..nsets {
            let sc = scales(scale_ptr, set, h, scale_type, k);
            out.sc[set][h] = sc;
            for r in 0..2 {
                sum[r] = if set == 0 { sc[r] } else { f32x4_add(sum[r], sc[r]) };
            }
        }
        if mode != MODE_TERNARY {
            let factor = if mode == MODE_OFFSET { ((1u32 << B) - 1) as f32 * 0.5 } else { 0.5 };
            let m = scales(scale_ptr, nsets, h, scale_type, k);
            for r in 0..2 {
                out.c[h][r] = f32x4_add(f32x4_mul(sum[r], f32x4_splat(factor)), m[r]);
            }
        }
    }
    out
}

/// Adds one block's terms for one token to acc (rows 0-3, 4-7 of each half), from per-set
/// integer sums already converted to f32 and scaled by 8192 (s8[set][half][r]):
/// y = sum_set (S8*ts8)*sc (ternary: ((S8*ts8) + sx/2)*alpha), then + c*sx, then acc += y.
#[inline(always)]
unsafe fn finalize(acc: &mut [[v128; 2]; 2], s8: &[[[v128; 2]; 2]; MAX_SETS], nsets: usize, bs: &BlockScales, meta: *const f32, mode: u32) {
    let ts8 = f32x4_splat(*meta * (0.5 / 8192.0));
    let sx = f32x4_splat(*meta.add(1));
    let half_sx = f32x4_mul(sx, f32x4_splat(0.5));
    for h in 0..2 {
        for r in 0..2 {
            let mut y = f32x4_splat(0.0);
            for set in 0..nsets {
                let x = f32x4_mul(s8[set][h][r], ts8);
                let term = if mode == MODE_TERNARY { f32x4_mul(f32x4_add(x, half_sx), bs.sc[set][h][r]) } else { f32x4_mul(x, bs.sc[set][h][r]) };
                y = if set == 0 { term } else { f32x4_add(y, term) };
            }
            if mode != MODE_TERNARY {
                y = f32x4_add(y, f32x4_mul(bs.c[h][r], sx));
            }
            acc[h][r] = f32x4_add(acc[h][r], y);
        }
    }
}

/// Output of one tile for T tokens: acc[t][half][r] holds rows 8*half + 4*r .. +3.
type TileAcc<const T: usize> = [[[v128; 2]; 2]; T];

/// One column block of one row tile for T tokens: adds every group's terms to acc.
#[inline(never)]
unsafe fn tile_block<const B: usize, const MODE: u32, const T: usize>(
    w: *const u8,
    group: usize,
    groups: usize,
    blk_bytes: usize,
    luts: [*const u8; T],
    meta: [*const f32; T],
    scale_type: u32,
    acc: &mut TileAcc<T>,
) {
    let c = Consts::new();
    if FLAVOR == FLAVOR_DOT {
        tile_block_dot::<B, MODE, T>(w, group, groups, blk_bytes, luts, meta, scale_type, acc, &c);
    } else {
        tile_block_madd::<B, MODE, T>(w, group, groups, blk_bytes, luts, meta, scale_type, acc, &c);
    }
}

macro_rules! tile_block_flavor {
    ($name:ident, $sums:ident, $convert:expr) => {
        #[inline(always)]
        unsafe fn $name<const B: usize, const MODE: u32, const T: usize>(
            w: *const u8,
            group: usize,
            groups: usize,
            blk_bytes: usize,
            luts: [*const u8; T],
            meta: [*const f32; T],
            scale_type: u32,
            acc: &mut TileAcc<T>,
            c: &Consts,
        ) {
            let nsets = sets(B, MODE);
            let index_bytes = 2 * B * group;
            let chunk = chunk_pairs(B, MODE, group);
            for g in 0..groups {
                let blk = w.add(g * blk_bytes);
                let mut tabs = luts;
                for t in 0..T {
                    tabs[t] = luts[t].add(g * 4 * group);
                }
                // S8 = 8192 * S as i32 per (token, set, half, rows 0-3 / 4-7), summed over chunks
                // (one chunk, the usual case, takes the branch without the additions).
                let mut s8 = [[[[i32x4_splat(0); 2]; 2]; MAX_SETS]; T];
                if chunk == group / 8 {
                    let sums = $sums::<B, MODE, T>(blk, tabs, 0, chunk);
                    for t in 0..T {
                        for set in 0..nsets {
                            for h in 0..2 {
                                s8[t][set][h] = $convert(&sums[t][set][h], c);
                            }
                        }
                    }
                } else {
                    let mut begin = 0;
                    while begin < group / 8 {
                        let sums = $sums::<B, MODE, T>(blk, tabs, begin, chunk);
                        for t in 0..T {
                            for set in 0..nsets {
                                for h in 0..2 {
                                    let part = $convert(&sums[t][set][h], c);
                                    s8[t][set][h] = [i32x4_add(s8[t][set][h][0], part[0]), i32x4_add(s8[t][set][h][1], part[1])];
                                }
                            }
                        }
                        begin += chunk;
                    }
                }
                let bs = block_scales::<B>(blk.add(index_bytes), nsets, MODE, scale_type, c);
                for t in 0..T {
                    let mut f = [[[f32x4_splat(0.0); 2]; 2]; MAX_SETS];
                    for set in 0..nsets {
                        for h in 0..2 {
                            f[set][h] = [f32x4_convert_i32x4(s8[t][set][h][0]), f32x4_convert_i32x4(s8[t][set][h][1])];
                        }
                    }
                    finalize(&mut acc[t], &f, nsets, &bs, meta[t].add(2 * g), MODE);
                }
            }
        }
    };
}

/// i16 sums of a half (lanes in (0,4,1,5,...) order) to i32 x 8192, rows 0-3 and 4-7.
#[inline(always)]
pub(crate) fn convert_madd(s: &v128, c: &Consts) -> [v128; 2] {
    [i32x4_dot_i16x8(*s, c.even), i32x4_dot_i16x8(*s, c.odd)]
}

/// i32 sums of a half (rows 0-3, 4-7) to i32 x 8192 (exact: |S| < 2^18).
#[inline(always)]
pub(crate) fn convert_dot(s: &[v128; 2], _c: &Consts) -> [v128; 2] {
    [i32x4_shl(s[0], 13), i32x4_shl(s[1], 13)]
}

tile_block_flavor!(tile_block_madd, block_sums_madd, convert_madd);
tile_block_flavor!(tile_block_dot, block_sums_dot, convert_dot);

/// Row r (0..16) of a tile accumulator, stored in row order to out for the rows present.
#[inline(always)]
unsafe fn store_tile(dst: *mut f32, acc: &[[v128; 2]; 2], n: usize) {
    let mut tmp = [0.0f32; ROW_TILE];
    for h in 0..2 {
        for r in 0..2 {
            v128_store(tmp.as_mut_ptr().add(8 * h + 4 * r) as *mut v128, acc[h][r]);
        }
    }
    for j in 0..n.min(ROW_TILE) {
        *dst.add(j) = tmp[j];
    }
}

#[inline(always)]
unsafe fn load_tile(src: *const f32, n: usize) -> [[v128; 2]; 2] {
    let mut tmp = [0.0f32; ROW_TILE];
    for j in 0..n.min(ROW_TILE) {
        tmp[j] = *src.add(j);
    }
    let mut acc = [[f32x4_splat(0.0); 2]; 2];
    for h in 0..2 {
        for r in 0..2 {
            acc[h][r] = v128_load(tmp.as_ptr().add(8 * h + 4 * r) as *const v128);
        }
    }
    acc
}

/// What one call computes: tokens [0, m) times rows [row_begin, row_end) of the matrix.
#[derive(Clone, Copy)]
struct Call {
    w: *const u8,
    lut: *const u8,
    lut_stride: usize,
    m: usize,
    rows: usize,
    row_begin: usize,
    row_end: usize,
    cols: usize,
    group: usize,
    out: *mut f32,
    out_stride: usize,
    scale_type: u32,
}

/// Runs tokens [t0, t0+T) over the call's row tiles, column block by column block.
#[inline(always)]
unsafe fn run_tokens<const B: usize, const MODE: u32, const T: usize>(c: &Call, t0: usize) {
    let g_size = c.group;
    let groups = (c.cols + g_size - 1) / g_size;
    let tiles = (c.rows + ROW_TILE - 1) / ROW_TILE;
    let blk_bytes = block_bytes(B, g_size, MODE);
    let per_block = COL_BLOCK / g_size;
    let lut_meta = groups * 4 * g_size;
    let mut luts = [c.lut; T];
    let mut meta = [c.lut as *const f32; T];
    for t in 0..T {
        luts[t] = c.lut.add((t0 + t) * c.lut_stride);
        meta[t] = luts[t].add(lut_meta) as *const f32;
    }
    let mut g0 = 0;
    while g0 < groups {
        let gn = if groups - g0 < per_block { groups - g0 } else { per_block };
        let base = c.w.add(g0 * tiles * blk_bytes);
        let mut bl = luts;
        let mut bm = meta;
        for t in 0..T {
            bl[t] = luts[t].add(g0 * 4 * g_size);
            bm[t] = meta[t].add(2 * g0);
        }
        let mut row = c.row_begin;
        while row < c.row_end {
            let tile = row / ROW_TILE;
            let n = c.row_end - row;
            let mut acc: TileAcc<T> = [[[f32x4_splat(0.0); 2]; 2]; T];
            if g0 > 0 {
                for t in 0..T {
                    acc[t] = load_tile(c.out.add((t0 + t) * c.out_stride + row), n);
                }
            }
            tile_block::<B, MODE, T>(base.add(tile * gn * blk_bytes), g_size, gn, blk_bytes, bl, bm, c.scale_type, &mut acc);
            for t in 0..T {
                store_tile(c.out.add((t0 + t) * c.out_stride + row), &acc[t], n);
            }
            row += ROW_TILE;
        }
        g0 += gn;
    }
}

unsafe fn run<const B: usize, const MODE: u32>(c: &Call) {
    let mut t = 0;
    while t < c.m {
        let left = c.m - t;
        if left >= TOKEN_TILE {
            run_tokens::<B, MODE, TOKEN_TILE>(c, t);
            t += TOKEN_TILE;
        } else if left >= 2 {
            run_tokens::<B, MODE, 2>(c, t);
            t += 2;
        } else {
            run_tokens::<B, MODE, 1>(c, t);
            t += 1;
        }
    }
}

/// LUT GEMM: `m` tokens (tables `lut_stride` bytes apart) times rows [row_begin, row_end) of
/// a (rows, cols) matrix of `planes` bit-planes at `w` (the whole matrix: column blocks span
/// every row), into out (m, out_stride) at out + 4*row. mode: 0 offset, 1 per-plane, 2
/// ternary (planes 2 or 4); scale_type: 0 f16, 1 bf16. row_begin must be a multiple of 16.
/// Returns 0, or -1 for an unsupported combination or range.
#[no_mangle]
pub unsafe extern "C" fn gemm_lut(
    planes: usize,
    group: usize,
    mode: u32,
    scale_type: u32,
    w: *const u8,
    lut: *const u8,
    lut_stride: usize,
    m: usize,
    rows: usize,
    row_begin: usize,
    row_end: usize,
    cols: usize,
    out: *mut f32,
    out_stride: usize,
) -> i32 {
    if scale_type > SCALE_BF16 {
        return -1;
    }
    if row_begin % ROW_TILE != 0 || row_begin > row_end || row_end > rows {
        return -1;
    }
    if group != 32 && group != 64 && group != 128 && group != 256 {
        return -1;
    }
    let c = Call { w, lut, lut_stride, m, rows, row_begin, row_end, cols, group, out, out_stride, scale_type };
    macro_rules! go {
        ($b:literal, $mode:expr) => {
            run::<$b, { $mode }>(&c)
        };
    }
    match (planes, mode) {
        (1, MODE_OFFSET) => go!(1, MODE_OFFSET),
        (2, MODE_OFFSET) => go!(2, MODE_OFFSET),
        (3, MODE_OFFSET) => go!(3, MODE_OFFSET),
        (4, MODE_OFFSET) => go!(4, MODE_OFFSET),
        (1, MODE_PER_PLANE) => go!(1, MODE_PER_PLANE),
        (2, MODE_PER_PLANE) => go!(2, MODE_PER_PLANE),
        (3, MODE_PER_PLANE) => go!(3, MODE_PER_PLANE),
        (4, MODE_PER_PLANE) => go!(4, MODE_PER_PLANE),
        (2, MODE_TERNARY) => go!(2, MODE_TERNARY),
        (4, MODE_TERNARY) => go!(4, MODE_TERNARY),
        _ => return -1,
    }
    0
}
