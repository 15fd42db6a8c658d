//! LUT mixed-precision GEMV/GEMM over bit-plane and ternary weights (T-MAC, arXiv
//! 2407.00088), SIMD128. Weight layout: runtime/format/encoding.ts (row tiles of 16, per
//! group a block of index vectors then f16 scales); tables: lut.rs.
//!
//! Per (row tile, group, plane) one 16-byte index vector serves 16 rows x 2 quads: the low
//! nibbles look up the even quad's table, the high nibbles the odd quad's, with one
//! `i8x16.swizzle` each. The results are summed in 16-bit lanes over the group (two rows per
//! lane, see group_sums; at most G/4 = 32 lookups per row: inside the 257-lookup bound), then
//! converted and scaled per row (S_p: plane sums; ts, sum_x: the group's table scale and sum):
//!   zero-point (w = d(q-z)):  out += d * ((ts/2) * S + sum_x * ((2^b-1)/2 - z)),
//!                             S = sum_p 2^p S_p combined exactly (in int16 when it fits);
//!   per-plane (w = sum_p s_p bit_p + z): out += (ts/2) * sum_p s_p S_p + sum_x * ((sum_p s_p)/2 + z);
//!   ternary (code = t+1, two bit-planes per trit-plane k):
//!                             out += sum_k alpha_k * ((ts/2) * (S_2k + 2 S_2k+1) + sum_x/2).
//! (Bits read as signs +-1: sum_i q_i x_i = (1/2) sum_p 2^p L_p + (2^b-1)/2 sum_x, L_p = ts*S_p.)
//! Prefill processes tokens in tiles of TOKEN_TILE so each weight block is loaded from memory
//! once per tile (the other tokens of the tile re-read it from cache).
use crate::f16::load_f16x16;
use crate::simd::lookup16;
use core::arch::wasm32::*;

pub const ROW_TILE: usize = 16;
pub const TOKEN_TILE: usize = 8;
pub const MODE_ZERO_POINT: u32 = 0;
pub const MODE_PER_PLANE: u32 = 1;
pub const MODE_TERNARY: u32 = 2;

/// Accumulation bound (see group_sums): 257 biased lookups (<= 255 each) fit in u16; the
/// largest group (128) takes 32 lookups per lane.
const _: () = assert!(128 / 4 <= 257);

#[inline(always)]
pub fn block_bytes(planes: usize, group: usize, mode: u32) -> usize {
    let scale_vectors = match mode {
        MODE_ZERO_POINT => 2,
        MODE_PER_PLANE => planes + 1,
        _ => planes / 2,
    };
    2 * planes * group + 2 * ROW_TILE * scale_vectors
}

/// Exact f32 of i32 lanes with |v| < 2^22: 1.5*2^23 + v, read as f32, minus 1.5*2^23.
/// (Written out because LLVM turns sign-extend + f32x4.convert into per-lane scalar code.)
#[inline(always)]
pub fn small_i32x4_to_f32(v: v128) -> v128 {
    f32x4_sub(
        i32x4_add(v, i32x4_splat(0x4B40_0000)),
        f32x4_splat(12582912.0),
    )
}

/// Lookup accumulators of one block, from which unbias gives the exact sums: [p][0] = rows
/// 0..7, [p][1] = rows 8..15 of plane p (i16).
///
/// Tables are stored biased (entry + 128, unsigned), and byte 2j / 2j+1 of an index vector
/// belongs to row j / 8+j. Read as u16 lanes, a swizzle result is lo + 256*hi with lo the
/// row-j entry and hi the row-(8+j) entry, so one i16 add accumulates both rows (the low
/// bytes' carries land in the high byte) and a second accumulator sums hi = lane >> 8; at the
/// end lo = total - 256*hi (mod 2^16). Both stay below 2^16 for up to 257 lookups per lane
/// (G/4 <= 32 here), and subtracting 128 per lookup removes the bias.
/// T tokens at once share each index vector load and nibble split. Returns [tot, hi][t][p].
///
/// The quad-pair loop stays a loop (its trip count goes through `opaque`): fully unrolled,
/// LLVM interleaves all G/8 iterations and keeps every table and lookup live at once, which
/// JavaScriptCore's register allocator spills to the stack (q3 GEMV ran 2x slower under Bun).
/// One loop iteration covers two quad pairs when B*T <= 2 (fewer accumulators); more would
/// spill on x86's 16 vector registers.
#[inline(always)]
unsafe fn group_sums_raw<const B: usize, const G: usize, const T: usize>(
    idx: *const u8,
    tabs: [*const u8; T],
) -> [[[v128; B]; T]; 2] {
    let mut tot = [[u16x8_splat(0); B]; T];
    let mut hi = [[u16x8_splat(0); B]; T];
    let mask = u8x16_splat(0x0f);
    let unroll = if B * T <= 2 { 2 } else { 1 };
    for j in 0..opaque(G / 8 / unroll) {
        for u in 0..unroll {
            let i = j * unroll + u;
            let mut tl = [u16x8_splat(0); T];
            let mut th = [u16x8_splat(0); T];
            for t in 0..T {
                tl[t] = v128_load(tabs[t].add(32 * i) as *const v128);
                th[t] = v128_load(tabs[t].add(32 * i + 16) as *const v128);
            }
            for p in 0..B {
                let v = v128_load(idx.add(16 * (i * B + p)) as *const v128);
                let lo = v128_and(v, mask);
                // A 16-bit shift plus the mask is cheaper than u8x16.shr on x86 (no byte shift).
                let up = v128_and(u16x8_shr(v, 4), mask);
                for t in 0..T {
                    let r0 = lookup16(tl[t], lo);
                    let r1 = lookup16(th[t], up);
                    tot[t][p] = i16x8_add(tot[t][p], i16x8_add(r0, r1));
                    hi[t][p] =
                        i16x8_add(hi[t][p], i16x8_add(u16x8_shr(r0, 8), u16x8_shr(r1, 8)));
                }
            }
        }
    }
    [tot, hi]
}

/// `n` through a volatile read: LLVM cannot see the value, so a loop bounded by it stays a
/// loop (see group_sums_raw).
#[inline(always)]
fn opaque(n: usize) -> usize {
    unsafe { core::ptr::read_volatile(&n) }
}

/// Per-plane sums from group_sums_raw's (tot, hi): lo = tot - 256*hi, both minus the bias.
#[inline(always)]
fn unbias<const B: usize, const G: usize>(tot: &[v128; B], hi: &[v128; B]) -> [[v128; 2]; B] {
    let bias = i16x8_splat((128 * (G / 4)) as i16);
    let mut out = [[i16x8_splat(0); 2]; B];
    for p in 0..B {
        let lo = i16x8_sub(tot[p], i16x8_shl(hi[p], 8));
        out[p] = [i16x8_sub(lo, bias), i16x8_sub(hi[p], bias)];
    }
    out
}

/// The exact sums of one block per token and plane: [t][p][half].
#[inline(always)]
unsafe fn group_sums<const B: usize, const G: usize, const T: usize>(
    idx: *const u8,
    tabs: [*const u8; T],
) -> [[[v128; 2]; B]; T] {
    let [tot, hi] = group_sums_raw::<B, G, T>(idx, tabs);
    let mut out = [[[i16x8_splat(0); 2]; B]; T];
    for t in 0..T {
        out[t] = unbias::<B, G>(&tot[t], &hi[t]);
    }
    out
}

/// True when the combined sum S = sum_p 2^p S_p fits in i16 (|S_p| <= 127 G/4): every case
/// but 4 planes at group 128.
const fn combine_in_i16(b: usize, g: usize) -> bool {
    ((1 << b) - 1) * 127 * (g / 4) < 32768
}

/// S = sum_p 2^p S_p straight from group_sums_raw (rows 0..7, rows 8..15), computed mod 2^16
/// (exact when combine_in_i16): the bias is removed once for all planes.
#[inline(always)]
fn combined_i16<const B: usize, const G: usize>(tot: &[v128; B], hi: &[v128; B]) -> [v128; 2] {
    let (mut t, mut h) = (tot[0], hi[0]);
    for p in 1..B {
        t = i16x8_add(t, i16x8_shl(tot[p], p as u32));
        h = i16x8_add(h, i16x8_shl(hi[p], p as u32));
    }
    let bias = i16x8_splat((128 * (G / 4) * ((1 << B) - 1)) as i16);
    let lo = i16x8_sub(t, i16x8_shl(h, 8));
    [i16x8_sub(lo, bias), i16x8_sub(h, bias)]
}

#[inline(always)]
fn quarter(acc: &[v128; 2], r: usize) -> v128 {
    let v = acc[r / 2];
    if r % 2 == 0 {
        i32x4_extend_low_i16x8(v)
    } else {
        i32x4_extend_high_i16x8(v)
    }
}

/// f32x4 of rows 4r..4r+3 of the exact plane sum S = sum_p 2^p S_p (planes from..from+n).
#[inline(always)]
fn combined<const B: usize>(sums: &[[v128; 2]; B], from: usize, n: usize, r: usize) -> v128 {
    let mut s = quarter(&sums[from], r);
    for p in 1..n {
        s = i32x4_add(s, i32x4_shl(quarter(&sums[from + p], r), p as u32));
    }
    // After an add LLVM keeps f32x4.convert (one instruction); a bare extend would be scalarised.
    if n > 1 {
        f32x4_convert_i32x4(s)
    } else {
        small_i32x4_to_f32(s)
    }
}

/// One row tile (16 rows) times T tokens' tables over all groups: per token 4 f32x4 of row
/// sums. The f16 scales of each block are converted once for the T tokens.
#[inline(never)]
unsafe fn tile_gemm<const B: usize, const G: usize, const T: usize>(
    w: *const u8,
    groups: usize,
    blk_bytes: usize,
    luts: [*const u8; T],
    mode: u32,
) -> [[v128; 4]; T] {
    let mut acc = [[f32x4_splat(0.0); 4]; T];
    let mut tabs = [luts[0]; T];
    for g in 0..groups {
        let blk = w.add(g * blk_bytes);
        let scales = blk.add(2 * B * G);
        for t in 0..T {
            tabs[t] = luts[t].add(g * 4 * G);
        }
        let [tot, hi] = group_sums_raw::<B, G, T>(blk, tabs);
        let mut sums = [[[i16x8_splat(0); 2]; B]; T];
        if mode != MODE_ZERO_POINT || !combine_in_i16(B, G) {
            for t in 0..T {
                sums[t] = unbias::<B, G>(&tot[t], &hi[t]);
            }
        }
        let mut hts = [f32x4_splat(0.0); T];
        let mut sx = [f32x4_splat(0.0); T];
        for t in 0..T {
            let meta = luts[t].add(groups * 4 * G + 8 * g) as *const f32;
            hts[t] = f32x4_splat(*meta * 0.5);
            sx[t] = f32x4_splat(*meta.add(1));
        }
        match mode {
            MODE_ZERO_POINT => {
                let d = load_f16x16(scales);
                let z = load_f16x16(scales.add(32));
                let half = f32x4_splat(((1u32 << B) - 1) as f32 * 0.5);
                let mut c = [[i16x8_splat(0); 2]; T];
                if combine_in_i16(B, G) {
                    for t in 0..T {
                        c[t] = combined_i16::<B, G>(&tot[t], &hi[t]);
                    }
                }
                for r in 0..4 {
                    let hz = f32x4_sub(half, z[r]);
                    for t in 0..T {
                        let sum = if combine_in_i16(B, G) {
                            small_i32x4_to_f32(quarter(&c[t], r))
                        } else {
                            combined(&sums[t], 0, B, r)
                        };
                        let inner = f32x4_add(f32x4_mul(hts[t], sum), f32x4_mul(sx[t], hz));
                        acc[t][r] = f32x4_add(acc[t][r], f32x4_mul(d[r], inner));
                    }
                }
            }
            MODE_PER_PLANE => {
                let mut sp = [[f32x4_splat(0.0); 4]; B];
                for p in 0..B {
                    sp[p] = load_f16x16(scales.add(32 * p));
                }
                let z = load_f16x16(scales.add(32 * B));
                for r in 0..4 {
                    let mut sum = sp[0][r];
                    for p in 1..B {
                        sum = f32x4_add(sum, sp[p][r]);
                    }
                    let o = f32x4_add(f32x4_mul(f32x4_splat(0.5), sum), z[r]);
                    for t in 0..T {
                        let mut a =
                            f32x4_mul(sp[0][r], small_i32x4_to_f32(quarter(&sums[t][0], r)));
                        for p in 1..B {
                            let f =
                                f32x4_mul(sp[p][r], small_i32x4_to_f32(quarter(&sums[t][p], r)));
                            a = f32x4_add(a, f);
                        }
                        let term = f32x4_add(f32x4_mul(hts[t], a), f32x4_mul(sx[t], o));
                        acc[t][r] = f32x4_add(acc[t][r], term);
                    }
                }
            }
            _ => {
                for k in 0..B / 2 {
                    let alpha = load_f16x16(scales.add(32 * k));
                    for t in 0..T {
                        let half_sx = f32x4_mul(sx[t], f32x4_splat(0.5));
                        for r in 0..4 {
                            let c = combined(&sums[t], 2 * k, 2, r);
                            let inner = f32x4_add(f32x4_mul(hts[t], c), half_sx);
                            acc[t][r] = f32x4_add(acc[t][r], f32x4_mul(alpha[r], inner));
                        }
                    }
                }
            }
        }
    }
    acc
}

/// Stores 16 row sums at dst, or only the first `n` when the tile is the last, partial one.
#[inline(always)]
unsafe fn store_rows(dst: *mut f32, acc: &[v128; 4], n: usize) {
    if n >= ROW_TILE {
        for r in 0..4 {
            v128_store(dst.add(4 * r) as *mut v128, acc[r]);
        }
    } else {
        let mut tmp = [0.0f32; ROW_TILE];
        for r in 0..4 {
            v128_store(tmp.as_mut_ptr().add(4 * r) as *mut v128, acc[r]);
        }
        for j in 0..n {
            *dst.add(j) = tmp[j];
        }
    }
}

/// Core: `m` tokens whose tables sit `lut_stride` bytes apart; out row t at out + t*out_stride.
/// Tokens go in tiles of TOKEN_TILE; within a tile each row tile's weights (groups blocks)
/// are loaded from memory once and re-read from cache; pairs of tokens share each index
/// vector load and the block's scale conversion.
// One wasm function per (B, G): a single huge function would miss the engines' optimising tiers.
#[inline(never)]
unsafe fn lut_matmul<const B: usize, const G: usize>(
    w: *const u8,
    lut: *const u8,
    lut_stride: usize,
    m: usize,
    rows: usize,
    cols: usize,
    mode: u32,
    out: *mut f32,
    out_stride: usize,
) {
    let groups = (cols + G - 1) / G;
    let tiles = (rows + ROW_TILE - 1) / ROW_TILE;
    let blk_bytes = block_bytes(B, G, mode);
    let mut tok0 = 0;
    while tok0 < m {
        let nt = if m - tok0 < TOKEN_TILE {
            m - tok0
        } else {
            TOKEN_TILE
        };
        for tile in 0..tiles {
            let wt = w.add(tile * groups * blk_bytes);
            let row0 = tile * ROW_TILE;
            let mut t = tok0;
            while t < tok0 + nt {
                let lt = lut.add(t * lut_stride);
                if t + 1 < tok0 + nt {
                    let acc =
                        tile_gemm::<B, G, 2>(wt, groups, blk_bytes, [lt, lt.add(lut_stride)], mode);
                    store_rows(out.add(t * out_stride + row0), &acc[0], rows - row0);
                    store_rows(out.add((t + 1) * out_stride + row0), &acc[1], rows - row0);
                    t += 2;
                } else {
                    let acc = tile_gemm::<B, G, 1>(wt, groups, blk_bytes, [lt], mode);
                    store_rows(out.add(t * out_stride + row0), &acc[0], rows - row0);
                    t += 1;
                }
            }
        }
        tok0 += nt;
    }
}

unsafe fn dispatch(
    planes: usize,
    w: *const u8,
    lut: *const u8,
    lut_stride: usize,
    m: usize,
    rows: usize,
    cols: usize,
    group: usize,
    mode: u32,
    out: *mut f32,
    out_stride: usize,
) -> i32 {
    macro_rules! run {
        ($b:literal, $g:literal) => {
            lut_matmul::<$b, $g>(w, lut, lut_stride, m, rows, cols, mode, out, out_stride)
        };
    }
    match (planes, group) {
        (1, 32) => run!(1, 32),
        (1, 64) => run!(1, 64),
        (1, 128) => run!(1, 128),
        (2, 32) => run!(2, 32),
        (2, 64) => run!(2, 64),
        (2, 128) => run!(2, 128),
        (3, 32) => run!(3, 32),
        (3, 64) => run!(3, 64),
        (3, 128) => run!(3, 128),
        (4, 32) => run!(4, 32),
        (4, 64) => run!(4, 64),
        (4, 128) => run!(4, 128),
        _ => return -1,
    }
    0
}

/// LUT GEMM: `m` tokens (tables `lut_stride` bytes apart) times a (rows, cols) matrix of
/// `planes` bit-planes, into out (m, out_stride). mode: 0 zero-point, 1 per-plane, 2 ternary
/// (planes 2 or 4). Returns 0, or -1 for an unsupported planes/group/mode combination.
#[no_mangle]
pub unsafe extern "C" fn gemm_lut(
    planes: usize,
    group: usize,
    mode: u32,
    w: *const u8,
    lut: *const u8,
    lut_stride: usize,
    m: usize,
    rows: usize,
    cols: usize,
    out: *mut f32,
    out_stride: usize,
) -> i32 {
    if mode > MODE_TERNARY || (mode == MODE_TERNARY && planes != 2 && planes != 4) {
        return -1;
    }
    dispatch(
        planes, w, lut, lut_stride, m, rows, cols, group, mode, out, out_stride,
    )
}

/// LUT GEMV (decode): one token's tables times a (rows, cols) matrix into out (rows).
#[no_mangle]
pub unsafe extern "C" fn gemv_lut(
    planes: usize,
    group: usize,
    mode: u32,
    w: *const u8,
    lut: *const u8,
    rows: usize,
    cols: usize,
    out: *mut f32,
) -> i32 {
    gemm_lut(planes, group, mode, w, lut, 0, 1, rows, cols, out, rows)
}

unsafe fn sums_into<const B: usize, const G: usize>(
    w: *const u8,
    lut: *const u8,
    rows: usize,
    cols: usize,
    mode: u32,
    out: *mut i32,
) {
    let groups = (cols + G - 1) / G;
    let tiles = (rows + ROW_TILE - 1) / ROW_TILE;
    let blk_bytes = block_bytes(B, G, mode);
    let mut tmp = [0i32; 4];
    for tile in 0..tiles {
        for g in 0..groups {
            let blk = w.add((tile * groups + g) * blk_bytes);
            let sums = group_sums::<B, G, 1>(blk, [lut.add(g * 4 * G)])[0];
            for p in 0..B {
                for r in 0..4 {
                    v128_store(tmp.as_mut_ptr() as *mut v128, quarter(&sums[p], r));
                    for j in 0..4 {
                        *out.add(((tile * ROW_TILE + 4 * r + j) * groups + g) * B + p) = tmp[j];
                    }
                }
            }
        }
    }
}

/// Debug/parity export: the exact int16-accumulated lookup sums S_p of the SIMD kernel for
/// every (row, group, plane), as i32 at out[(row * groups + g) * planes + p], rows padded to
/// whole tiles of 16.
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
    macro_rules! run {
        ($b:literal, $g:literal) => {
            sums_into::<$b, $g>(w, lut, rows, cols, mode, out)
        };
    }
    match (planes, group) {
        (1, 32) => run!(1, 32),
        (1, 64) => run!(1, 64),
        (1, 128) => run!(1, 128),
        (2, 32) => run!(2, 32),
        (2, 64) => run!(2, 64),
        (2, 128) => run!(2, 128),
        (3, 32) => run!(3, 32),
        (3, 64) => run!(3, 64),
        (3, 128) => run!(3, 128),
        (4, 32) => run!(4, 32),
        (4, 64) => run!(4, 64),
        (4, 128) => run!(4, 128),
        _ => return -1,
    }
    0
}
