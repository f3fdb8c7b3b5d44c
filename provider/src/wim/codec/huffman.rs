//! Canonical Huffman decoding through a lookup table: the first `BITS` bits
//! of the stream index a root table; codewords longer than that continue in
//! sub-tables placed after the root.
//!
//! An entry is 16 bits: `symbol << 4 | length` for a codeword (the length
//! counts the bits still to consume at that level), or `start << 4 | bits`
//! for the root entry of a prefix whose codewords continue in a sub-table of
//! `1 << bits` entries at `start`. Sub-tables start after the root and every
//! symbol is below the root's size, so an entry whose upper part is at least
//! the root's size points to a sub-table. Two bytes an entry halve the cache
//! the tables take: an LZX block's main and length roots fill 6 KiB of the
//! first-level cache that the 32 KiB chunk being written also needs.

use super::bits::BitReader;

const LENGTH_MASK: u32 = 0xF;
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
    #[error("more Huffman symbols than the table can tell from sub-tables")]
    TooManySymbols,
}

impl HuffmanError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            HuffmanError::OverSubscribed => "over-subscribed Huffman code",
            HuffmanError::Incomplete => "incomplete Huffman code",
            HuffmanError::TooLong => "Huffman codeword too long",
            HuffmanError::TooManySymbols => {
                "more Huffman symbols than the table can tell from sub-tables"
            }
        }
    }
}

/// A decode table with a `BITS`-bit root and room for `SIZE` entries in all
/// (`SIZE` a power of two, large enough for the worst-case sub-tables of the
/// code it is used for; building fails rather than overflow).
pub(crate) struct DecodeTable<const BITS: u32, const SIZE: usize> {
    entries: Box<[u16; SIZE]>,
    /// Scratch: symbols sorted by codeword length.
    sorted: Vec<u16>,
}

impl<const BITS: u32, const SIZE: usize> DecodeTable<BITS, SIZE> {
    /// Entries hold a start below 4096 and root lengths below 16.
    const LAYOUT_FITS: () = assert!(SIZE <= 4096 && BITS <= 11 && SIZE >= 1 << BITS);

    pub(crate) fn new() -> Self {
        let () = Self::LAYOUT_FITS;
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
        if lens.len() > 1 << BITS {
            // A symbol must read below any sub-table's start.
            return Err(HuffmanError::TooManySymbols);
        }
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
        let mut sorted = self.sorted.iter().copied();

        // Codewords up to the root width fill the root in order.
        let mut pos = 0usize;
        let short_lens = count.iter().enumerate().take(max_len.min(root_bits) + 1);
        for (len, &n) in short_lens.skip(1) {
            let stride = 1usize << (root_bits - len);
            let end = pos + n as usize * stride;
            // The Kraft check above keeps the codewords within the root.
            let group = &mut entries[pos..end];
            // One store width per length, as wide as its stride allows.
            let len = len as u16;
            match stride {
                1 => fill_strided::<1>(group, &mut sorted, len),
                2 => fill_strided::<2>(group, &mut sorted, len),
                4 => fill_strided::<4>(group, &mut sorted, len),
                8 => fill_strided::<8>(group, &mut sorted, len),
                _ => {
                    for (slots, symbol) in group.chunks_exact_mut(stride).zip(&mut sorted) {
                        for part in slots.as_chunks_mut::<16>().0 {
                            *part = [symbol << 4 | len; 16];
                        }
                    }
                }
            }
            pos = end;
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
                    entries[pos] = (next_free as u16) << 4 | bits as u16;
                    pos += 1;
                    sub_start = next_free;
                    sub_bits = bits;
                    sub_pos = 0;
                    next_free += 1 << bits;
                }
                let symbol = sorted.next().unwrap_or(0);
                let stride = 1usize << (sub_bits - (len - root_bits));
                let at = sub_start + sub_pos;
                entries[at..at + stride].fill(symbol << 4 | (len - root_bits) as u16);
                sub_pos += stride;
                remaining[len] -= 1;
            }
        }
        Ok(())
    }

    /// The entries, for decoders that keep their bits outside a
    /// [`BitReader`] (see the module documentation for their layout).
    #[inline(always)]
    pub(crate) fn entries(&self) -> &[u16; SIZE] {
        &self.entries
    }

    /// Whether a root entry points to a sub-table; the entry's low bits are
    /// then the sub-table's index width and its start is `entry >> 4`.
    #[inline(always)]
    pub(crate) fn is_subtable(entry: u32) -> bool {
        entry >= 1 << (BITS + 4)
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
        let mut entry = u32::from(self.entries[(top >> (32 - BITS)) as usize & (SIZE - 1)]);
        if Self::is_subtable(entry) {
            bits.consume(BITS);
            let sub_bits = entry & LENGTH_MASK;
            let index = (entry >> 4) + bits.peek(sub_bits);
            entry = u32::from(self.entries[index as usize & (SIZE - 1)]);
        }
        bits.consume(entry & LENGTH_MASK);
        entry >> 4
    }
}

/// Gives each of the next symbols `N` consecutive root entries of `group`,
/// in order, with codeword length `len`.
#[inline(always)]
fn fill_strided<const N: usize>(
    group: &mut [u16],
    symbols: &mut impl Iterator<Item = u16>,
    len: u16,
) {
    for (slots, symbol) in group.as_chunks_mut::<N>().0.iter_mut().zip(symbols) {
        *slots = [symbol << 4 | len; N];
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
        // Symbols must number at most the root's 16 entries.
        assert_eq!(table.build(&[4; 17], 15), Err(HuffmanError::TooManySymbols));
        assert_eq!(table.build(&[4; 16], 15), Ok(()));
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
        let mut table = DecodeTable::<11, 4096>::new();
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
