//! The x86 filter of LZMS, undone after decoding.
//!
//! Before compressing, the encoder turns the 32-bit relative displacements
//! of some x86 instructions (CALL rel32, RIP-relative LEA/MOV, CALL [rip],
//! LOCK ADD [rip]) into absolute positions, which repeat more often. It only
//! does so in stretches that look like machine code: a displacement is
//! translated when a "likely instruction" was seen at most 1023 bytes before
//! (511 for CALL, the most common false positive). An instruction is likely
//! when another candidate within the last 65535 bytes targeted the same
//! address (compared on its low 16 bits). The first byte and the last 16
//! bytes are never the start of an instruction, and chunks of 17 bytes or
//! fewer are left alone.

/// How far back a likely instruction enables translation.
const MAX_TRANSLATION_DISTANCE: i32 = 1023;
/// How close two uses of a target must be to make an instruction likely.
const TARGET_WINDOW: i32 = 65535;

/// Reusable state for [`X86Filter::undo`].
pub(super) struct X86Filter {
    /// For each low 16 bits of a target, where it was last used, counted
    /// from a base that grows with every chunk: entries left from earlier
    /// chunks are then always too far back to count, and the table need not
    /// be cleared for every chunk.
    last_use: Box<[u32]>,
    /// The base for the next chunk.
    next_base: u32,
}

/// Keeps a use in one chunk out of the window of any use in the next.
const BASE_GAP: u32 = TARGET_WINDOW as u32 + 2;

impl X86Filter {
    pub(super) fn new() -> Self {
        X86Filter {
            last_use: vec![0; 1 << 16].into_boxed_slice(),
            next_base: BASE_GAP,
        }
    }

    /// Restores the relative displacements in a decoded chunk.
    pub(super) fn undo(&mut self, data: &mut [u8]) {
        self.run(data, Direction::Undo);
    }

    /// Applies the filter as the encoder does (to test [`Self::undo`]).
    #[cfg(test)]
    pub(super) fn apply(&mut self, data: &mut [u8]) {
        self.run(data, Direction::Apply);
    }

    fn run(&mut self, data: &mut [u8], direction: Direction) {
        if data.len() <= 17 {
            return;
        }
        let mut base = self.next_base;
        // Chunks are at most 1 GiB, so this fits in u64.
        let next_base = u64::from(base) + data.len() as u64 + u64::from(BASE_GAP);
        if next_base > u64::from(u32::MAX) - u64::from(BASE_GAP) {
            self.last_use.fill(0);
            base = BASE_GAP;
        }
        self.next_base = base + data.len() as u32 + BASE_GAP;
        let mut scan = Scan {
            direction,
            base,
            last_likely: -MAX_TRANSLATION_DISTANCE - 1,
            last_use: &mut self.last_use,
        };
        let end = data.len() - 16;
        let mut at = 1;
        while at < end {
            // The possible opcodes of the next block, one bit per byte.
            let block_start = at;
            let (mut mask, block_len) = opcode_mask(data, block_start, end);
            while mask != 0 {
                at = scan.instruction(data, block_start + mask.trailing_zeros() as usize);
                // Forget the candidates the instruction covered.
                let covered = at - block_start;
                mask = if covered >= BLOCK {
                    0
                } else {
                    mask & (u64::MAX << covered)
                };
            }
            at = at.max(block_start + block_len);
        }
    }
}

/// Whether the bytes `b0 b1 b2` start an instruction that
/// [`Scan::instruction`] acts on: CALL rel32 (0xE8), JMP rel32 (0xE9, only
/// skipped), CALL [rip] (0xFF 0x15), LOCK ADD [rip] (0xF0 0x83 0x05), and
/// RIP-relative LEA or MOV behind a REX.W prefix (0x48 or 0x4C).
#[inline(always)]
fn is_candidate(b0: u8, b1: u8, b2: u8) -> bool {
    // Non-short-circuit, so that blocks of bytes are tested with vector code.
    let call_or_jump = b0 & 0xFE == 0xE8;
    let call_indirect = (b0 == 0xFF) & (b1 == 0x15);
    let lock_add = (b0 == 0xF0) & (b1 == 0x83) & (b2 == 0x05);
    let lea = (b0 & 0xFB == 0x48) & (b1 == 0x8D);
    let mov = (b0 == 0x48) & (b1 == 0x8B) & (b2 & 0xF0 == 0);
    call_or_jump | call_indirect | lock_add | ((b2 & 0x07 == 0x05) & (lea | mov))
}

/// Bytes looked at together, one bit each in a mask.
const BLOCK: usize = 64;

/// A test that every candidate passes, on its first two bytes: they start
/// with a byte of 0xE8 or more, or have a second byte of 0x8B or 0x8D
/// (which `b & 0xF9 == 0x89` lets through). ASCII text passes it nowhere.
#[inline(always)]
fn may_start_candidate(b0: u8, b1: u8) -> bool {
    (b0 >= 0xE8) | (b1 & 0xF9 == 0x89)
}

/// The instructions starting among the (up to) [`BLOCK`] bytes from `from`
/// before `end`, as a bit mask, and how many bytes were looked at. Bytes up
/// to `end + 2` are read; `end + 2 <= data.len()`.
#[inline(always)]
fn opcode_mask(data: &[u8], from: usize, end: usize) -> (u64, usize) {
    let at = |i: usize| data.get(i).copied().unwrap_or(0);
    if from + BLOCK <= end {
        if let Some(window) = data
            .get(from..from + BLOCK + 2)
            .and_then(|w| w.first_chunk::<{ BLOCK + 2 }>())
        {
            // A fixed-size block, which the compiler tests with vector
            // compares. Most blocks of data other than code hold no
            // candidate at all, which a cheaper test shows first.
            let mut any = 0u8;
            for (&b0, &b1) in window[..BLOCK].iter().zip(&window[1..=BLOCK]) {
                any |= u8::from(may_start_candidate(b0, b1));
            }
            if any == 0 {
                return (0, BLOCK);
            }
            return (candidate_mask(window), BLOCK);
        }
    }
    let len = end.saturating_sub(from).min(BLOCK);
    let mask = (0..len).fold(0u64, |mask, i| {
        let j = from + i;
        mask | (u64::from(is_candidate(at(j), at(j + 1), at(j + 2))) << i)
    });
    (mask, len)
}

/// The candidates starting in the first [`BLOCK`] bytes of `window`, bit k
/// for byte k.
#[inline(always)]
fn candidate_mask(window: &[u8; BLOCK + 2]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: the function needs only SSE2, which every x86-64 processor
    // has. It tests 16 bytes per compare and takes their results as bits
    // at once: the compiler's vector code for `is_candidate` gathered them
    // with shifts and multiplications, in about half again as many
    // instructions per byte.
    unsafe {
        candidate_mask_sse2(window)
    }
    #[cfg(not(target_arch = "x86_64"))]
    candidate_mask_bytewise(window)
}

#[cfg(any(test, not(target_arch = "x86_64")))]
fn candidate_mask_bytewise(window: &[u8; BLOCK + 2]) -> u64 {
    (0..BLOCK).fold(0u64, |mask, i| {
        let hit = is_candidate(window[i], window[i + 1], window[i + 2]);
        mask | (u64::from(hit) << i)
    })
}

/// [`is_candidate`] for 16 bytes at a time, as vector compares.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn candidate_mask_sse2(window: &[u8; BLOCK + 2]) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // `at + 16` is at most the window's length.
    let load = |at: usize| super::super::load_16(window, at);
    let is = |v: __m128i, byte: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(byte as i8));
    let masked =
        |v: __m128i, mask: u8, byte: u8| is(_mm_and_si128(v, _mm_set1_epi8(mask as i8)), byte);
    let mut mask = 0u64;
    for at in (0..BLOCK).step_by(16) {
        let (b0, b1, b2) = (load(at), load(at + 1), load(at + 2));
        let call_or_jump = masked(b0, 0xFE, 0xE8);
        let call_indirect = _mm_and_si128(is(b0, 0xFF), is(b1, 0x15));
        let lock_add = _mm_and_si128(_mm_and_si128(is(b0, 0xF0), is(b1, 0x83)), is(b2, 0x05));
        let lea = _mm_and_si128(masked(b0, 0xFB, 0x48), is(b1, 0x8D));
        let mov = _mm_and_si128(
            _mm_and_si128(is(b0, 0x48), is(b1, 0x8B)),
            masked(b2, 0xF0, 0),
        );
        let relative = _mm_and_si128(masked(b2, 0x07, 0x05), _mm_or_si128(lea, mov));
        let hits = _mm_or_si128(
            _mm_or_si128(call_or_jump, call_indirect),
            _mm_or_si128(lock_add, relative),
        );
        mask |= u64::from(_mm_movemask_epi8(hits) as u16) << at;
    }
    mask
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Undo,
    #[cfg(test)]
    Apply,
}

struct Scan<'a> {
    direction: Direction,
    last_likely: i32,
    base: u32,
    last_use: &'a mut [u32],
}

impl Scan<'_> {
    /// Looks at the candidate starting at `at` (< len - 16), undoes its
    /// translation if any, and returns where scanning goes on.
    #[inline]
    fn instruction(&mut self, data: &mut [u8], at: usize) -> usize {
        let byte = |i: usize| data.get(at + i).copied().unwrap_or(0);
        let (opcode_len, max_distance) = match byte(0) {
            0xE8 => (1, MAX_TRANSLATION_DISTANCE >> 1),
            0xE9 => return at + 5,
            0xFF if byte(1) == 0x15 => (2, MAX_TRANSLATION_DISTANCE),
            0xF0 if byte(1) == 0x83 && byte(2) == 0x05 => (3, MAX_TRANSLATION_DISTANCE),
            // RIP-relative LEA, or MOV with the 0x48 prefix and a low ModR/M
            // (the format tests only the R/M bits of ModR/M).
            prefix @ (0x48 | 0x4C)
                if byte(2) & 0x07 == 0x05
                    && (byte(1) == 0x8D
                        || (byte(1) == 0x8B && prefix & 0x04 == 0 && byte(2) & 0xF0 == 0)) =>
            {
                (3, MAX_TRANSLATION_DISTANCE)
            }
            _ => return at + 1,
        };
        self.translate(data, at, opcode_len, max_distance)
    }

    fn translate(
        &mut self,
        data: &mut [u8],
        at: usize,
        opcode_len: usize,
        max_distance: i32,
    ) -> usize {
        let field = at + opcode_len;
        let Some(bytes) = data.get_mut(field..field + 4) else {
            return data.len();
        };
        // Positions fit in i32: chunks are at most 1 GiB.
        let position = at as i32;
        let translate = position - self.last_likely <= max_distance;
        // The target is always judged on the relative (untranslated) form.
        let relative_before = u16::from_le_bytes([bytes[0], bytes[1]]);
        if translate {
            let value = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let value = match self.direction {
                Direction::Undo => value.wrapping_sub(position as u32),
                #[cfg(test)]
                Direction::Apply => value.wrapping_add(position as u32),
            };
            bytes.copy_from_slice(&value.to_le_bytes());
        }
        let relative = if self.direction == Direction::Undo {
            u16::from_le_bytes([bytes[0], bytes[1]])
        } else {
            relative_before
        };
        let target = usize::from((position as u16).wrapping_add(relative));
        let last_byte = position + opcode_len as i32 + 3;
        let stamp = self.base + last_byte as u32;
        if let Some(last) = self.last_use.get_mut(target) {
            // `*last` is an earlier stamp, or zero.
            if stamp.wrapping_sub(*last) <= TARGET_WINDOW as u32 {
                self.last_likely = last_byte;
            }
            *last = stamp;
        }
        field + 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(data: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([data[at + 1], data[at + 2], data[at + 3], data[at + 4]])
    }

    #[test]
    fn short_chunks_are_untouched() {
        let mut data = [0xE8u8; 17];
        X86Filter::new().undo(&mut data);
        assert_eq!(data, [0xE8u8; 17]);
    }

    #[test]
    fn calls_to_the_same_target_enable_translation() {
        // Three CALLs to target 0x1000. The second one, reusing a target,
        // marks likely code, so the third one (close enough) is translated
        // to the absolute target; undoing restores the original.
        let mut original = vec![0x90u8; 200];
        for at in [10usize, 40, 70] {
            original[at] = 0xE8;
            let relative = 0x1000u32 - at as u32;
            original[at + 1..at + 5].copy_from_slice(&relative.to_le_bytes());
        }
        let mut filter = X86Filter::new();
        let mut data = original.clone();
        filter.apply(&mut data);
        assert_eq!(field(&data, 10), 0x1000 - 10, "no likely code seen yet");
        assert_eq!(
            field(&data, 40),
            0x1000 - 40,
            "the second use only marks likely code"
        );
        assert_eq!(
            field(&data, 70),
            0x1000,
            "translated to the absolute target"
        );
        filter.undo(&mut data);
        assert_eq!(data, original);
    }

    /// `len` bytes drawn from `alphabet` by a linear congruential generator.
    fn pick_bytes(alphabet: &[u8], seed: &mut u32, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                alphabet[(*seed >> 24) as usize % alphabet.len()]
            })
            .collect()
    }

    /// The filter by its definition: every position is looked at in turn.
    fn undo_byte_by_byte(data: &mut [u8]) {
        if data.len() <= 17 {
            return;
        }
        let mut last_use = vec![0u32; 1 << 16];
        let mut scan = Scan {
            direction: Direction::Undo,
            base: BASE_GAP,
            last_likely: -MAX_TRANSLATION_DISTANCE - 1,
            last_use: &mut last_use,
        };
        let end = data.len() - 16;
        let mut at = 1;
        while at < end {
            at = scan.instruction(data, at);
        }
    }

    #[test]
    fn the_block_test_lets_every_candidate_through() {
        for b0 in 0..=255u8 {
            for b1 in 0..=255u8 {
                if !may_start_candidate(b0, b1) {
                    assert!(
                        (0..=255u8).all(|b2| !is_candidate(b0, b1, b2)),
                        "{b0:#04x} {b1:#04x} starts a candidate"
                    );
                }
            }
        }
    }

    #[test]
    fn the_block_mask_matches_a_bytewise_test() {
        // Dense candidates and near misses, then every byte value.
        let alphabet = [
            0x48u8, 0x4C, 0x4D, 0x49, 0x4A, 0xE8, 0xE9, 0xEA, 0xF0, 0xFF, 0x8D, 0x8B, 0x89, 0x05,
            0x0D, 0x15, 0x25, 0x83, 0x00, 0x10, 0x45,
        ];
        let all: Vec<u8> = (0..=255).collect();
        let mut seed = 0x2545_F491u32;
        let mut hits = 0;
        for bytes in [&alphabet[..], &all[..]] {
            for _ in 0..20_000 {
                let window: [u8; BLOCK + 2] = pick_bytes(bytes, &mut seed, BLOCK + 2)
                    .try_into()
                    .expect("a window's length");
                let expected = candidate_mask_bytewise(&window);
                assert_eq!(candidate_mask(&window), expected, "{window:02x?}");
                hits += expected.count_ones();
            }
        }
        assert!(hits > 100_000, "only {hits} candidates were tested");
    }

    #[test]
    fn the_block_scan_finds_every_instruction() {
        // Bytes that make up every kind of candidate, and near misses.
        let alphabet = [
            0x48u8, 0x4C, 0x4D, 0x49, 0xE8, 0xE9, 0xEA, 0xF0, 0xFF, 0x8D, 0x8B, 0x05, 0x0D, 0x15,
            0x25, 0x83, 0x00, 0x10,
        ];
        let mut seed = 0x9E37_79B9u32;
        for len in [17usize, 18, 33, 49, 50, 51, 64, 100, 4096, 100_000] {
            let original = pick_bytes(&alphabet, &mut seed, len);
            let mut expected = original.clone();
            undo_byte_by_byte(&mut expected);
            let mut got = original.clone();
            X86Filter::new().undo(&mut got);
            assert!(got == expected, "{len} bytes");
        }
    }

    #[test]
    fn undo_reverses_apply_on_opcode_rich_data() {
        let mut filter = X86Filter::new();
        let opcodes = [
            0x48u8, 0x4C, 0xE8, 0xE9, 0xF0, 0xFF, 0x8D, 0x8B, 0x05, 0x15, 0x83, 0x00,
        ];
        let mut seed = 0x1234_5678u32;
        for len in [18usize, 19, 40, 1000, 70_000] {
            let original = pick_bytes(&opcodes, &mut seed, len);
            let mut data = original.clone();
            filter.apply(&mut data);
            if len > 1000 {
                assert!(
                    data != original,
                    "a long opcode-rich buffer has translations"
                );
            }
            assert_eq!(
                data[len - 10..],
                original[len - 10..],
                "the last 10 bytes never change"
            );
            filter.undo(&mut data);
            assert!(data == original, "undo restores {len} bytes");
        }
    }
}
