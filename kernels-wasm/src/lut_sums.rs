//! The lookup half of the LUT kernels (gemm.rs has the layout and the f32 half): per (row tile,
//! weight group) block, the index vectors' nibbles pick int8 entries from the activation
//! tables (lut.rs) and their plane-weighted integer sums S accumulate per row and set, in the
//! i16 flavour (PMADDUBSW, x86) or the i32 one (SDOT, ARM64); the two give identical sums.
//! Also the parity export of those sums, `lut_group_sums`.
use crate::gemm::{
    block_bytes, chunk_pairs, convert_dot, convert_madd, Consts, COL_BLOCK, FLAVOR, FLAVOR_DOT, MAX_SETS, MODE_OFFSET,
    MODE_PER_PLANE, MODE_TERNARY, ROW_TILE,
};
use crate::simd::lookup16;
use core::arch::wasm32::*;

/// Accumulator sets: offset 1 (planes combined), per-plane B, ternary B/2 (one per trit-plane).
#[inline(always)]
pub(crate) const fn sets(planes: usize, mode: u32) -> usize {
    match mode {
        MODE_OFFSET => 1,
        MODE_PER_PLANE => planes,
        _ => planes / 2,
    }
}

/// i16x8 "dot" of int8 lookups with byte weights (w_even, w_odd): lane L = w_even*q[2L] +
/// w_odd*q[2L+1]. One PMADDUBSW with relaxed SIMD; shifts and multiplies in the baseline.
#[inline(always)]
fn dot_i16(q: v128, w: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        i16x8_relaxed_dot_i8x16_i7x16(q, w)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        let even = i16x8_shr(i16x8_shl(q, 8), 8);
        let odd = i16x8_shr(q, 8);
        i16x8_add(i16x8_mul(even, i16x8_shr(i16x8_shl(w, 8), 8)), i16x8_mul(odd, i16x8_shr(w, 8)))
    }
}

/// i32x4 dot-add of int8 lookups with byte weights (4 per lane), ARM64 SDOT.
#[inline(always)]
fn dot_i32(q: v128, w: v128, acc: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        i32x4_relaxed_dot_i8x16_i7x16_add(q, w, acc)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        i32x4_add(acc, i32x4_dot_i16x8(dot_i16(q, w), i16x8_splat(1)))
    }
}

/// Byte-weight vectors for one index vector: which accumulator set each product goes to.
/// For the i16 flavour: (set, weights) pairs applied to both halves' accumulators; for the
/// i32 flavour the same weights split into rows 0-3 and 4-7.
#[derive(Clone, Copy)]
struct Weights {
    /// Up to two (set, byte pair) products per pair vector; lone vectors use `lone`.
    w: [(usize, i32); 2],
    n: usize,
}

/// Product weights of pair unit u in `mode`: offset: one product into set 0 with (4^u, 2*4^u);
/// per-plane: (1, 0) into set 2u and (0, 1) into set 2u+1; ternary: (1, 2) into set u.
#[inline(always)]
fn pair_weights(u: usize, mode: u32) -> Weights {
    let pair = |lo: i32, hi: i32| lo | (hi << 8);
    match mode {
        MODE_OFFSET => Weights { w: [(0, pair(1 << (2 * u), 2 << (2 * u))), (0, 0)], n: 1 },
        MODE_PER_PLANE => Weights { w: [(2 * u, pair(1, 0)), (2 * u + 1, pair(0, 1))], n: 2 },
        _ => Weights { w: [(u, pair(1, 2)), (0, 0)], n: 1 },
    }
}

/// (set, byte weight) of the lone plane B-1 (odd plane counts; bitplane modes only).
#[inline(always)]
fn lone_weight(planes: usize, mode: u32) -> (usize, i32) {
    if mode == MODE_OFFSET {
        (0, 1 << (planes - 1))
    } else {
        (planes - 1, 1)
    }
}

/// Integer sums of one (tile, group) block for T tokens, i16 flavour: acc[t][set][half],
/// lane L of a half = row (L>>1) + 4*(L&1).
#[inline(always)]
pub(crate) unsafe fn block_sums_madd<const B: usize, const MODE: u32, const T: usize>(
    idx: *const u8,
    tabs: [*const u8; T],
    pairs_begin: usize,
    pairs: usize,
) -> [[[v128; 2]; MAX_SETS]; T] {
    let mode = MODE;
    let mut acc = [[[i16x8_splat(0); 2]; MAX_SETS]; T];
    let mask = u8x16_splat(0x0f);
    let units = B / 2;
    let vectors = 2 * units + (B & 1);
    // Two quad pairs per iteration for one token (fewer loop instructions); one for more
    // tokens, whose tables already fill the registers.
    let unroll = if T == 1 { 2 } else { 1 };
    for j in 0..opaque(pairs / unroll) {
      for uu in 0..unroll {
        let i = pairs_begin + j * unroll + uu;
        let v0 = idx.add(16 * vectors * i);
        let mut ta = [i8x16_splat(0); T];
        let mut tb = [i8x16_splat(0); T];
        for t in 0..T {
            ta[t] = v128_load(tabs[t].add(32 * i) as *const v128);
            tb[t] = v128_load(tabs[t].add(32 * i + 16) as *const v128);
        }
        for u in 0..units {
            let wts = pair_weights(u, mode);
            for h in 0..2 {
                let v = v128_load(v0.add(16 * (2 * u + h)) as *const v128);
                let lo = v128_and(v, mask);
                let hi = v128_and(u16x8_shr(v, 4), mask);
                for t in 0..T {
                    let (ql, qh) = (lookup16(ta[t], lo), lookup16(tb[t], hi));
                    for k in 0..wts.n {
                        let (set, w) = wts.w[k];
                        let wv = i16x8_splat(w as i16);
                        acc[t][set][h] = i16x8_add(acc[t][set][h], i16x8_add(dot_i16(ql, wv), dot_i16(qh, wv)));
                    }
                }
            }
        }
        if B & 1 == 1 {
            let (set, w) = lone_weight(B, mode);
            let v = v128_load(v0.add(16 * 2 * units) as *const v128);
            let lo = v128_and(v, mask);
            let hi = v128_and(u16x8_shr(v, 4), mask);
            for t in 0..T {
                let (ql, qh) = (lookup16(ta[t], lo), lookup16(tb[t], hi));
                let (w0, w1) = (i16x8_splat(w as i16), i16x8_splat((w << 8) as i16));
                acc[t][set][0] = i16x8_add(acc[t][set][0], i16x8_add(dot_i16(ql, w0), dot_i16(qh, w0)));
                acc[t][set][1] = i16x8_add(acc[t][set][1], i16x8_add(dot_i16(ql, w1), dot_i16(qh, w1)));
            }
        }
      }
    }
    acc
}

/// Integer sums, i32 flavour: acc[t][set][half][r], r = 0 rows 0-3, r = 1 rows 4-7.
#[inline(always)]
pub(crate) unsafe fn block_sums_dot<const B: usize, const MODE: u32, const T: usize>(
    idx: *const u8,
    tabs: [*const u8; T],
    pairs_begin: usize,
    pairs: usize,
) -> [[[[v128; 2]; 2]; MAX_SETS]; T] {
    let mode = MODE;
    let mut acc = [[[[i32x4_splat(0); 2]; 2]; MAX_SETS]; T];
    let mask = u8x16_splat(0x0f);
    let units = B / 2;
    let vectors = 2 * units + (B & 1);
    // Two quad pairs per iteration for one token (fewer loop instructions); one for more
    // tokens, whose tables already fill the registers.
    let unroll = if T == 1 { 2 } else { 1 };
    for j in 0..opaque(pairs / unroll) {
      for uu in 0..unroll {
        let i = pairs_begin + j * unroll + uu;
        let v0 = idx.add(16 * vectors * i);
        let mut ta = [i8x16_splat(0); T];
        let mut tb = [i8x16_splat(0); T];
        for t in 0..T {
            ta[t] = v128_load(tabs[t].add(32 * i) as *const v128);
            tb[t] = v128_load(tabs[t].add(32 * i + 16) as *const v128);
        }
        for u in 0..units {
            let wts = pair_weights(u, mode);
            for h in 0..2 {
                let v = v128_load(v0.add(16 * (2 * u + h)) as *const v128);
                let lo = v128_and(v, mask);
                let hi = v128_and(u16x8_shr(v, 4), mask);
                for t in 0..T {
                    let (ql, qh) = (lookup16(ta[t], lo), lookup16(tb[t], hi));
                    for k in 0..wts.n {
                        let (set, w) = wts.w[k];
                        let a = &mut acc[t][set][h];
                        let (w0, w1) = (i32x4_splat(w), i32x4_splat(w << 16));
                        a[0] = dot_i32(qh, w0, dot_i32(ql, w0, a[0]));
                        a[1] = dot_i32(qh, w1, dot_i32(ql, w1, a[1]));
                    }
                }
            }
        }
        if B & 1 == 1 {
            let (set, w) = lone_weight(B, mode);
            let v = v128_load(v0.add(16 * 2 * units) as *const v128);
            let lo = v128_and(v, mask);
            let hi = v128_and(u16x8_shr(v, 4), mask);
            for t in 0..T {
                let (ql, qh) = (lookup16(ta[t], lo), lookup16(tb[t], hi));
                let a = &mut acc[t][set];
                for (h, r, shift) in [(0, 0, 0), (1, 0, 8), (0, 1, 16), (1, 1, 24)] {
                    let wv = i32x4_splat(w << shift);
                    a[h][r] = dot_i32(qh, wv, dot_i32(ql, wv, a[h][r]));
                }
            }
        }
      }
    }
    acc
}

/// `v` through a volatile read, so LLVM cannot see the value: a loop bounded by it stays a
/// loop (fully unrolled, LLVM hoists every load of a block to the top and JavaScriptCore's
/// register allocator spills them: 20% more instructions), and a vector constant made once
/// per call stays in a register (JavaScriptCore rematerialises known constants at every use,
/// three or four instructions each).
#[inline(always)]
fn opaque<T: Copy>(v: T) -> T {
    unsafe { core::ptr::read_volatile(&v) }
}

/// Debug/parity export: the exact integer sums S of one token for every (padded row, group,
/// set), as i32 at out[(row * groups + g) * sets + set], from the flavour in use.
#[no_mangle]
pub unsafe extern "C" fn lut_group_sums(
    planes: usize,
    group: usize,
    mode: u32,
    w: *const u8,
    lut: *const u8,
    rows: usize,
    cols: usize,
    out: *mut i32,
) -> i32 {
    if group != 32 && group != 64 && group != 128 && group != 256 {
        return -1;
    }
    macro_rules! go {
        ($b:literal, $mode:expr) => {
            sums_into::<$b, { $mode }>(w, lut, rows, cols, group, out)
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

unsafe fn sums_into<const B: usize, const MODE: u32>(w: *const u8, lut: *const u8, rows: usize, cols: usize, group: usize, out: *mut i32) {
    let mode = MODE;
    let groups = (cols + group - 1) / group;
    let tiles = (rows + ROW_TILE - 1) / ROW_TILE;
    let blk_bytes = block_bytes(B, group, mode);
    let per_block = COL_BLOCK / group;
    let nsets = sets(B, mode);
    let chunk = chunk_pairs(B, mode, group);
    let c = Consts::new();
    let mut tmp = [0i32; 4];
    for g in 0..groups {
        let g0 = (g / per_block) * per_block;
        let gn = if groups - g0 < per_block { groups - g0 } else { per_block };
        for tile in 0..tiles {
            let blk = w.add(g0 * tiles * blk_bytes + (tile * gn + (g - g0)) * blk_bytes);
            let tabs = [lut.add(g * 4 * group)];
            // S8 = 8192 * S per (set, half, rows 0-3 / 4-7), as the kernels compute it.
            let mut s8 = [[[i32x4_splat(0); 2]; 2]; MAX_SETS];
            let mut begin = 0;
            while begin < group / 8 {
                for set in 0..nsets {
                    for h in 0..2 {
                        let part = if FLAVOR == FLAVOR_DOT {
                            convert_dot(&block_sums_dot::<B, MODE, 1>(blk, tabs, begin, chunk)[0][set][h], &c)
                        } else {
                            convert_madd(&block_sums_madd::<B, MODE, 1>(blk, tabs, begin, chunk)[0][set][h], &c)
                        };
                        s8[set][h] = [i32x4_add(s8[set][h][0], part[0]), i32x4_add(s8[set][h][1], part[1])];
                    }
                }
                begin += chunk;
            }
            for set in 0..nsets {
                for h in 0..2 {
                    for r in 0..2 {
                        v128_store(tmp.as_mut_ptr() as *mut v128, i32x4_shr(s8[set][h][r], 13));
                        for j in 0..4 {
                            *out.add(((tile * ROW_TILE + 8 * h + 4 * r + j) * groups + g) * nsets + set) = tmp[j];
                        }
                    }
                }
            }
        }
    }
}
