//! The bit reader shared by XPRESS and LZX: the compressed stream is a
//! sequence of 16-bit little-endian units whose bits are consumed from the
//! most significant end, with some codecs interleaving whole bytes.
//!
//! Bits are kept MSB-aligned in a 64-bit buffer refilled 32 bits at a time.
//! Past the end of the input the reader supplies zero units and counts them,
//! so decoding loops need no end checks; [`BitReader::overran`] tells at the
//! end whether any of those invented bits were actually consumed.

#[derive(Clone)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte of `data` to load (may pass `data.len()` by invented units).
    pos: usize,
    /// Unconsumed bits, MSB-aligned; bits below the top `held` are zero.
    buf: u64,
    /// Number of valid bits in `buf`.
    held: u32,
    /// Zero units loaded past the end of `data`; they are always the last
    /// units loaded.
    padded: u32,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            buf: 0,
            held: 0,
            padded: 0,
        }
    }

    /// A reader that goes on from bits a decoder held elsewhere: the top
    /// `held` bits of `buf` (`held` ≤ 64) come first, then the units of
    /// `data` from byte `pos`.
    pub(crate) fn resume(data: &'a [u8], pos: usize, buf: u64, held: u32) -> Self {
        let held = held.min(64);
        BitReader {
            data,
            pos,
            buf: buf
                .checked_shr(64 - held)
                .map_or(0, |top| top << (64 - held)),
            held,
            padded: 0,
        }
    }

    /// Makes at least 32 bits available.
    #[inline(always)]
    pub(crate) fn refill(&mut self) {
        if self.held <= 32 {
            if let Some(&[a, b, c, d]) = self.data.get(self.pos..self.pos + 4) {
                let units = (u64::from(u16::from_le_bytes([a, b])) << 16)
                    | u64::from(u16::from_le_bytes([c, d]));
                self.buf |= units << (32 - self.held);
                self.held += 32;
                self.pos += 4;
            } else {
                self.refill_slow();
            }
        }
    }

    #[cold]
    fn refill_slow(&mut self) {
        while self.held <= 48 {
            let unit = match self.data.get(self.pos..self.pos + 2) {
                Some(&[a, b]) => u16::from_le_bytes([a, b]),
                _ => {
                    self.padded += 1;
                    0
                }
            };
            self.buf |= u64::from(unit) << (48 - self.held);
            self.held += 16;
            self.pos += 2;
        }
    }

    /// The next `n` bits (`n` ≤ 32, `n` ≤ bits held) without consuming them.
    #[inline(always)]
    pub(crate) fn peek(&self, n: u32) -> u32 {
        ((self.buf >> 32) >> (32 - n)) as u32
    }

    /// Consumes `n` bits (`n` ≤ bits held).
    #[inline(always)]
    pub(crate) fn consume(&mut self, n: u32) {
        self.buf <<= n;
        self.held -= n;
    }

    /// Reads `n` bits (`n` ≤ 32, `n` ≤ bits held); 0 bits read as 0.
    #[inline(always)]
    pub(crate) fn read(&mut self, n: u32) -> u32 {
        let value = self.peek(n);
        self.consume(n);
        value
    }

    /// The top 32 bits of the buffer, for table lookups.
    #[inline(always)]
    pub(crate) fn top(&self) -> u32 {
        (self.buf >> 32) as u32
    }

    /// Whether zero bits invented past the end of the input were consumed.
    pub(crate) fn overran(&self) -> bool {
        self.held < self.padded * 16
    }

    /// Returns the last loaded unit to the input (it is loaded again later).
    fn unload_unit(&mut self) {
        self.held -= 16;
        self.pos -= 2;
        self.buf = if self.held == 0 {
            0
        } else {
            self.buf & !(u64::MAX >> self.held)
        };
        if self.pos + 2 > self.data.len() {
            self.padded = self.padded.saturating_sub(1);
        }
    }

    /// Puts the reader where a decoder loading units only on demand would be
    /// after making sure of 16 bits: between 16 and 31 bits loaded. The
    /// bytes XPRESS stores inline are read from that position.
    /// Requires at least 16 bits held.
    pub(crate) fn settle_for_bytes(&mut self) {
        while self.held >= 32 {
            self.unload_unit();
        }
    }

    /// Reads one inline byte.
    pub(crate) fn read_byte(&mut self) -> Option<u8> {
        let byte = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(byte)
    }

    /// Reads an inline little-endian u16.
    pub(crate) fn read_u16(&mut self) -> Option<u16> {
        let lo = self.read_byte()?;
        let hi = self.read_byte()?;
        Some(u16::from_le_bytes([lo, hi]))
    }

    /// Skips to the next 16-bit boundary of the stream, skipping a whole unit
    /// when already on one, and empties the bit buffer so that whole bytes can
    /// be taken with [`BitReader::take_bytes`] (LZX uncompressed blocks).
    pub(crate) fn align_skipping_unit(&mut self) {
        let partial = self.held % 16;
        let whole = self.held / 16;
        // Units loaded beyond the one the next bit belongs to go back; when on
        // a boundary, the next unit is the one skipped.
        let give_back = if partial == 0 {
            whole as isize - 1
        } else {
            whole as isize
        };
        if give_back >= 0 {
            self.pos -= 2 * give_back as usize;
        } else {
            self.pos += 2;
        }
        self.buf = 0;
        self.held = 0;
        self.padded = 0;
    }

    /// Takes `n` whole bytes from the input (after [`Self::align_skipping_unit`]).
    pub(crate) fn take_bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    /// Skips one byte if there is one (the pad after an odd-sized LZX
    /// uncompressed block may be missing at the very end).
    pub(crate) fn skip_byte(&mut self) {
        if self.pos < self.data.len() {
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_units_most_significant_bit_first() {
        // Units 0x8001 and 0x00FF, little-endian.
        let data = [0x01, 0x80, 0xFF, 0x00];
        let mut bits = BitReader::new(&data);
        bits.refill();
        assert_eq!(bits.read(1), 1);
        assert_eq!(bits.read(14), 0);
        assert_eq!(bits.read(1), 1);
        assert_eq!(bits.read(8), 0);
        assert_eq!(bits.read(8), 0xFF);
        assert!(!bits.overran());
        bits.refill();
        assert_eq!(bits.read(1), 0);
        assert!(bits.overran());
    }

    #[test]
    fn inline_bytes_come_after_the_units_a_lazy_reader_would_hold() {
        // Three units, then bytes 0xAA 0xBB.
        let data = [0x00, 0xF0, 0x00, 0x00, 0x34, 0x12, 0xAA, 0xBB];
        let mut bits = BitReader::new(&data);
        bits.refill();
        assert_eq!(bits.read(4), 0xF);
        // 28 bits held: two units, no give-back needed beyond the second.
        bits.settle_for_bytes();
        assert_eq!(bits.read_byte(), Some(0x34));
        let mut bits = BitReader::new(&data);
        bits.refill();
        assert_eq!(bits.read(16), 0xF000);
        bits.refill(); // loads units 3 and the bytes as a unit
        bits.settle_for_bytes();
        assert_eq!(bits.read_u16(), Some(0x1234));
    }

    #[test]
    fn align_skips_a_unit_when_already_aligned() {
        let data = [0x00, 0x00, 0xFF, 0xFF, 0x11, 0x22];
        let mut bits = BitReader::new(&data);
        bits.refill();
        bits.consume(16);
        bits.align_skipping_unit();
        assert_eq!(bits.take_bytes(2), Some(&[0x11, 0x22][..]));
        let mut bits = BitReader::new(&data);
        bits.refill();
        bits.consume(3);
        bits.align_skipping_unit();
        assert_eq!(bits.take_bytes(2), Some(&[0xFF, 0xFF][..]));
    }
}
