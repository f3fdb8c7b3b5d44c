//! XPRESS decompression, the Huffman variant ("LZ77+Huffman", [MS-XCA]
//! §2.2.4) as WIM uses it: each chunk starts with 512 4-bit codeword lengths
//! (256 bytes, low nibble first) for one code over 256 literals and 256 match
//! headers, followed by 16-bit little-endian bit units. A match header holds
//! the length (low 4 bits; 15 means more length follows as inline bytes) and
//! the number of offset bits (high 4 bits). Decoding stops when the output
//! has the chunk's size; there is no end-of-stream symbol to rely on.

use super::bits::BitReader;
use super::huffman::DecodeTable;
use super::lz::copy_match;
use super::{CodecError, Compression, Decompressor};

const NUM_SYMBOLS: usize = 512;
const MAX_CODEWORD_LEN: usize = 15;
const MIN_MATCH_LEN: usize = 3;
/// Largest chunk XPRESS offsets can address.
const MAX_CHUNK_SIZE: usize = 65536;

/// Root width of the decode table, and room for its worst-case sub-tables.
const TABLE_BITS: u32 = 11;
const TABLE_SIZE: usize = 4096;

pub struct XpressDecompressor {
    max_chunk_size: usize,
    lens: [u8; NUM_SYMBOLS],
    table: DecodeTable<TABLE_BITS, TABLE_SIZE>,
}

fn corrupt(reason: &'static str) -> CodecError {
    CodecError::Corrupt {
        codec: Compression::Xpress,
        reason,
    }
}

impl XpressDecompressor {
    /// A decompressor for chunks of up to `max_chunk_size` bytes (64 KiB at most).
    pub fn new(max_chunk_size: usize) -> Result<Self, CodecError> {
        if max_chunk_size == 0 || max_chunk_size > MAX_CHUNK_SIZE {
            return Err(CodecError::UnsupportedChunkSize {
                codec: Compression::Xpress,
                chunk_size: max_chunk_size,
            });
        }
        Ok(XpressDecompressor {
            max_chunk_size,
            lens: [0; NUM_SYMBOLS],
            table: DecodeTable::new(),
        })
    }
}

impl Decompressor for XpressDecompressor {
    fn decompress(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), CodecError> {
        self.decompress_with(input, output, true)
    }
}

impl XpressDecompressor {
    /// As [`Decompressor::decompress`], every symbol through the plain
    /// loop: the reference the fast loop is checked against by the tests
    /// and the xpress fuzz target.
    pub fn decompress_plain(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), CodecError> {
        self.decompress_with(input, output, false)
    }

    /// Decodes a chunk; without `fast`, every symbol goes through the
    /// plain loop (the tests compare the two).
    fn decompress_with(
        &mut self,
        input: &[u8],
        output: &mut [u8],
        fast: bool,
    ) -> Result<(), CodecError> {
        if output.len() > self.max_chunk_size {
            return Err(CodecError::UnsupportedChunkSize {
                codec: Compression::Xpress,
                chunk_size: output.len(),
            });
        }
        let (lens, stream) = input
            .split_at_checked(NUM_SYMBOLS / 2)
            .ok_or(corrupt("chunk shorter than its code length table"))?;
        for (pair, &byte) in self.lens.chunks_exact_mut(2).zip(lens) {
            pair[0] = byte & 0xF;
            pair[1] = byte >> 4;
        }
        self.table
            .build(&self.lens, MAX_CODEWORD_LEN)
            .map_err(|e| corrupt(e.reason()))?;

        let size = output.len();
        let (mut pos, rest) = if fast {
            decode_fast(self.table.entries(), stream, output)?
        } else {
            let start = Held {
                buf: 0,
                held: 0,
                ip: 0,
            };
            (0, start)
        };
        let mut bits = BitReader::resume(stream, rest.ip, rest.buf, rest.held);
        while pos < size {
            bits.refill();
            let mut symbol = self.table.decode(&mut bits);
            if symbol < 256 {
                output[pos] = symbol as u8;
                pos += 1;
                if pos == size {
                    break;
                }
                // At least 17 bits are left: enough for one more codeword.
                symbol = self.table.decode(&mut bits);
                if symbol < 256 {
                    output[pos] = symbol as u8;
                    pos += 1;
                    continue;
                }
                bits.refill();
            }
            let header = symbol - 256;
            let offset_bits = header >> 4;
            let mut len = (header & 0xF) as usize;
            let offset;
            if len == 0xF {
                // Inline length bytes sit where a reader loading 16 bits
                // at a time would be after making sure of 16 bits.
                bits.settle_for_bytes();
                offset = (1usize << offset_bits) | bits.read(offset_bits) as usize;
                let extra = bits.read_byte().ok_or(corrupt("truncated match length"))?;
                len += usize::from(extra);
                if len == 0xF + 0xFF {
                    len = usize::from(bits.read_u16().ok_or(corrupt("truncated match length"))?);
                }
            } else {
                offset = (1usize << offset_bits) | bits.read(offset_bits) as usize;
            }
            len += MIN_MATCH_LEN;
            if offset > pos {
                return Err(corrupt("match before the start of the chunk"));
            }
            if len > size - pos {
                return Err(corrupt("match past the end of the chunk"));
            }
            copy_match(output, pos, offset, len);
            pos += len;
        }
        if bits.overran() {
            return Err(corrupt("truncated chunk"));
        }
        Ok(())
    }
}

/// Bits of the XPRESS table's root, as a shift from the top of a 64-bit
/// buffer.
const ROOT_SHIFT: u32 = 64 - TABLE_BITS;

/// Decodes one symbol from a buffer held in local variables (see
/// [`decode_fast`]); the buffer holds at least 15 valid bits.
#[inline(always)]
fn decode_symbol(entries: &[u16; TABLE_SIZE], buf: &mut u64, held: &mut u32) -> u32 {
    type Table = DecodeTable<TABLE_BITS, TABLE_SIZE>;
    // The index is below 1 << TABLE_BITS, so within the table.
    let mut entry = u32::from(entries[(*buf >> ROOT_SHIFT) as usize]);
    if Table::is_subtable(entry) {
        *buf <<= TABLE_BITS;
        *held -= TABLE_BITS;
        let sub_bits = Table::entry_len(entry);
        let index = (entry >> 4) as usize + ((*buf >> 32) >> (32 - sub_bits)) as usize;
        entry = u32::from(entries[index & (TABLE_SIZE - 1)]);
    }
    let len = Table::entry_len(entry);
    *buf <<= len;
    *held -= len;
    entry >> 4
}

/// The bulk of a chunk, while at least 8 bytes of input are left to load
/// and the output has room for two literals.
///
/// The bits live in local variables: a 64-bit buffer whose top `held` bits
/// are the next bits of the stream, refilled without branches by loading 8
/// bytes and keeping as many whole 16-bit units as fit (48 to 63 bits held
/// afterwards). The bits below the top `held` are zero or the stream's
/// following bits, so loading them again changes nothing. That is enough
/// for two codewords (15 bits each) and a match's offset bits (15): a
/// refill serves two literals, or a literal and a match, and a third
/// literal when the bits left still cover a codeword and offset bits.
///
/// Returns the output written so far and the bits it holds.
///
/// Kept out of line: on its own, the loop's values all stay in registers.
#[inline(never)]
fn decode_fast(
    entries: &[u16; TABLE_SIZE],
    stream: &[u8],
    output: &mut [u8],
) -> Result<(usize, Held), CodecError> {
    let size = output.len();
    let mut buf = 0u64;
    let mut held = 0u32;
    let mut ip = 0usize;
    let mut pos = 0usize;
    while size - pos >= 3 {
        let Some(&bytes) = stream.get(ip..).and_then(|rest| rest.first_chunk::<8>()) else {
            break;
        };
        // Four little-endian units, the first at the top.
        let w = u64::from_le_bytes(bytes).rotate_left(32);
        let units = ((w & 0x0000_FFFF_0000_FFFF) << 16) | ((w >> 16) & 0x0000_FFFF_0000_FFFF);
        buf |= units >> held;
        let n = (63 - held) >> 4;
        ip += 2 * n as usize;
        held += 16 * n;

        let mut symbol = decode_symbol(entries, &mut buf, &mut held);
        if symbol < 256 {
            output[pos] = symbol as u8;
            pos += 1;
            symbol = decode_symbol(entries, &mut buf, &mut held);
            if symbol < 256 {
                output[pos] = symbol as u8;
                pos += 1;
                // A third symbol when the bits left cover it, a match's
                // offset bits, and the 16 bits inline length bytes are
                // placed after.
                if held < 31 {
                    continue;
                }
                symbol = decode_symbol(entries, &mut buf, &mut held);
                if symbol < 256 {
                    output[pos] = symbol as u8;
                    pos += 1;
                    continue;
                }
            }
        }
        let header = symbol - 256;
        let offset_bits = header >> 4;
        let mut len = (header & 0xF) as usize;
        let offset = (1usize << offset_bits) | ((buf >> 32) >> (32 - offset_bits)) as usize;
        buf <<= offset_bits;
        held -= offset_bits;
        if len == 0xF {
            // Inline length bytes follow the units a reader loading 16
            // bits at a time would hold when it made sure of 16 bits
            // before the offset: 16 to 31 bits, whole units from where
            // the units started.
            let before = held + offset_bits;
            let kept = 16 + (before - 16) % 16;
            let mut at = ip - 2 * ((before - kept) / 16) as usize;
            let extra = *stream.get(at).ok_or(corrupt("truncated match length"))?;
            at += 1;
            len += usize::from(extra);
            if len == 0xF + 0xFF {
                let Some(&[lo, hi]) = stream.get(at..at + 2) else {
                    return Err(corrupt("truncated match length"));
                };
                len = usize::from(u16::from_le_bytes([lo, hi]));
                at += 2;
            }
            // Units continue after the inline bytes; of the buffer only
            // the bits before them stay.
            held = kept - offset_bits;
            buf &= !(u64::MAX >> held);
            ip = at;
        }
        len += MIN_MATCH_LEN;
        if offset > pos {
            return Err(corrupt("match before the start of the chunk"));
        }
        if len > size - pos {
            return Err(corrupt("match past the end of the chunk"));
        }
        if offset >= 8 && len.max(16) + 8 <= size - pos {
            copy_words(output, pos, offset, len);
        } else {
            copy_match(output, pos, offset, len);
        }
        pos += len;
    }
    Ok((pos, Held { buf, held, ip }))
}

/// Copies a match of `len` bytes from `offset` ≥ 8 bytes back, eight bytes
/// at a time: three words whatever the length (most matches are at most
/// 24 bytes long, and these then take no branch), then a word at a time.
/// Up to 23 bytes past the match may be written, which later output
/// overwrites. The caller has checked `offset <= dst` and
/// `dst + max(len, 16) + 8 <= out.len()`.
#[inline(always)]
#[allow(unsafe_code)]
fn copy_words(out: &mut [u8], dst: usize, offset: usize, len: usize) {
    assert!(offset >= 8 && offset <= dst && dst + len.max(16) + 8 <= out.len());
    let base = out.as_mut_ptr();
    let copy_word = |at: usize| {
        // SAFETY: `at` is dst + 0, 8 or 16, or dst + k with k < len a
        // multiple of 8; by the assert above, at + 8 ≤ out.len(), so the
        // write at `at` and the read at at - offset (offset ≤ dst ≤ at)
        // cover 8 bytes inside `out`. offset ≥ 8 keeps each read wholly
        // before its write, so no byte is read before the copy has
        // written it. Every XPRESS test and the xpress fuzz target reach
        // this copy.
        unsafe {
            let word = base.add(at - offset).cast::<u64>().read_unaligned();
            base.add(at).cast::<u64>().write_unaligned(word);
        }
    };
    copy_word(dst);
    copy_word(dst + 8);
    copy_word(dst + 16);
    let mut k = 24;
    while k < len {
        copy_word(dst + k);
        k += 8;
    }
}

/// Where [`decode_fast`] stopped: the top `held` bits of `buf` come next,
/// then the units from byte `ip`.
struct Held {
    buf: u64,
    held: u32,
    ip: usize,
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    fn decode_fixture(name: &str, file: &[u8], chunk_size: usize) -> usize {
        let mut decoder = XpressDecompressor::new(chunk_size).expect("supported chunk size");
        fixtures::decode_all(name, file, &mut decoder)
    }

    #[test]
    fn decodes_wimlib_chunks_of_4_16_and_64_kib() {
        let n = decode_fixture(
            "xpress-4k",
            include_bytes!("../../../tests/fixtures/codec/xpress-4k.bin"),
            4096,
        ) + decode_fixture(
            "xpress-16k",
            include_bytes!("../../../tests/fixtures/codec/xpress-16k.bin"),
            16384,
        ) + decode_fixture(
            "xpress-64k",
            include_bytes!("../../../tests/fixtures/codec/xpress-64k.bin"),
            65536,
        );
        assert!(n >= 20, "only {n} chunks tested");
    }

    fn first_chunk() -> (Vec<u8>, usize) {
        let file = include_bytes!("../../../tests/fixtures/codec/xpress-16k.bin");
        let chunk = &fixtures::chunks(file)[0];
        (chunk.data.to_vec(), chunk.size)
    }

    #[test]
    fn truncated_chunks_are_corrupt() {
        let (data, size) = first_chunk();
        let mut decoder = XpressDecompressor::new(65536).expect("supported chunk size");
        for cut in [0, 1, 255, 256, 300, data.len() / 2, data.len() - 8] {
            let mut out = vec![0u8; size];
            let result = decoder.decompress(&data[..cut], &mut out);
            assert!(
                matches!(result, Err(CodecError::Corrupt { .. })),
                "cut at {cut}: {result:?}"
            );
        }
    }

    #[test]
    fn bad_code_lengths_are_corrupt() {
        let mut decoder = XpressDecompressor::new(65536).expect("supported chunk size");
        let mut out = vec![0u8; 100];
        // Every symbol with a 1-bit codeword: over-subscribed.
        let data = vec![0x11u8; 300];
        assert_eq!(
            decoder.decompress(&data, &mut out),
            Err(corrupt("over-subscribed Huffman code"))
        );
        // A single 1-bit codeword: incomplete.
        let mut data = vec![0u8; 300];
        data[0] = 0x01;
        assert_eq!(
            decoder.decompress(&data, &mut out),
            Err(corrupt("incomplete Huffman code"))
        );
    }

    #[test]
    fn matches_outside_the_chunk_are_corrupt() {
        // Code: symbol 'a' (97) and match header 256+0x10 (length 3, 1
        // offset bit), both 1-bit codewords: 'a' = 0, match = 1.
        let mut table = vec![0u8; 256];
        table[97 / 2] = 0x10; // odd symbol 97: high nibble
        table[(256 + 0x10) / 2] = 0x01; // even symbol: low nibble
                                        // Match first (offset 2 or 3 > position 0).
        let mut data = table.clone();
        data.extend_from_slice(&[0x00, 0x80, 0, 0, 0, 0]);
        let mut decoder = XpressDecompressor::new(4096).expect("supported chunk size");
        let mut out = vec![0u8; 8];
        assert_eq!(
            decoder.decompress(&data, &mut out),
            Err(corrupt("match before the start of the chunk"))
        );
        // Two literals, then a match of 3 into a 4-byte chunk.
        let mut data = table;
        data.extend_from_slice(&[0x00, 0x20, 0, 0, 0, 0]); // bits 0 0 1 0
        let mut out = vec![0u8; 4];
        assert_eq!(
            decoder.decompress(&data, &mut out),
            Err(corrupt("match past the end of the chunk"))
        );
        // The same stream fits a 5-byte chunk: "aa" + 3 bytes from offset 2.
        let mut out = vec![0u8; 5];
        assert_eq!(decoder.decompress(&data, &mut out), Ok(()));
        assert_eq!(out, b"aaaaa");
    }

    #[test]
    fn random_input_never_panics() {
        let mut decoder = XpressDecompressor::new(65536).expect("supported chunk size");
        let mut state = 0x1234_5678_9abc_def0u64;
        let (chunk, size) = first_chunk();
        for round in 0..2000 {
            let mut data = chunk.clone();
            // Flip a few bytes anywhere, or replace the stream wholesale.
            for _ in 0..1 + round % 8 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state as usize) % data.len();
                data[at] = (state >> 32) as u8;
            }
            let mut out = vec![0u8; size];
            let _ = decoder.decompress(&data, &mut out);
        }
    }

    #[test]
    fn the_fast_loop_decodes_exactly_as_the_plain_one() {
        // Every fixture chunk, then damaged copies of them: both loops give
        // the same bytes or both fail, with the same reason.
        let mut fast = XpressDecompressor::new(65536).expect("supported chunk size");
        let mut plain = XpressDecompressor::new(65536).expect("supported chunk size");
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut compared = 0;
        for file in [
            &include_bytes!("../../../tests/fixtures/codec/xpress-4k.bin")[..],
            &include_bytes!("../../../tests/fixtures/codec/xpress-16k.bin")[..],
            &include_bytes!("../../../tests/fixtures/codec/xpress-64k.bin")[..],
        ] {
            for chunk in fixtures::chunks(file) {
                for round in 0..40 {
                    let mut data = chunk.data.to_vec();
                    for _ in 0..round % 5 {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        let at = 256 + (state as usize) % (data.len() - 256).max(1);
                        if at < data.len() {
                            data[at] = (state >> 40) as u8;
                        }
                    }
                    let cut = if round % 7 == 6 {
                        data.len() - (state as usize) % 16
                    } else {
                        data.len()
                    };
                    let data = &data[..cut.min(data.len())];
                    let mut a = vec![0u8; chunk.size];
                    let mut b = vec![0u8; chunk.size];
                    let ra = fast.decompress_with(data, &mut a, true);
                    let rb = plain.decompress_with(data, &mut b, false);
                    assert_eq!(ra, rb, "round {round}");
                    if ra.is_ok() {
                        assert_eq!(a, b, "round {round}");
                    }
                    compared += 1;
                }
            }
        }
        assert!(compared > 1000, "only {compared} chunks compared");
    }

    #[test]
    fn chunk_sizes_outside_the_format_are_refused() {
        assert!(XpressDecompressor::new(0).is_err());
        assert!(XpressDecompressor::new(131072).is_err());
        let mut decoder = XpressDecompressor::new(4096).expect("supported chunk size");
        let mut out = vec![0u8; 8192];
        assert!(matches!(
            decoder.decompress(&[0; 300], &mut out),
            Err(CodecError::UnsupportedChunkSize { .. })
        ));
    }
    #[test]
    fn every_truncation_fails_or_still_decodes_exactly() {
        let file = include_bytes!("../../../tests/fixtures/codec/xpress-4k.bin");
        let mut decoder = XpressDecompressor::new(4096).expect("supported chunk size");
        fixtures::check_truncations(file, &mut decoder);
    }
}
