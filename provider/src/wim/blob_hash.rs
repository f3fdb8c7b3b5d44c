//! SHA-1 of blobs, many at once where the processor allows.
//!
//! Every blob written or verified is hashed, and SHA-1 is a chain: each
//! 64-byte block waits for the one before it, so one blob's hash runs at
//! the speed of that chain (the SHA extensions' rounds, where present).
//! Blobs are independent of each other, though, and with AVX-512VL one
//! core hashes eight of them at once, a 32-bit word of each in every lane
//! of a register: about twice the bytes per second of one chain with the
//! SHA extensions (docs/BENCHMARKS.md). [`update_all`] hashes a list of
//! blobs' next bytes that way, the lanes kept busy from the list (longest
//! first), and falls back to one chain at a time where the processor has
//! no AVX-512VL or too few blobs are left to fill the lanes.

use sha1::digest::consts::U64;
use sha1::digest::generic_array::GenericArray;

/// SHA-1's initial state.
const INIT: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// Bytes in one SHA-1 block.
const BLOCK: usize = 64;

/// A blob's SHA-1 so far: the state after its whole blocks, and the bytes
/// after them.
#[derive(Clone)]
pub(crate) struct BlobHash {
    state: [u32; 5],
    len: u64,
    tail: [u8; BLOCK],
    tail_len: usize,
}

impl Default for BlobHash {
    fn default() -> Self {
        BlobHash {
            state: INIT,
            len: 0,
            tail: [0; BLOCK],
            tail_len: 0,
        }
    }
}

impl BlobHash {
    /// Bytes hashed so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Hashes the next bytes, one chain.
    pub(crate) fn update(&mut self, data: &[u8]) {
        let whole = self.take(data);
        compress(&mut self.state, whole);
    }

    /// The SHA-1 of everything hashed.
    pub(crate) fn finalize(mut self) -> [u8; 20] {
        let mut last = [0u8; 2 * BLOCK];
        let n = self.tail_len.min(BLOCK);
        last[..n].copy_from_slice(&self.tail[..n]);
        last[n] = 0x80;
        let end = if n < BLOCK - 8 { BLOCK } else { 2 * BLOCK };
        last[end - 8..end].copy_from_slice(&self.len.wrapping_mul(8).to_be_bytes());
        compress(&mut self.state, &last[..end]);
        let mut out = [0u8; 20];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// Counts `data`, completes and hashes the block begun by earlier
    /// bytes, and keeps the bytes after the last whole block for later;
    /// returns the whole blocks in between, not hashed yet.
    fn take<'d>(&mut self, mut data: &'d [u8]) -> &'d [u8] {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.tail_len > 0 {
            let n = (BLOCK - self.tail_len).min(data.len());
            let (head, rest) = data.split_at(n);
            self.tail[self.tail_len..self.tail_len + n].copy_from_slice(head);
            self.tail_len += n;
            data = rest;
            if self.tail_len < BLOCK {
                return &[];
            }
            let block = self.tail;
            compress(&mut self.state, &block);
            self.tail_len = 0;
        }
        let (whole, rest) = data.split_at(data.len() / BLOCK * BLOCK);
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
        whole
    }
}

/// Hashes each job's bytes into its blob's hash: eight blobs at once where
/// the processor has AVX-512VL, one at a time otherwise.
pub(crate) fn update_all(jobs: &mut [(&mut BlobHash, &[u8])]) {
    let mut work: Vec<(usize, &[u8])> = Vec::with_capacity(jobs.len());
    for (i, (hash, data)) in jobs.iter_mut().enumerate() {
        let whole = hash.take(data);
        if !whole.is_empty() {
            work.push((i, whole));
        }
    }
    // Longest first, so that the lanes run out of work together.
    work.sort_unstable_by_key(|(_, data)| std::cmp::Reverse(data.len()));
    let mut states: Vec<&mut [u32; 5]> = jobs.iter_mut().map(|(h, _)| &mut h.state).collect();
    let mut next = 0;
    if work.len() >= MIN_LANES && hashing() == Hashing::Lanes {
        next = lanes::run(&mut states, &work);
    }
    for &(i, data) in work.get(next..).unwrap_or(&[]) {
        if let Some(state) = states.get_mut(i) {
            compress(state, data);
        }
    }
}

/// How blobs are hashed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Hashing {
    /// Each blob as its bytes come, one chain each.
    Chains,
    /// Blobs gathered in rounds for lanes, each hashed as one chain: the
    /// rounds without the lanes' instructions, chosen only by tests.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    Rounds,
    /// Blobs gathered in rounds and hashed eight at a time.
    Lanes,
}

/// [`Hashing::Lanes`] where the processor has AVX-512VL, else
/// [`Hashing::Chains`]; in test builds `CONTAINERIMAGE_TEST_HASHING`
/// (`chains` or `rounds`) chooses another.
pub(crate) fn hashing() -> Hashing {
    #[cfg(feature = "test-hooks")]
    match std::env::var("CONTAINERIMAGE_TEST_HASHING").as_deref() {
        Ok("chains") => return Hashing::Chains,
        Ok("rounds") => return Hashing::Rounds,
        _ => {}
    }
    match lanes::available() {
        true => Hashing::Lanes,
        false => Hashing::Chains,
    }
}

/// Fewest blobs still being hashed for the eight lanes to be worth
/// running: below this, one chain at a time (with the SHA extensions) is
/// faster.
const MIN_LANES: usize = 4;

/// One chain of SHA-1 over whole blocks (`data.len()` a multiple of 64),
/// with the SHA extensions where the processor has them.
fn compress(state: &mut [u32; 5], data: &[u8]) {
    debug_assert_eq!(data.len() % BLOCK, 0);
    sha1::compress(state, as_blocks(data));
}

/// `data`'s whole 64-byte blocks as the block type of `sha1::compress`.
#[allow(unsafe_code)]
fn as_blocks(data: &[u8]) -> &[GenericArray<u8, U64>] {
    let n = data.len() / BLOCK;
    // SAFETY: GenericArray<u8, U64> is a transparent wrapper of 64 bytes
    // with an alignment of 1 (its own `from_slice` casts one block the same
    // way), and the first n * 64 bytes of `data` are n such blocks, borrowed
    // for as long as `data`. Reached by every apply and verify, and by the
    // tests below.
    unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<GenericArray<u8, U64>>(), n) }
}

#[cfg(target_arch = "x86_64")]
mod lanes {
    //! Eight SHA-1 chains in the 32-bit lanes of 256-bit registers, with
    //! AVX-512's three-input logic and rotates on them (AVX-512VL).
    //!
    //! Eight lanes of 256 bits rather than sixteen of 512: on the Intel
    //! Xeon measured (docs/BENCHMARKS.md) both hash as fast in an apply,
    //! and 512-bit instructions slowed the decoding around them.

    use super::BLOCK;
    use std::arch::x86_64::*;

    /// Chains hashed at once.
    const W: usize = 8;

    /// Whether this processor has the instructions used here.
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }

    /// Hashes `work` (each a blob's index in `states` and whole blocks)
    /// eight at a time, a lane taking the next item as soon as its own is
    /// done, while at least [`MIN_LANES`](super::MIN_LANES) items are being
    /// hashed. Returns how many items from the start of `work` were taken;
    /// those are done, and the rest are left to one chain each. Only
    /// called where [`available`] is true.
    pub(super) fn run(states: &mut [&mut [u32; 5]], work: &[(usize, &[u8])]) -> usize {
        // Each lane's blob (an index into `states`) and what is left of
        // its blocks; the state words lane by lane.
        let mut job: [Option<usize>; W] = [None; W];
        let mut src: [&[u8]; W] = [&[]; W];
        let mut lane_state = [[0u32; W]; 5];
        let mut next = 0usize;
        loop {
            for l in 0..W {
                if job[l].is_some() {
                    continue;
                }
                let Some(&(i, data)) = work.get(next) else {
                    break;
                };
                next += 1;
                if let Some(state) = states.get(i) {
                    for (w, word) in lane_state.iter_mut().zip(state.iter()) {
                        w[l] = *word;
                    }
                    job[l] = Some(i);
                    src[l] = data;
                }
            }
            let active = job.iter().filter(|j| j.is_some()).count();
            if active < super::MIN_LANES {
                break;
            }
            let n = (0..W)
                .filter(|&l| job[l].is_some())
                .map(|l| src[l].len() / BLOCK)
                .min()
                .unwrap_or(0);
            // Idle lanes read the blocks of a busy one; their results are
            // not kept.
            let busy = (0..W)
                .find(|&l| job[l].is_some())
                .map_or(&[][..], |l| src[l]);
            let blocks: [&[u8]; W] =
                std::array::from_fn(|l| if job[l].is_some() { src[l] } else { busy });
            blocks_x8(&mut lane_state, &blocks, n);
            for l in 0..W {
                let Some(i) = job[l] else {
                    continue;
                };
                src[l] = src[l].get(n * BLOCK..).unwrap_or(&[]);
                if src[l].is_empty() {
                    if let Some(state) = states.get_mut(i) {
                        lane_out(&lane_state, l, state);
                    }
                    job[l] = None;
                }
            }
        }
        // Lanes still busy: their states back, and the rest of their
        // blocks to one chain each.
        for l in 0..W {
            let Some(i) = job[l] else {
                continue;
            };
            if let Some(state) = states.get_mut(i) {
                lane_out(&lane_state, l, state);
                super::compress(state, src[l]);
            }
        }
        next
    }

    /// Copies lane `l`'s state words out into `state`.
    fn lane_out(lane_state: &[[u32; W]; 5], l: usize, state: &mut [u32; 5]) {
        for (word, w) in state.iter_mut().zip(lane_state) {
            *word = w[l];
        }
    }

    /// Runs `n` blocks of each lane's chain: lane `l`'s state is word
    /// `state[k][l]`, its blocks the first `n * 64` bytes of `blocks[l]`.
    #[allow(unsafe_code)]
    fn blocks_x8(state: &mut [[u32; W]; 5], blocks: &[&[u8]; W], n: usize) {
        assert!(blocks.iter().all(|b| b.len() >= n * BLOCK) && available());
        let ptrs: [*const u8; W] = std::array::from_fn(|l| blocks[l].as_ptr());
        // SAFETY: the processor has AVX2, AVX-512F and AVX-512VL (checked
        // above), and each of the eight pointers can be read for n * 64
        // bytes (the assert above), the only memory read besides `state`,
        // which is written through its own reference. Reached by every
        // apply and verify on a processor with AVX-512VL, and by the tests
        // below there.
        unsafe { blocks_avx512vl(state, &ptrs, n) }
    }

    /// Transposes eight rows of eight 32-bit words: afterwards `r[k]`
    /// holds word k of every row, row l in lane l.
    #[target_feature(enable = "avx2")]
    fn transpose(r: &mut [__m256i; W]) {
        let mut t = [_mm256_setzero_si256(); W];
        for i in 0..4 {
            t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
        }
        for i in 0..2 {
            r[4 * i] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
            r[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
            r[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
            r[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
        }
        for j in 0..4 {
            t[j] = _mm256_permute2x128_si256::<0x20>(r[j], r[4 + j]);
            t[4 + j] = _mm256_permute2x128_si256::<0x31>(r[j], r[4 + j]);
        }
        *r = t;
    }

    /// [`blocks_x8`] itself.
    ///
    /// # Safety
    /// The processor has AVX2, AVX-512F and AVX-512VL, and each of `ptrs`
    /// can be read for `n * 64` bytes.
    #[allow(unsafe_code)]
    // The message words of the last rounds are stored and never read.
    #[allow(unused_assignments)]
    #[target_feature(enable = "avx2,avx512f,avx512vl")]
    unsafe fn blocks_avx512vl(state: &mut [[u32; W]; 5], ptrs: &[*const u8; W], n: usize) {
        // Reverses the bytes of each 32-bit word (SHA-1 reads big-endian).
        let swap = _mm256_set_epi8(
            28, 29, 30, 31, 24, 25, 26, 27, 20, 21, 22, 23, 16, 17, 18, 19, 12, 13, 14, 15, 8, 9,
            10, 11, 4, 5, 6, 7, 0, 1, 2, 3,
        );
        let k = [
            _mm256_set1_epi32(0x5A82_7999),
            _mm256_set1_epi32(0x6ED9_EBA1),
            _mm256_set1_epi32(0x8F1B_BCDCu32 as i32),
            _mm256_set1_epi32(0xCA62_C1D6u32 as i32),
        ];
        let load = |row: &[u32; W]| {
            // SAFETY: the 32 bytes of one row of `state`.
            unsafe { _mm256_loadu_si256(row.as_ptr().cast()) }
        };
        let [mut a, mut b, mut c, mut d, mut e] = [0, 1, 2, 3, 4].map(|i| load(&state[i]));
        for blk in 0..n {
            // The block's sixteen words, each lane's in its lane: words
            // 0-7 from each block's first 32 bytes, 8-15 from the others.
            let mut lo = [_mm256_setzero_si256(); W];
            let mut hi = [_mm256_setzero_si256(); W];
            for l in 0..W {
                // SAFETY: block `blk` < n of lane l, 64 bytes from
                // ptrs[l] + blk * 64: inside the n * 64 readable bytes
                // there (the caller's promise).
                let (x, y) = unsafe {
                    let p = ptrs[l].add(blk * BLOCK);
                    (
                        _mm256_loadu_si256(p.cast()),
                        _mm256_loadu_si256(p.add(32).cast()),
                    )
                };
                lo[l] = _mm256_shuffle_epi8(x, swap);
                hi[l] = _mm256_shuffle_epi8(y, swap);
            }
            transpose(&mut lo);
            transpose(&mut hi);
            let mut w = [_mm256_setzero_si256(); 16];
            w[..W].copy_from_slice(&lo);
            w[W..].copy_from_slice(&hi);
            let saved = [a, b, c, d, e];
            // Round `t`: `f` is the truth table of the round's function of
            // b, c and d (choose, parity, majority). Only `a` comes from
            // the round just before, so it is added last.
            macro_rules! round {
                ($t:literal, $f:literal, $k:expr) => {{
                    let wt = if $t < 16 {
                        w[$t & 15]
                    } else {
                        let x = _mm256_ternarylogic_epi32::<0x96>(
                            w[($t - 3) & 15],
                            w[($t - 8) & 15],
                            w[($t - 14) & 15],
                        );
                        let x = _mm256_rol_epi32::<1>(_mm256_xor_si256(x, w[$t & 15]));
                        w[$t & 15] = x;
                        x
                    };
                    let f = _mm256_ternarylogic_epi32::<$f>(b, c, d);
                    let rest = _mm256_add_epi32(f, _mm256_add_epi32(e, _mm256_add_epi32($k, wt)));
                    let t = _mm256_add_epi32(_mm256_rol_epi32::<5>(a), rest);
                    e = d;
                    d = c;
                    c = _mm256_rol_epi32::<30>(b);
                    b = a;
                    a = t;
                }};
            }
            // Every round written out, so that the message words stay in
            // registers.
            macro_rules! rounds {
                ($f:literal, $k:expr; $($t:literal)*) => {{ $( round!($t, $f, $k); )* }};
            }
            rounds!(0xCA, k[0]; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19);
            rounds!(0x96, k[1]; 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39);
            rounds!(0xE8, k[2]; 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59);
            rounds!(0x96, k[3]; 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79);
            a = _mm256_add_epi32(a, saved[0]);
            b = _mm256_add_epi32(b, saved[1]);
            c = _mm256_add_epi32(c, saved[2]);
            d = _mm256_add_epi32(d, saved[3]);
            e = _mm256_add_epi32(e, saved[4]);
        }
        for (row, v) in state.iter_mut().zip([a, b, c, d, e]) {
            // SAFETY: the 32 bytes of one row of `state`.
            unsafe { _mm256_storeu_si256(row.as_mut_ptr().cast(), v) };
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod lanes {
    /// No lanes on this processor.
    pub(super) fn available() -> bool {
        false
    }

    pub(super) fn run(_states: &mut [&mut [u32; 5]], _work: &[(usize, &[u8])]) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::{Digest, Sha1};

    /// Bytes that differ from blob to blob and from place to place.
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn sha1(data: &[u8]) -> [u8; 20] {
        Sha1::digest(data).into()
    }

    #[test]
    fn one_chain_matches_the_sha1_crate() {
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 70_000] {
            let data = bytes(len as u64, len);
            for cut in [0, 1, 63, 64, len / 2, len] {
                let cut = cut.min(len);
                let mut h = BlobHash::default();
                h.update(&data[..cut]);
                h.update(&data[cut..]);
                assert_eq!(h.len(), len as u64);
                assert_eq!(h.finalize(), sha1(&data), "len {len}, cut at {cut}");
            }
        }
    }

    /// Many blobs of many lengths, fed in pieces of many lengths: every
    /// hash is the crate's, whether lanes ran or not (on a processor with
    /// AVX-512 they do: at least MIN_LANES jobs with whole blocks).
    #[test]
    fn lanes_match_the_sha1_crate() {
        let lens: Vec<usize> = (0..200)
            .map(|i| match i % 7 {
                0 => 0,
                1 => i,
                2 => 64 * i,
                3 => 64 * i + 63,
                4 => 5000 + 37 * i,
                5 => 70_000 - 11 * i,
                _ => 300 * i + 1,
            })
            .collect();
        let blobs: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| bytes(i as u64, n))
            .collect();
        let mut hashes: Vec<BlobHash> = blobs.iter().map(|_| BlobHash::default()).collect();
        let mut at = vec![0usize; blobs.len()];
        // Pieces of changing sizes, each round a different set of blobs.
        for round in 0..12usize {
            let mut jobs: Vec<(&mut BlobHash, &[u8])> = Vec::new();
            for (i, (hash, blob)) in hashes.iter_mut().zip(&blobs).enumerate() {
                if (i + round) % 3 == 0 && round < 11 {
                    continue;
                }
                let piece = match round {
                    11 => blob.len(),
                    _ => (i * 131 + round * 977) % 9000,
                };
                let end = (at[i] + piece).min(blob.len());
                jobs.push((hash, &blob[at[i]..end]));
                at[i] = end;
            }
            update_all(&mut jobs);
        }
        for (i, (hash, blob)) in hashes.into_iter().zip(&blobs).enumerate() {
            assert_eq!(hash.len(), blob.len() as u64);
            assert_eq!(
                hash.finalize(),
                sha1(blob),
                "blob {i} of {} bytes",
                blob.len()
            );
        }
    }

    /// Sixteen blobs, each with a different number of blocks, so that
    /// lanes finish at different times, take the next blob, and idle lanes
    /// read a busy one's blocks: each blob's state is its own chain's. Through `update_all` on any processor, and
    /// through the lanes themselves where the processor has them.
    #[test]
    fn blobs_in_lanes_are_chains_of_their_own() {
        let blobs: Vec<Vec<u8>> = (0..16)
            .map(|i| bytes(100 + i, 64 * (i as usize + 1)))
            .collect();
        let mut expected: Vec<[u32; 5]> = Vec::new();
        for b in &blobs {
            let mut s = INIT;
            compress(&mut s, b);
            expected.push(s);
        }
        let mut hashes: Vec<BlobHash> = vec![BlobHash::default(); 16];
        let mut jobs: Vec<(&mut BlobHash, &[u8])> = hashes
            .iter_mut()
            .zip(&blobs)
            .map(|(h, b)| (h, &b[..]))
            .collect();
        update_all(&mut jobs);
        let states: Vec<[u32; 5]> = hashes.iter().map(|h| h.state).collect();
        assert_eq!(states, expected);
        #[cfg(target_arch = "x86_64")]
        if lanes::available() {
            let mut states: Vec<[u32; 5]> = vec![INIT; 16];
            let mut refs: Vec<&mut [u32; 5]> = states.iter_mut().collect();
            let work: Vec<(usize, &[u8])> =
                blobs.iter().enumerate().map(|(i, b)| (i, &b[..])).collect();
            assert_eq!(lanes::run(&mut refs, &work), 16);
            assert_eq!(states, expected);
        }
    }
}
