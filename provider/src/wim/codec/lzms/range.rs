//! The forward half of an LZMS chunk: a binary range coder whose bits choose
//! between item kinds (literal or match, LZ or delta, explicit or repeated
//! offset). Each decision has its own adaptive probabilities.

/// Probabilities are multiples of 1/64.
const PROBABILITY_BITS: u32 = 6;

/// How one binary decision has gone in its last 64 uses; the chance of a 0
/// is the share of zeros among them.
#[derive(Clone, Copy)]
pub(super) struct Probability {
    history: u64,
    zeros: u32,
}

impl Probability {
    /// The format starts every entry with 48 zeros among the last 64 bits:
    /// the history 0x0000_0000_5555_5555 (oldest bit highest).
    const INITIAL: Probability = Probability {
        history: 0x0000_0000_5555_5555,
        zeros: 48,
    };

    /// The chance of a 0, out of 64; never 0/64 or 64/64.
    #[inline(always)]
    fn chance_of_zero(self) -> u32 {
        self.zeros.clamp(1, (1 << PROBABILITY_BITS) - 1)
    }

    #[inline(always)]
    fn record(&mut self, bit: u32) {
        // Doubling shifts the oldest bit out as the carry (one add and one
        // add-with-carry on x86-64). `zeros` counts the zero bits of
        // `history`, so it never wraps.
        let (shifted, oldest) = self.history.overflowing_add(self.history);
        self.zeros = self.zeros.wrapping_add(u32::from(oldest)).wrapping_sub(bit);
        self.history = shifted | u64::from(bit);
    }
}

/// One decision class: `N` probability entries, the one in use chosen by the
/// last log2(N) bits decoded in this class.
pub(super) struct Decision<const N: usize> {
    recent: usize,
    pub(super) entries: [Probability; N],
}

impl<const N: usize> Decision<N> {
    pub(super) fn new() -> Self {
        Decision {
            recent: 0,
            entries: [Probability::INITIAL; N],
        }
    }

    pub(super) fn reset(&mut self) {
        self.recent = 0;
        self.entries = [Probability::INITIAL; N];
    }
}

/// Reads the range-coded 16-bit little-endian units from the front of a chunk.
pub(super) struct RangeDecoder<'a> {
    /// The units not read yet; past the end, the input reads as zeros.
    unread: &'a [[u8; 2]],
    range: u32,
    code: u32,
    /// The input's length in units.
    input_units: usize,
}

impl<'a> RangeDecoder<'a> {
    /// `input` must hold at least 4 bytes.
    pub(super) fn new(input: &'a [u8]) -> Option<Self> {
        let (units, _) = input.as_chunks::<2>();
        let (&[high, low], unread) = units.split_first_chunk::<2>()?;
        Some(RangeDecoder {
            unread,
            range: u32::MAX,
            code: (u32::from(u16::from_le_bytes(high)) << 16) | u32::from(u16::from_le_bytes(low)),
            input_units: units.len(),
        })
    }

    /// A decoder in the state `suspend` gave, reading on from `unread`
    /// (whole units).
    pub(super) fn resume(unread: &'a [u8], (range, code): (u32, u32)) -> Self {
        let (unread, _) = unread.as_chunks::<2>();
        RangeDecoder {
            unread,
            range,
            code,
            input_units: unread.len(),
        }
    }

    /// The state to resume from, and the bytes left unread.
    pub(super) fn suspend(&self) -> ((u32, u32), usize) {
        ((self.range, self.code), 2 * self.unread.len())
    }

    /// How many bytes have been read (never more than the input holds).
    pub(super) fn consumed_bytes(&self) -> usize {
        2 * (self.input_units - self.unread.len())
    }

    /// Decodes one bit of `decision`; `true` is a 1.
    #[inline(always)]
    pub(super) fn decode<const N: usize>(&mut self, decision: &mut Decision<N>) -> bool {
        self.decode_with(&mut decision.entries, &mut decision.recent)
    }

    /// Decodes one bit of a decision whose recent bits the caller keeps
    /// (in a local, for the decisions made for every item).
    #[inline(always)]
    pub(super) fn decode_with<const N: usize>(
        &mut self,
        entries: &mut [Probability; N],
        recent: &mut usize,
    ) -> bool {
        let index = *recent & (N - 1);
        let entry = &mut entries[index];
        let chance = entry.chance_of_zero();

        if self.range <= 0xFFFF {
            // The range never drops below 2^10 (see below), so one 16-bit
            // step brings it back above 2^16.
            self.range <<= 16;
            self.code <<= 16;
            if let Some((&unit, rest)) = self.unread.split_first() {
                self.code |= u32::from(u16::from_le_bytes(unit));
                self.unread = rest;
            }
        }
        // bound >= 2^10 and range - bound >= range / 64 >= 2^10.
        let bound = (self.range >> PROBABILITY_BITS) * chance;
        // Two branches rather than one computation with selects: the bit
        // is often predictable, and the next decision need not wait for it.
        if self.code < bound {
            self.range = bound;
            entry.record(0);
            *recent = index << 1;
            false
        } else {
            self.range -= bound;
            self.code -= bound;
            entry.record(1);
            *recent = (index << 1) | 1;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_tracks_the_last_64_bits() {
        let mut p = Probability::INITIAL;
        assert_eq!(p.chance_of_zero(), 48);
        for _ in 0..64 {
            p.record(1);
        }
        assert_eq!(p.zeros, 0);
        assert_eq!(p.chance_of_zero(), 1);
        for _ in 0..64 {
            p.record(0);
        }
        assert_eq!(p.zeros, 64);
        assert_eq!(p.chance_of_zero(), 63);
        p.record(1);
        assert_eq!(p.zeros, 63);
    }

    #[test]
    fn decoder_needs_four_bytes() {
        assert!(RangeDecoder::new(&[1, 2, 3]).is_none());
        let rd = RangeDecoder::new(&[0x34, 0x12, 0x78, 0x56]).map(|rd| rd.code);
        assert_eq!(rd, Some(0x1234_5678));
    }

    #[test]
    fn exhausted_input_reads_as_zeros() {
        let Some(mut rd) = RangeDecoder::new(&[0xFF; 4]) else {
            panic!("four bytes are enough to start")
        };
        let mut decision = Decision::<16>::new();
        // Decoding far past the end neither panics nor stops making progress.
        for _ in 0..10_000 {
            rd.decode(&mut decision);
        }
        assert!(rd.range >= 1 << 10, "range fell to {:#x}", rd.range);
    }
}
