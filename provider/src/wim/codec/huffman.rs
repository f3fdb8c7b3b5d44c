//! Canonical Huffman decoding through a lookup table: the first `BITS` bits
//! of the stream index a root table; codewords longer than that continue in
//! sub-tables placed after the root.
//!
//! An entry is `symbol << 8 | length` for a codeword (the length counts the
//! bits still to consume at that level), or `start << 8 | SUBTABLE | bits` for
//! the root entry of a prefix whose codewords continue in a sub-table of
//! `1 << bits` entries at `start`.

use super::bits::BitReader;

const SUBTABLE: u32 = 0x80;
const LENGTH_MASK: u32 = 0x1F;
/// Longest codeword of any code used here (LZX main and length codes).
pub(crate) const MAX_CODEWORD_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HuffmanError {
    #[error("over-subscribed Huffman code")]
    OverSubscribed,
    #[error("incomplete Huffman code")]
    Incomplete,
    #[error("Huffman codeword too long")]
    TooLong,
}

impl HuffmanError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            HuffmanError::OverSubscribed => "over-subscribed Huffman code",
            HuffmanError::Incomplete => "incomplete Huffman code",
            HuffmanError::TooLong => "Huffman codeword too long",
        }
    }
}

/// A decode table with a `BITS`-bit root and room for `SIZE` entries in all
/// (`SIZE` a power of two, large enough for the worst-case sub-tables of the
/// code it is used for; building fails rather than overflow).
pub(crate) struct DecodeTable<const BITS: u32, const SIZE: usize> {
    entries: Box<[u32; SIZE]>,
    /// Scratch: symbols sorted by codeword length.
    sorted: Vec<u16>,
}

impl<const BITS: u32, const SIZE: usize> DecodeTable<BITS, SIZE> {
    pub(crate) fn new() -> Self {
        DecodeTable {
            entries: Box::new([0; SIZE]),
            sorted: Vec::new(),
        }
    }

    /// Builds the table for the canonical code with codeword lengths `lens`
    /// (0 = symbol unused), none longer than `max_len`. A code with no symbols
    /// at all is accepted and decodes symbol 0 from no bits.
    pub(crate) fn build(&mut self, lens: &[u8], max_len: usize) -> Result<(), HuffmanError> {
        let max_len = max_len.min(MAX_CODEWORD_LEN);
        if lens.iter().any(|&len| usize::from(len) > max_len) {
            return Err(HuffmanError::TooLong);
        }
        // Codewords per length, counted in four lanes: with one counter per
        // length, a run of equal lengths (the unused symbols of an LZX main
        // code, most of them) would wait on each increment in turn.
        let mut lanes = [[0u32; 32]; 4];
        let mut quads = lens.chunks_exact(4);
        for quad in &mut quads {
            for (lane, &len) in lanes.iter_mut().zip(quad) {
                lane[usize::from(len) & 31] += 1;
            }
        }
        for &len in quads.remainder() {
            lanes[0][usize::from(len) & 31] += 1;
        }
        let mut count = [0u32; MAX_CODEWORD_LEN + 1];
        for (len, n) in count.iter_mut().enumerate().skip(1) {
            *n = lanes.iter().map(|lane| lane[len]).sum();
        }

        // Kraft sum: the codewords must exactly fill the code space.
        let mut left: i64 = 1;
        for &n in &count[1..=max_len] {
            left = (left << 1) - i64::from(n);
            if left < 0 {
                return Err(HuffmanError::OverSubscribed);
            }
        }
        if left != 0 {
            if left == 1 << max_len {
                self.entries.fill(0);
                return Ok(());
            }
            return Err(HuffmanError::Incomplete);
        }

        // Symbols in canonical order: by length, then by symbol value.
        let mut offsets = [0usize; MAX_CODEWORD_LEN + 2];
        for len in 1..=max_len {
            offsets[len + 1] = offsets[len] + count[len] as usize;
        }
        self.sorted.clear();
        self.sorted.resize(offsets[max_len + 1], 0);
        for (symbol, &len) in lens.iter().enumerate() {
            if len != 0 {
                let slot = &mut offsets[usize::from(len)];
                self.sorted[*slot] = symbol as u16;
                *slot += 1;
            }
        }

        let root_bits = BITS as usize;
        let root_size = 1usize << root_bits;
        let entries = &mut self.entries[..];
        let mut sorted = self.sorted.iter().map(|&s| u32::from(s));

        // Codewords up to the root width fill the root in order.
        let mut pos = 0usize;
        let short_lens = count.iter().enumerate().take(max_len.min(root_bits) + 1);
        for (len, &n) in short_lens.skip(1) {
            let stride = 1usize << (root_bits - len);
            for _ in 0..n {
                let symbol = sorted.next().unwrap_or(0);
                entries[pos..pos + stride].fill(symbol << 8 | len as u32);
                pos += stride;
            }
        }

        // Longer codewords: one sub-table per root prefix they share.
        let mut next_free = root_size;
        let mut sub_start = 0usize;
        let mut sub_bits = 0usize;
        let mut sub_pos = 0usize;
        let mut remaining = count;
        for len in root_bits + 1..=max_len {
            for _ in 0..count[len] {
                if sub_pos == 1 << sub_bits || sub_bits == 0 {
                    // Size the sub-table by how deep the codewords sharing
                    // this prefix go before they fill it.
                    let mut bits = len - root_bits;
                    let mut room: i64 = 1 << bits;
                    loop {
                        room -= i64::from(remaining[root_bits + bits]);
                        if room <= 0 || root_bits + bits == max_len {
                            break;
                        }
                        bits += 1;
                        room <<= 1;
                    }
                    if next_free + (1 << bits) > SIZE || pos >= root_size {
                        return Err(HuffmanError::OverSubscribed);
                    }
                    entries[pos] = (next_free as u32) << 8 | SUBTABLE | bits as u32;
                    pos += 1;
                    sub_start = next_free;
                    sub_bits = bits;
                    sub_pos = 0;
                    next_free += 1 << bits;
                }
                let symbol = sorted.next().unwrap_or(0);
                let stride = 1usize << (sub_bits - (len - root_bits));
                let at = sub_start + sub_pos;
                entries[at..at + stride].fill(symbol << 8 | (len - root_bits) as u32);
                sub_pos += stride;
                remaining[len] -= 1;
            }
        }
        Ok(())
    }

    /// The entries, for decoders that keep their bits outside a
    /// [`BitReader`] (see the module documentation for their layout).
    #[inline(always)]
    pub(crate) fn entries(&self) -> &[u32; SIZE] {
        &self.entries
    }

    /// Whether a root entry points to a sub-table; the entry's low bits are
    /// then the sub-table's index width and its start is `entry >> 8`.
    #[inline(always)]
    pub(crate) fn is_subtable(entry: u32) -> bool {
        entry & SUBTABLE != 0
    }

    /// The number of bits an entry's codeword takes at its level.
    #[inline(always)]
    pub(crate) fn entry_len(entry: u32) -> u32 {
        entry & LENGTH_MASK
    }

    /// Decodes one symbol. The reader must hold at least `max_len` bits.
    #[inline(always)]
    pub(crate) fn decode(&self, bits: &mut BitReader<'_>) -> u32 {
        let top = bits.top();
        let mut entry = self.entries[(top >> (32 - BITS)) as usize & (SIZE - 1)];
        if entry & SUBTABLE != 0 {
            bits.consume(BITS);
            let sub_bits = entry & LENGTH_MASK;
            let index = (entry >> 8) + bits.peek(sub_bits);
            entry = self.entries[index as usize & (SIZE - 1)];
        }
        bits.consume(entry & LENGTH_MASK);
        entry >> 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs a string of '0'/'1' into 16-bit little-endian units.
    fn pack(bits: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let chars: Vec<u8> = bits.bytes().collect();
        for unit in chars.chunks(16) {
            let mut value = 0u16;
            for (i, &c) in unit.iter().enumerate() {
                if c == b'1' {
                    value |= 1 << (15 - i);
                }
            }
            out.extend_from_slice(&value.to_le_bytes());
        }
        out
    }

    #[test]
    fn decodes_canonical_codes_including_sub_tables() {
        // Lengths: A=1, B=2, C=3, D=5, E=5, F=5, G=6, H=6.
        // Canonical codes: A 0, B 10, C 110, D 11100, E 11101, F 11110,
        // G 111110, H 111111.
        let lens = [1u8, 2, 3, 5, 5, 5, 6, 6];
        let mut table = DecodeTable::<3, 64>::new();
        table.build(&lens, 16).expect("complete code");
        let data = pack(
            "0 10 110 11100 11101 11110 111110 111111 0"
                .replace(' ', "")
                .as_str(),
        );
        let mut bits = BitReader::new(&data);
        let mut got = Vec::new();
        for _ in 0..9 {
            bits.refill();
            got.push(table.decode(&mut bits));
        }
        assert_eq!(got, [0, 1, 2, 3, 4, 5, 6, 7, 0]);
    }

    #[test]
    fn rejects_bad_codes() {
        let mut table = DecodeTable::<4, 64>::new();
        assert_eq!(
            table.build(&[1, 1, 1], 15),
            Err(HuffmanError::OverSubscribed)
        );
        assert_eq!(table.build(&[1, 2], 15), Err(HuffmanError::Incomplete));
        assert_eq!(table.build(&[1], 15), Err(HuffmanError::Incomplete));
        assert_eq!(table.build(&[1, 9], 7), Err(HuffmanError::TooLong));
        assert_eq!(table.build(&[0, 0, 0], 15), Ok(()));
    }

    #[test]
    fn decodes_the_longest_codewords() {
        // Lengths 1..=15 once each and two 16-bit codewords: a complete code
        // whose deepest codewords are 1111111111111110 and 1111111111111111.
        let mut lens = vec![0u8; 656];
        for (i, len) in lens.iter_mut().take(15).enumerate() {
            *len = i as u8 + 1;
        }
        lens[600] = 16;
        lens[655] = 16;
        let mut table = DecodeTable::<11, 8192>::new();
        table.build(&lens, 16).expect("complete code");
        let data = pack(&format!(
            "{}{}{}",
            "1".repeat(15) + "0",
            "1".repeat(16),
            "110"
        ));
        let mut bits = BitReader::new(&data);
        let mut got = Vec::new();
        for _ in 0..3 {
            bits.refill();
            got.push(table.decode(&mut bits));
        }
        assert_eq!(got, [600, 655, 2]);
    }
}
