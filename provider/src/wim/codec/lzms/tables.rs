//! Slot tables of LZMS: a match offset or length is coded as a Huffman
//! "slot" followed by that slot's number of verbatim extra bits.
//!
//! Each table is described by runs of (extra bits, number of slots); slot
//! bases follow from them, starting at 1 (the smallest offset and length).

/// Offset slots (LZ offsets and delta raw offsets): 799 of them.
pub(super) const NUM_OFFSET_SLOTS: usize = 799;
/// Length slots: 54 of them.
pub(super) const NUM_LENGTH_SLOTS: usize = 54;

const OFFSET_RUNS: [(u8, usize); 21] = [
    (0, 8),
    (2, 9),
    (3, 7),
    (4, 10),
    (5, 15),
    (6, 15),
    (7, 20),
    (8, 20),
    (9, 30),
    (10, 33),
    (11, 40),
    (12, 42),
    (13, 45),
    (14, 60),
    (15, 73),
    (16, 80),
    (17, 85),
    (18, 95),
    (19, 105),
    (20, 6),
    (30, 1),
];

const LENGTH_RUNS: [(u8, usize); 13] = [
    (0, 26),
    (1, 4),
    (2, 6),
    (3, 4),
    (4, 5),
    (5, 2),
    (6, 1),
    (7, 1),
    (8, 1),
    (9, 1),
    (10, 1),
    (16, 1),
    (30, 1),
];

/// One slot: the smallest value it codes and how many extra bits follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    pub base: u32,
    pub extra_bits: u32,
}

/// The slots of `runs` (`count` of them), padded to a power of two `N` with
/// copies of the last slot so that a symbol masked to `N - 1` always finds
/// one (a decoder never produces a symbol past `count`).
const fn expand<const N: usize>(runs: &[(u8, usize)], count: usize) -> [Slot; N] {
    let mut slots = [Slot {
        base: 0,
        extra_bits: 0,
    }; N];
    let mut base: u32 = 1;
    let mut slot = 0;
    let mut run = 0;
    while run < runs.len() {
        let (bits, count) = runs[run];
        let mut i = 0;
        while i < count {
            slots[slot] = Slot {
                base,
                extra_bits: bits as u32,
            };
            base += 1 << bits;
            slot += 1;
            i += 1;
        }
        run += 1;
    }
    assert!(slot == count, "slot runs do not add up");
    assert!(N.is_power_of_two() && N >= count);
    while slot < N {
        slots[slot] = slots[count - 1];
        slot += 1;
    }
    slots
}

static OFFSET_SLOTS: [Slot; 1024] = expand(&OFFSET_RUNS, NUM_OFFSET_SLOTS);
static LENGTH_SLOTS: [Slot; 64] = expand(&LENGTH_RUNS, NUM_LENGTH_SLOTS);

/// The offset slot of Huffman symbol `symbol` (< [`NUM_OFFSET_SLOTS`]).
#[inline(always)]
pub(super) fn offset_slot(symbol: usize) -> Slot {
    OFFSET_SLOTS[symbol & (OFFSET_SLOTS.len() - 1)]
}

/// The length slot of Huffman symbol `symbol` (< [`NUM_LENGTH_SLOTS`]).
#[inline(always)]
pub(super) fn length_slot(symbol: usize) -> Slot {
    LENGTH_SLOTS[symbol & (LENGTH_SLOTS.len() - 1)]
}

/// The number of offset slots a chunk of `chunk_len` bytes uses: enough to
/// reach an offset of `chunk_len - 1`. Never fewer than two, so that the
/// offset codes always have a complete Huffman code; a slot that reaches
/// past the chunk start is rejected when the match is checked.
pub(super) fn offset_slots_for(chunk_len: usize) -> usize {
    let largest = chunk_len.saturating_sub(1);
    let used =
        OFFSET_SLOTS[..NUM_OFFSET_SLOTS].partition_point(|slot| (slot.base as usize) <= largest);
    used.max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_value(slots: &[Slot]) -> u64 {
        let last = slots[slots.len() - 1];
        u64::from(last.base) + (1u64 << last.extra_bits) - 1
    }

    #[test]
    fn tables_reach_the_format_limits() {
        // Largest offset and length LZMS can express.
        assert_eq!(last_value(&OFFSET_SLOTS[..NUM_OFFSET_SLOTS]), 1_180_427_428);
        assert_eq!(last_value(&LENGTH_SLOTS[..NUM_LENGTH_SLOTS]), 1_073_809_578);
        assert_eq!(OFFSET_SLOTS[9].base, 13);
        assert_eq!(LENGTH_SLOTS[27].base, 29);
    }

    #[test]
    fn offset_slot_count_follows_chunk_size() {
        assert_eq!(offset_slots_for(0), 2);
        assert_eq!(offset_slots_for(2), 2);
        // Offsets 1..=8 each have a slot of their own.
        assert_eq!(offset_slots_for(9), 8);
        assert_eq!(offset_slots_for(10), 9);
        assert_eq!(offset_slots_for(1 << 30), NUM_OFFSET_SLOTS);
    }
}
