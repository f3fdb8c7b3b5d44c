//! The backward half of an LZMS chunk: 16-bit little-endian units read from
//! the end towards the start, each unit's high bit first. It carries the
//! Huffman-coded symbols and the verbatim extra bits of offsets and lengths.

/// Bits that [`BackwardBits::refill`] guarantees: more than a codeword (15
/// bits) or a value's extra bits (up to 30) need, so one refill serves
/// either.
pub(super) const REFILL_BITS: u32 = 48;

pub(super) struct BackwardBits<'a> {
    /// The units not loaded yet: the front of the input.
    unread: &'a [u8],
    /// Loaded bits, the next one at bit 63. Bits below the `available`
    /// ones are either zero or the following bits of the stream.
    buffer: u64,
    available: u32,
    /// The input's length, and the zero bits loaded from past its start.
    input_len: usize,
    past_start: u64,
}

/// What a [`BackwardBits`] carries from one part of a chunk's bytes to
/// the next: its loaded bits, and the zero bits loaded from past the start.
#[derive(Clone, Copy, Default)]
pub(super) struct Suspended {
    pub(super) buffer: u64,
    pub(super) available: u32,
    pub(super) past_start: u64,
}

impl Suspended {
    /// How many bits had been used when the reader was suspended, `loaded`
    /// bytes having been loaded from the end of the input.
    pub(super) fn consumed_bits(&self, loaded: usize) -> u64 {
        (loaded as u64 * 8 + self.past_start).saturating_sub(u64::from(self.available))
    }
}

impl<'a> BackwardBits<'a> {
    /// `input` must have an even length.
    pub(super) fn new(input: &'a [u8]) -> Self {
        BackwardBits {
            unread: input,
            buffer: 0,
            available: 0,
            input_len: input.len(),
            past_start: 0,
        }
    }

    /// A reader in the state `suspend` gave, reading on backwards from
    /// the end of `unread`.
    pub(super) fn resume(unread: &'a [u8], state: Suspended) -> Self {
        BackwardBits {
            unread,
            buffer: state.buffer,
            available: state.available,
            input_len: unread.len(),
            past_start: state.past_start,
        }
    }

    /// The state to resume from, and the bytes left unread.
    pub(super) fn suspend(&self) -> (Suspended, usize) {
        let state = Suspended {
            buffer: self.buffer,
            available: self.available,
            past_start: self.past_start,
        };
        (state, self.unread.len())
    }

    /// Makes at least [`REFILL_BITS`] bits available. Past the start of the
    /// input, the stream reads as zeros.
    #[inline(always)]
    pub(super) fn refill(&mut self) {
        if self.available >= REFILL_BITS {
            return;
        }
        if let Some(&bytes) = self.unread.last_chunk::<8>() {
            // The last 8 unread bytes are the next four units, in order
            // from the most significant end; as many whole units as fit
            // are taken (1 to 4, as fewer than 48 bits are available).
            let units = ((64 - self.available) / 16).min(4) as usize;
            self.buffer |= u64::from_le_bytes(bytes) >> self.available;
            self.available += 16 * units as u32;
            let keep = self.unread.len() - 2 * units;
            self.unread = self.unread.get(..keep).unwrap_or_default();
            return;
        }
        self.refill_slowly();
    }

    /// Makes at least `count` (<= [`REFILL_BITS`]) bits available,
    /// refilling only when fewer are left.
    #[inline(always)]
    pub(super) fn ensure(&mut self, count: u32) {
        if self.available < count {
            self.refill();
        }
    }

    #[cold]
    fn refill_slowly(&mut self) {
        while self.available <= 48 {
            let unit = match self.unread.split_last_chunk::<2>() {
                Some((rest, &[lo, hi])) => {
                    self.unread = rest;
                    u16::from_le_bytes([lo, hi])
                }
                None => {
                    self.past_start += 16;
                    0
                }
            };
            self.buffer |= u64::from(unit) << (48 - self.available);
            self.available += 16;
        }
    }

    /// How many bits have been used so far (possibly more than the input
    /// holds, if the data is corrupt).
    pub(super) fn consumed_bits(&self) -> u64 {
        let (state, unread) = self.suspend();
        state.consumed_bits(self.input_len - unread)
    }

    /// The next `count` bits (1..=32) without consuming them.
    #[inline(always)]
    pub(super) fn peek(&self, count: u32) -> usize {
        (self.buffer >> (64 - count)) as usize
    }

    /// Drops `count` bits; the caller has made at least `count` available
    /// (if not, the count wraps and only reading garbage can follow).
    #[inline(always)]
    pub(super) fn consume(&mut self, count: u32) {
        self.buffer <<= count;
        self.available = self.available.wrapping_sub(count);
    }

    /// Reads `count` (0..=32) verbatim bits, refilling first when fewer
    /// are left.
    #[inline(always)]
    pub(super) fn take(&mut self, count: u32) -> u32 {
        self.ensure(count);
        // Two shifts, so that a count of 0 gives 0 without a branch. The
        // shift is masked as the machine's is: a count over 32 reads
        // garbage instead of panicking.
        let bits = (self.buffer >> 1).wrapping_shr(63u32.wrapping_sub(count)) as u32;
        self.consume(count);
        bits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_read_from_the_end_high_bit_first() {
        // Units in file order: 0x1234, 0xABCD, 0x8001, 0x00FF, 0x5A5A.
        let input = [0x34, 0x12, 0xCD, 0xAB, 0x01, 0x80, 0xFF, 0x00, 0x5A, 0x5A];
        let mut bits = BackwardBits::new(&input);
        bits.refill();
        assert_eq!(bits.take(16), 0x5A5A);
        assert_eq!(bits.take(4), 0x0);
        assert_eq!(bits.take(12), 0x0FF);
        assert_eq!(bits.take(1), 1);
        bits.refill();
        assert_eq!(bits.take(15), 0x0001);
        bits.refill();
        assert_eq!(bits.take(16), 0xABCD);
        bits.refill();
        assert_eq!(bits.take(16), 0x1234);
        bits.refill();
        assert_eq!(bits.take(30), 0, "past the start the stream is zeros");
    }

    #[test]
    fn fast_and_slow_refills_agree() {
        let input: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
        // Reference: the units from the end, each high bit first.
        let mut expected = Vec::new();
        for unit in input.chunks(2).rev() {
            let value = u16::from_le_bytes([unit[0], unit[1]]);
            for bit in (0..16).rev() {
                expected.push((value >> bit) & 1);
            }
        }
        for step in 1..=30 {
            let mut bits = BackwardBits::new(&input);
            let mut got = Vec::new();
            while got.len() < expected.len() {
                bits.refill();
                let value = bits.take(step);
                for bit in (0..step).rev() {
                    got.push(((value >> bit) & 1) as u16);
                }
            }
            got.truncate(expected.len());
            assert_eq!(got, expected, "reading {step} bits at a time");
        }
    }
}
