//! XXH32 (Yann Collet's xxHash, 32-bit variant, as specified in the xxHash repository's
//! doc/xxhash_spec.md) over bytes in linear memory: the checksum of every checkpoint tensor,
//! so the loader verifies data where it landed, chunk by chunk as the reads complete.
//! One-shot `xxh32` and a streaming state (`xxh32_init` / `xxh32_update` / `xxh32_digest`)
//! that accepts the data in pieces of any size. Twins: runtime/format/checksum.ts (`xxhash32`,
//! `XxHash32`). Scalar on purpose: the four lanes are four serial multiply chains that scalar
//! code already runs side by side; i32x4.mul would hold them in one register with the same
//! chain length (measured no faster).

const PRIME1: u32 = 0x9E37_79B1;
const PRIME2: u32 = 0x85EB_CA77;
const PRIME3: u32 = 0xC2B2_AE3D;
const PRIME4: u32 = 0x27D4_EB2F;
const PRIME5: u32 = 0x1656_67B1;

/// Bytes of a streaming state (see `State`); callers allocate it 4-byte aligned.
#[no_mangle]
pub extern "C" fn xxh32_state_bytes() -> u32 {
    core::mem::size_of::<State>() as u32
}

/// A streaming hash: the four lane accumulators, the seed, the input length so far (modulo
/// 2^32, as the spec adds it, plus a flag once it reached 16) and an incomplete stripe.
#[repr(C)]
struct State {
    v: [u32; 4],
    seed: u32,
    total: u32,
    large: u32,
    pending_len: u32,
    pending: [u8; 16],
}

/// A little-endian u32 at any alignment (wasm32 is little-endian; loads may be unaligned).
#[inline(always)]
unsafe fn read_u32(p: *const u8) -> u32 {
    core::ptr::read_unaligned(p as *const u32)
}

#[inline(always)]
fn round(acc: u32, lane: u32) -> u32 {
    acc.wrapping_add(lane.wrapping_mul(PRIME2)).rotate_left(13).wrapping_mul(PRIME1)
}

#[inline(always)]
fn initial_lanes(seed: u32) -> [u32; 4] {
    [seed.wrapping_add(PRIME1).wrapping_add(PRIME2), seed.wrapping_add(PRIME2), seed, seed.wrapping_sub(PRIME1)]
}

/// Consumes the whole 16-byte stripes of `n` bytes at p; returns how many bytes that was.
#[inline(always)]
unsafe fn stripes(v: &mut [u32; 4], p: *const u8, n: usize) -> usize {
    let [mut v1, mut v2, mut v3, mut v4] = *v;
    let mut i = 0usize;
    while i + 16 <= n {
        let q = p.add(i);
        v1 = round(v1, read_u32(q));
        v2 = round(v2, read_u32(q.add(4)));
        v3 = round(v3, read_u32(q.add(8)));
        v4 = round(v4, read_u32(q.add(12)));
        i += 16;
    }
    *v = [v1, v2, v3, v4];
    i
}

/// The spec's final steps: lane merge (or seed + PRIME5 below 16 bytes), length, the < 16
/// remaining bytes, avalanche.
#[inline(always)]
unsafe fn finish(v: &[u32; 4], seed: u32, large: bool, total: u32, tail: *const u8, tail_len: usize) -> u32 {
    let mut h = if large {
        v[0].rotate_left(1).wrapping_add(v[1].rotate_left(7)).wrapping_add(v[2].rotate_left(12)).wrapping_add(v[3].rotate_left(18))
    } else {
        seed.wrapping_add(PRIME5)
    };
    h = h.wrapping_add(total);
    let mut i = 0usize;
    while i + 4 <= tail_len {
        h = h.wrapping_add(read_u32(tail.add(i)).wrapping_mul(PRIME3)).rotate_left(17).wrapping_mul(PRIME4);
        i += 4;
    }
    while i < tail_len {
        h = h.wrapping_add((*tail.add(i) as u32).wrapping_mul(PRIME5)).rotate_left(11).wrapping_mul(PRIME1);
        i += 1;
    }
    h ^= h >> 15;
    h = h.wrapping_mul(PRIME2);
    h ^= h >> 13;
    h = h.wrapping_mul(PRIME3);
    h ^= h >> 16;
    h
}

/// XXH32 of the `len` bytes at `ptr` with `seed`. Any alignment, any length (0 included).
#[no_mangle]
pub unsafe extern "C" fn xxh32(ptr: *const u8, len: u32, seed: u32) -> u32 {
    let n = len as usize;
    let mut v = initial_lanes(seed);
    let done = stripes(&mut v, ptr, n);
    finish(&v, seed, n >= 16, len, ptr.add(done), n - done)
}

/// Starts a streaming hash with `seed` in the `xxh32_state_bytes()` bytes at `state`.
#[no_mangle]
pub unsafe extern "C" fn xxh32_init(state: *mut u8, seed: u32) {
    let s = &mut *(state as *mut State);
    s.v = initial_lanes(seed);
    s.seed = seed;
    s.total = 0;
    s.large = 0;
    s.pending_len = 0;
}

/// Adds the `len` bytes at `ptr` to the streaming hash at `state`.
#[no_mangle]
pub unsafe extern "C" fn xxh32_update(state: *mut u8, ptr: *const u8, len: u32) {
    let s = &mut *(state as *mut State);
    let n = len as usize;
    if s.large == 0 && (s.total as usize) + n >= 16 {
        s.large = 1;
    }
    s.total = s.total.wrapping_add(len);
    let mut i = 0usize;
    let have = s.pending_len as usize;
    if have > 0 {
        let take = core::cmp::min(16 - have, n);
        core::ptr::copy_nonoverlapping(ptr, s.pending.as_mut_ptr().add(have), take);
        i = take;
        if have + take < 16 {
            s.pending_len = (have + take) as u32;
            return;
        }
        let pending = s.pending;
        stripes(&mut s.v, pending.as_ptr(), 16);
    }
    i += stripes(&mut s.v, ptr.add(i), n - i);
    core::ptr::copy_nonoverlapping(ptr.add(i), s.pending.as_mut_ptr(), n - i);
    s.pending_len = (n - i) as u32;
}

/// The hash of everything added to `state` so far (the state stays usable).
#[no_mangle]
pub unsafe extern "C" fn xxh32_digest(state: *const u8) -> u32 {
    let s = &*(state as *const State);
    finish(&s.v, s.seed, s.large != 0, s.total, s.pending.as_ptr(), s.pending_len as usize)
}
