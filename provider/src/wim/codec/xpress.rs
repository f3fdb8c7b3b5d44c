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

        let mut bits = BitReader::new(stream);
        let mut pos = 0usize;
        let size = output.len();
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
