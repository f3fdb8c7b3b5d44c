//! LZX decompression, the variant WIM uses ([MS-PATCH] describes the base
//! coding). Every chunk is independent: the window is the chunk, recent
//! offsets start as {1, 1, 1} and previous code lengths as 0. A chunk is a
//! series of blocks (verbatim, aligned-offset or uncompressed), and the E8
//! call translation is always undone at the end with a "file size" of
//! 12,000,000.

use super::bits::BitReader;
use super::huffman::DecodeTable;
use super::lz::{copy_match, copy_short};
use super::{CodecError, Compression, Decompressor};

const NUM_CHARS: usize = 256;
const NUM_LEN_HEADERS: usize = 8;
const NUM_PRIMARY_LENS: usize = 7;
const MIN_MATCH_LEN: usize = 2;
const NUM_RECENT_OFFSETS: usize = 3;
const LENCODE_NUM_SYMBOLS: usize = 249;
const PRECODE_NUM_SYMBOLS: usize = 20;
const ALIGNED_NUM_SYMBOLS: usize = 8;
const NUM_ALIGNED_OFFSET_BITS: u32 = 3;
const MAX_MAIN_CODEWORD_LEN: usize = 16;
const MAX_LEN_CODEWORD_LEN: usize = 16;
const MAX_PRE_CODEWORD_LEN: usize = 15;
const MAX_ALIGNED_CODEWORD_LEN: usize = 7;
const DEFAULT_BLOCK_SIZE: usize = 32768;
/// The fixed translation size of E8 call targets in WIM files.
const E8_FILE_SIZE: i32 = 12_000_000;

const MIN_WINDOW_ORDER: u32 = 15;
const MAX_WINDOW_ORDER: u32 = 21;
/// Offset slots of the largest (2 MiB) window.
const MAX_OFFSET_SLOTS: usize = 50;
const MAX_MAIN_SYMBOLS: usize = NUM_CHARS + MAX_OFFSET_SLOTS * NUM_LEN_HEADERS;
/// A run in the code-length stream may end up to this far past the end of
/// the lengths being read; the excess lands in spare room, as the format's
/// reference decoders behave.
const LENS_OVERRUN: usize = 50;

/// Extra offset bits per offset slot (64 entries so a masked index is
/// always in range).
const EXTRA_BITS: [u8; 64] = {
    let mut extra = [17u8; 64];
    let mut slot = 0;
    while slot < 36 {
        extra[slot] = if slot < 4 { 0 } else { (slot as u8 - 2) / 2 };
        slot += 1;
    }
    extra
};

/// First "formatted offset" (offset + 2) of each offset slot.
const SLOT_BASE: [u32; 64] = {
    let mut base = [0u32; 64];
    let mut slot = 1;
    while slot < 64 {
        base[slot] = base[slot - 1] + (1 << EXTRA_BITS[slot - 1]);
        slot += 1;
    }
    base
};

/// Root widths of the decode tables, and room for their worst-case sub-tables.
const MAIN_TABLE_BITS: u32 = 11;
const MAIN_TABLE_SIZE: usize = 4096;
const LEN_TABLE_BITS: u32 = 10;
const LEN_TABLE_SIZE: usize = 2048;
const PRE_TABLE_BITS: u32 = 6;
const PRE_TABLE_SIZE: usize = 1024;
const ALIGNED_TABLE_BITS: u32 = 7;
const ALIGNED_TABLE_SIZE: usize = 128;

const BLOCK_VERBATIM: u32 = 1;
const BLOCK_ALIGNED: u32 = 2;
const BLOCK_UNCOMPRESSED: u32 = 3;

pub struct LzxDecompressor {
    window_order: u32,
    max_chunk_size: usize,
    num_main_symbols: usize,
    main_lens: [u8; MAX_MAIN_SYMBOLS + LENS_OVERRUN],
    len_lens: [u8; LENCODE_NUM_SYMBOLS + LENS_OVERRUN],
    main: DecodeTable<MAIN_TABLE_BITS, MAIN_TABLE_SIZE>,
    lengths: DecodeTable<LEN_TABLE_BITS, LEN_TABLE_SIZE>,
    aligned: DecodeTable<ALIGNED_TABLE_BITS, ALIGNED_TABLE_SIZE>,
    pre: DecodeTable<PRE_TABLE_BITS, PRE_TABLE_SIZE>,
}

fn corrupt(reason: &'static str) -> CodecError {
    CodecError::Corrupt {
        codec: Compression::Lzx,
        reason,
    }
}

impl LzxDecompressor {
    /// A decompressor for chunks of up to `max_chunk_size` bytes, which is
    /// also the window (32 KiB to 2 MiB, rounded up to a power of two).
    pub fn new(max_chunk_size: usize) -> Result<Self, CodecError> {
        let window_order = max_chunk_size.max(1).next_power_of_two().trailing_zeros();
        if max_chunk_size == 0 || !(MIN_WINDOW_ORDER..=MAX_WINDOW_ORDER).contains(&window_order) {
            return Err(CodecError::UnsupportedChunkSize {
                codec: Compression::Lzx,
                chunk_size: max_chunk_size,
            });
        }
        // The largest formatted offset is window - 1 (offset window - 3).
        let window = 1u32 << window_order;
        let num_offset_slots = SLOT_BASE.iter().take_while(|&&base| base < window).count();
        Ok(LzxDecompressor {
            window_order,
            max_chunk_size,
            num_main_symbols: NUM_CHARS + num_offset_slots * NUM_LEN_HEADERS,
            main_lens: [0; MAX_MAIN_SYMBOLS + LENS_OVERRUN],
            len_lens: [0; LENCODE_NUM_SYMBOLS + LENS_OVERRUN],
            main: DecodeTable::new(),
            lengths: DecodeTable::new(),
            aligned: DecodeTable::new(),
            pre: DecodeTable::new(),
        })
    }

    /// Reads the aligned, main and length codes of a compressed block.
    fn read_codes(&mut self, bits: &mut BitReader<'_>, block_type: u32) -> Result<(), CodecError> {
        if block_type == BLOCK_ALIGNED {
            let mut lens = [0u8; ALIGNED_NUM_SYMBOLS];
            bits.refill();
            for len in &mut lens {
                *len = bits.read(3) as u8;
            }
            self.aligned
                .build(&lens, MAX_ALIGNED_CODEWORD_LEN)
                .map_err(|e| corrupt(e.reason()))?;
        }
        read_lens(&mut self.pre, bits, &mut self.main_lens, 0, NUM_CHARS)?;
        read_lens(
            &mut self.pre,
            bits,
            &mut self.main_lens,
            NUM_CHARS,
            self.num_main_symbols,
        )?;
        self.main
            .build(
                &self.main_lens[..self.num_main_symbols],
                MAX_MAIN_CODEWORD_LEN,
            )
            .map_err(|e| corrupt(e.reason()))?;
        read_lens(
            &mut self.pre,
            bits,
            &mut self.len_lens,
            0,
            LENCODE_NUM_SYMBOLS,
        )?;
        self.lengths
            .build(&self.len_lens[..LENCODE_NUM_SYMBOLS], MAX_LEN_CODEWORD_LEN)
            .map_err(|e| corrupt(e.reason()))?;
        Ok(())
    }

    /// Decodes the literals and matches of one compressed block into
    /// `out[start..end]`. The loop runs on a local copy of the reader,
    /// written back at the end: reached through the reference, the
    /// reader's fields went to and from the stack around match copies.
    /// (After an error the chunk is lost, so the reader is left as it was.)
    fn decode_block(
        &self,
        reader: &mut BitReader<'_>,
        aligned: bool,
        out: &mut [u8],
        start: usize,
        end: usize,
        recent: &mut [u32; NUM_RECENT_OFFSETS],
    ) -> Result<(), CodecError> {
        let mut local = reader.clone();
        let bits = &mut local;
        let mut pos = start;
        while pos < end {
            bits.refill();
            let mut symbol = self.main.decode(bits) as usize;
            if symbol < NUM_CHARS {
                out[pos] = symbol as u8;
                pos += 1;
                if pos == end {
                    break;
                }
                // At least 16 bits are left: enough for one more codeword.
                symbol = self.main.decode(bits) as usize;
                if symbol < NUM_CHARS {
                    out[pos] = symbol as u8;
                    pos += 1;
                    continue;
                }
                bits.refill();
            }
            let header = symbol - NUM_CHARS;
            let mut len = header % NUM_LEN_HEADERS;
            let slot = header / NUM_LEN_HEADERS;
            if len == NUM_PRIMARY_LENS {
                len += self.lengths.decode(bits) as usize;
            }
            len += MIN_MATCH_LEN;

            let offset;
            if slot < NUM_RECENT_OFFSETS {
                // Slot 0 repeats R0; slots 1 and 2 swap R1 or R2 with R0.
                offset = recent[slot];
                recent[slot] = recent[0];
                recent[0] = offset;
            } else {
                bits.refill();
                let extra = u32::from(EXTRA_BITS[slot & 63]);
                let mut formatted = SLOT_BASE[slot & 63];
                if aligned && extra >= NUM_ALIGNED_OFFSET_BITS {
                    formatted +=
                        bits.read(extra - NUM_ALIGNED_OFFSET_BITS) << NUM_ALIGNED_OFFSET_BITS;
                    formatted += self.aligned.decode(bits);
                } else {
                    formatted += bits.read(extra);
                }
                offset = formatted - (NUM_RECENT_OFFSETS as u32 - 1);
                recent[2] = recent[1];
                recent[1] = recent[0];
                recent[0] = offset;
            }
            let offset = offset as usize;
            if len > end - pos {
                return Err(corrupt("match past the end of the block"));
            }
            if offset > pos {
                return Err(corrupt("match before the start of the chunk"));
            }
            if !(offset >= 8 && len <= 24 && copy_short(out, pos, offset)) {
                copy_match(out, pos, offset, len);
            }
            pos += len;
        }
        *reader = local;
        Ok(())
    }
}

/// Reads code lengths `lens[start..end]` as deltas from their previous
/// values, through a precode sent first.
fn read_lens(
    pre: &mut DecodeTable<PRE_TABLE_BITS, PRE_TABLE_SIZE>,
    bits: &mut BitReader<'_>,
    lens: &mut [u8],
    start: usize,
    end: usize,
) -> Result<(), CodecError> {
    let mut pre_lens = [0u8; PRECODE_NUM_SYMBOLS];
    for (i, len) in pre_lens.iter_mut().enumerate() {
        if i % 8 == 0 {
            bits.refill();
        }
        *len = bits.read(4) as u8;
    }
    pre.build(&pre_lens, MAX_PRE_CODEWORD_LEN)
        .map_err(|e| corrupt(e.reason()))?;
    decode_lens(pre, bits, lens, start, end)
}

/// The delta-coded lengths of [`read_lens`] after its precode, decoded on
/// a local copy of the reader that is written back at the end: in one
/// function with the precode's table build, the loop kept its position
/// on the stack and loaded and stored the reader's fields through its
/// reference for every length.
#[inline(never)]
fn decode_lens(
    pre: &DecodeTable<PRE_TABLE_BITS, PRE_TABLE_SIZE>,
    reader: &mut BitReader<'_>,
    lens: &mut [u8],
    start: usize,
    end: usize,
) -> Result<(), CodecError> {
    let mut local = reader.clone();
    let bits = &mut local;
    let mut i = start;
    while i < end {
        bits.refill();
        let symbol = pre.decode(bits);
        let (run, value) = match symbol {
            0..=16 => (1, delta(lens, i, symbol)),
            17 => (4 + bits.read(4) as usize, 0),
            18 => (20 + bits.read(5) as usize, 0),
            _ => {
                let run = 4 + bits.read(1) as usize;
                let symbol = pre.decode(bits);
                if symbol > 17 {
                    return Err(corrupt("bad code length repeat"));
                }
                (run, delta(lens, i, symbol))
            }
        };
        if run == 1 {
            // Most lengths come one at a time: no fill for them.
            if let Some(len) = lens.get_mut(i) {
                *len = value;
            }
            i += 1;
            continue;
        }
        let run_end = (i + run).min(lens.len());
        lens[i..run_end].fill(value);
        i = run_end;
    }
    *reader = local;
    Ok(())
}

/// A new code length from the previous one at `lens[i]` and a delta symbol.
fn delta(lens: &[u8], i: usize, symbol: u32) -> u8 {
    // previous <= 16 and symbol <= 16: one conditional subtraction instead
    // of a remainder.
    let previous = u32::from(lens.get(i).copied().unwrap_or(0));
    let value = previous + 17 - symbol;
    (if value >= 17 { value - 17 } else { value }) as u8
}

impl Decompressor for LzxDecompressor {
    fn decompress(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), CodecError> {
        let size = output.len();
        if size > self.max_chunk_size.next_power_of_two() {
            return Err(CodecError::UnsupportedChunkSize {
                codec: Compression::Lzx,
                chunk_size: size,
            });
        }
        self.main_lens.fill(0);
        self.len_lens.fill(0);
        let mut recent = [1u32; NUM_RECENT_OFFSETS];
        let mut bits = BitReader::new(input);
        let mut pos = 0usize;
        let mut may_have_e8 = false;
        while pos < size {
            bits.refill();
            let block_type = bits.read(3);
            let block_size = if bits.read(1) == 1 {
                DEFAULT_BLOCK_SIZE
            } else {
                let mut block_size = bits.read(16) as usize;
                if self.window_order >= 16 {
                    block_size = block_size << 8 | bits.read(8) as usize;
                }
                block_size
            };
            if block_size == 0 || block_size > size - pos {
                return Err(corrupt("block size past the end of the chunk"));
            }
            let end = pos + block_size;
            match block_type {
                BLOCK_VERBATIM | BLOCK_ALIGNED => {
                    self.read_codes(&mut bits, block_type)?;
                    may_have_e8 |= self.main_lens[0xE8] != 0;
                    self.decode_block(
                        &mut bits,
                        block_type == BLOCK_ALIGNED,
                        output,
                        pos,
                        end,
                        &mut recent,
                    )?;
                }
                BLOCK_UNCOMPRESSED => {
                    bits.align_skipping_unit();
                    for offset in &mut recent {
                        let raw = bits.take_bytes(4).ok_or(corrupt("truncated block"))?;
                        let mut word = [0u8; 4];
                        word.copy_from_slice(raw);
                        *offset = u32::from_le_bytes(word);
                        if *offset == 0 {
                            return Err(corrupt("recent offset of zero"));
                        }
                    }
                    let raw = bits
                        .take_bytes(block_size)
                        .ok_or(corrupt("truncated block"))?;
                    output[pos..end].copy_from_slice(raw);
                    if block_size % 2 == 1 {
                        bits.skip_byte();
                    }
                    may_have_e8 = true;
                }
                _ => return Err(corrupt("unknown block type")),
            }
            pos = end;
        }
        if bits.overran() {
            return Err(corrupt("truncated chunk"));
        }
        if may_have_e8 {
            undo_e8_translation(output);
        }
        Ok(())
    }
}

/// Turns the absolute targets of x86 CALL instructions (E8 xx xx xx xx),
/// as the compressor wrote them, back into relative ones. Positions are
/// relative to the chunk; no call starts in the last 10 bytes.
fn undo_e8_translation(data: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: the function needs only SSE2, which every x86-64 processor
    // has. Its vector compares find the E8 bytes 64 positions at a time,
    // in a third fewer instructions than a search call per E8 byte.
    unsafe {
        undo_e8_sse2(data)
    }
    #[cfg(not(target_arch = "x86_64"))]
    undo_e8_with(data, |block| {
        let mut mask = 0u64;
        for (k, &byte) in block.iter().enumerate() {
            mask |= u64::from(byte == 0xE8) << k;
        }
        mask
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn undo_e8_sse2(data: &mut [u8]) {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set1_epi8};
    undo_e8_with(data, |block| {
        let e8 = _mm_set1_epi8(0xE8u8 as i8);
        let mut mask = 0u64;
        for part in 0..4 {
            let at = part * 16;
            let equal = _mm_cmpeq_epi8(super::load_16(block, at), e8);
            mask |= u64::from(_mm_movemask_epi8(equal) as u16) << at;
        }
        mask
    })
}

/// The translation loop; `mask_of` gives the E8 bytes of a 64-byte block
/// as a bit mask (bit k for byte k). x86 code has an E8 byte every 50 to
/// 100 bytes, too often for a search call each.
#[inline(always)]
fn undo_e8_with(data: &mut [u8], mask_of: impl Fn(&[u8; 64]) -> u64) {
    if data.len() <= 10 {
        return;
    }
    let limit = data.len() - 10;
    let mut i = 0;
    while i < limit {
        let n = (limit - i).min(64);
        let mut mask = match data.get(i..i + 64) {
            Some(block) => {
                let mut whole = [0u8; 64];
                whole.copy_from_slice(block);
                mask_of(&whole) & (u64::MAX >> (64 - n))
            }
            None => {
                let mut whole = [0u8; 64];
                whole[..n].copy_from_slice(&data[i..limit]);
                mask_of(&whole) & (u64::MAX >> (64 - n))
            }
        };
        let mut next = i + n;
        while mask != 0 {
            let k = mask.trailing_zeros();
            let at = i + k as usize;
            let target = &mut data[at + 1..at + 5];
            let mut word = [0u8; 4];
            word.copy_from_slice(target);
            let absolute = i32::from_le_bytes(word);
            let position = at as i32;
            let relative = if absolute >= 0 {
                (absolute < E8_FILE_SIZE).then(|| absolute - position)
            } else {
                (absolute >= -position).then(|| absolute + E8_FILE_SIZE)
            };
            if let Some(relative) = relative {
                target.copy_from_slice(&relative.to_le_bytes());
            }
            // The call's four target bytes are not opcodes.
            mask &= !(0x1F_u128 << k) as u64;
            next = next.max(at + 5);
        }
        i = next;
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    fn decode_fixture(name: &str, file: &[u8], chunk_size: usize) -> usize {
        let mut decoder = LzxDecompressor::new(chunk_size).expect("supported chunk size");
        fixtures::decode_all(name, file, &mut decoder)
    }

    #[test]
    fn decodes_wimlib_chunks_of_32_and_64_kib() {
        let n = decode_fixture(
            "lzx-32k",
            include_bytes!("../../../tests/fixtures/codec/lzx-32k.bin"),
            32768,
        ) + decode_fixture(
            "lzx-64k",
            include_bytes!("../../../tests/fixtures/codec/lzx-64k.bin"),
            65536,
        );
        assert!(n >= 10, "only {n} chunks tested");
    }

    #[test]
    fn decodes_wimlib_chunks_of_256_kib_1_mib_and_2_mib() {
        let n = decode_fixture(
            "lzx-256k",
            include_bytes!("../../../tests/fixtures/codec/lzx-256k.bin"),
            262144,
        ) + decode_fixture(
            "lzx-1m",
            include_bytes!("../../../tests/fixtures/codec/lzx-1m.bin"),
            1 << 20,
        ) + decode_fixture(
            "lzx-2m",
            include_bytes!("../../../tests/fixtures/codec/lzx-2m.bin"),
            2 << 20,
        );
        assert!(n >= 5, "only {n} chunks tested");
    }

    #[test]
    fn window_sizes_give_the_format_s_main_code_sizes() {
        for (chunk_size, symbols) in [
            (32768, 496),
            (65536, 512),
            (131072, 528),
            (1 << 20, 592),
            (2 << 20, 656),
        ] {
            let decoder = LzxDecompressor::new(chunk_size).expect("supported chunk size");
            assert_eq!(decoder.num_main_symbols, symbols, "chunk size {chunk_size}");
        }
        assert!(LzxDecompressor::new(0).is_err());
        assert!(LzxDecompressor::new(4 << 20).is_err());
    }

    /// Bits written most significant first into 16-bit little-endian units.
    struct BitWriter {
        out: Vec<u8>,
        acc: u32,
        n: u32,
    }

    impl BitWriter {
        fn new() -> Self {
            BitWriter {
                out: Vec::new(),
                acc: 0,
                n: 0,
            }
        }
        fn put(&mut self, value: u32, count: u32) {
            for i in (0..count).rev() {
                self.acc = self.acc << 1 | (value >> i & 1);
                self.n += 1;
                if self.n == 16 {
                    self.out.extend_from_slice(&(self.acc as u16).to_le_bytes());
                    self.acc = 0;
                    self.n = 0;
                }
            }
        }
        fn flush(&mut self) {
            if self.n > 0 {
                self.put(0, 16 - self.n);
            }
        }
    }

    /// An uncompressed block: header, alignment, R0-R2, bytes, pad.
    fn uncompressed_block(w: &mut BitWriter, data: &[u8], recent: [u32; 3]) {
        w.put(BLOCK_UNCOMPRESSED, 3);
        w.put(0, 1);
        w.put(data.len() as u32, 16);
        // Aligned now only if 20 bits were already pending: flush, and when
        // that was a boundary, add the unit the decoder skips.
        let aligned = w.n == 0;
        w.flush();
        if aligned {
            w.put(0, 16);
        }
        for r in recent {
            w.out.extend_from_slice(&r.to_le_bytes());
        }
        w.out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            w.out.push(0);
        }
    }

    #[test]
    fn decodes_uncompressed_blocks_after_a_header_ending_mid_unit() {
        let mut decoder = LzxDecompressor::new(32768).expect("supported chunk size");
        // 20-bit headers: the rest of the second unit is padding.
        let mut w = BitWriter::new();
        uncompressed_block(&mut w, b"hello", [1, 2, 3]);
        uncompressed_block(&mut w, b"abc", [1, 1, 1]);
        let mut out = vec![0u8; 8];
        assert_eq!(decoder.decompress(&w.out, &mut out), Ok(()));
        assert_eq!(&out, b"helloabc");
    }

    /// A verbatim block of `size` zero bytes: every precode is empty, so
    /// all code lengths stay 0 and the empty main code yields literal 0
    /// from no bits. Its header is 20 + 3 * 80 = 260 bits (32 KiB window).
    fn zero_verbatim_block(w: &mut BitWriter, size: u32) {
        w.put(BLOCK_VERBATIM, 3);
        w.put(0, 1);
        w.put(size, 16);
        for _ in 0..3 * PRECODE_NUM_SYMBOLS {
            w.put(0, 4);
        }
    }

    #[test]
    fn skips_a_whole_unit_when_an_uncompressed_header_ends_on_a_boundary() {
        // 3 * 260 + 20 = 800 bits: the uncompressed block's header ends
        // exactly on a unit boundary, so one more unit is skipped.
        let mut w = BitWriter::new();
        for _ in 0..3 {
            zero_verbatim_block(&mut w, 1);
        }
        uncompressed_block(&mut w, b"xyz", [1, 1, 1]);
        assert_eq!(w.out.len(), 800 / 8 + 2 + 12 + 4);
        let mut decoder = LzxDecompressor::new(32768).expect("supported chunk size");
        let mut out = vec![0u8; 6];
        assert_eq!(decoder.decompress(&w.out, &mut out), Ok(()));
        assert_eq!(&out, b"\0\0\0xyz");
        // Without the skipped unit the recent offsets read as garbage.
        let mut unskipped = w.out.clone();
        unskipped.drain(100..102);
        let result = decoder.decompress(&unskipped, &mut out);
        assert!(result.is_err() || &out != b"\0\0\0xyz");
    }

    #[test]
    fn recent_offsets_of_an_uncompressed_block_are_checked() {
        let mut decoder = LzxDecompressor::new(32768).expect("supported chunk size");
        let mut w = BitWriter::new();
        uncompressed_block(&mut w, b"abc", [1, 0, 1]);
        let mut out = vec![0u8; 3];
        assert_eq!(
            decoder.decompress(&w.out, &mut out),
            Err(corrupt("recent offset of zero"))
        );
    }

    #[test]
    fn e8_targets_are_made_relative_again() {
        let mut data = vec![0u8; 32];
        // At position 4: absolute 0x1000 -> relative 0x1000 - 4.
        data[4] = 0xE8;
        data[5..9].copy_from_slice(&0x1000i32.to_le_bytes());
        // At position 9: absolute -3 (>= -9) -> -3 + 12,000,000.
        data[9] = 0xE8;
        data[10..14].copy_from_slice(&(-3i32).to_le_bytes());
        // At position 14: absolute 12,000,000 is out of range: unchanged.
        data[14] = 0xE8;
        data[15..19].copy_from_slice(&E8_FILE_SIZE.to_le_bytes());
        // At position 22 (in the last 10 bytes): unchanged.
        data[22] = 0xE8;
        data[23..27].copy_from_slice(&0x10i32.to_le_bytes());
        let mut expected = data.clone();
        expected[5..9].copy_from_slice(&(0x1000i32 - 4).to_le_bytes());
        expected[10..14].copy_from_slice(&(E8_FILE_SIZE - 3).to_le_bytes());
        undo_e8_translation(&mut data);
        assert_eq!(data, expected);
    }

    /// The translation one byte at a time, as the format describes it.
    fn undo_e8_bytewise(data: &mut [u8]) {
        let mut i = 0;
        while i + 10 < data.len() {
            if data[i] == 0xE8 {
                let mut word = [0u8; 4];
                word.copy_from_slice(&data[i + 1..i + 5]);
                let absolute = i32::from_le_bytes(word);
                let position = i as i32;
                if (-position..E8_FILE_SIZE).contains(&absolute) {
                    let relative = if absolute >= 0 {
                        absolute - position
                    } else {
                        absolute + E8_FILE_SIZE
                    };
                    data[i + 1..i + 5].copy_from_slice(&relative.to_le_bytes());
                }
                i += 5;
            } else {
                i += 1;
            }
        }
    }

    #[test]
    fn e8_translation_matches_a_bytewise_pass_across_blocks() {
        // Dense E8 bytes (one in 4 to one in 40), calls straddling the
        // 64-byte blocks the pass scans, targets in and out of range, and
        // lengths around the block size and the 10-byte tail.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for density in [4u64, 10, 40] {
            for len in [
                0usize, 10, 11, 15, 63, 64, 65, 74, 75, 128, 137, 1000, 32768,
            ] {
                let mut data: Vec<u8> = (0..len)
                    .map(|_| {
                        let r = next();
                        if r % density == 0 {
                            0xE8
                        } else {
                            (r >> 8) as u8
                        }
                    })
                    .collect();
                // Some targets small enough to be translated.
                for at in (0..len.saturating_sub(5)).step_by(7) {
                    if data[at] == 0xE8 && next() % 2 == 0 {
                        let target = (next() % 70_000) as i32 - 35_000;
                        data[at + 1..at + 5].copy_from_slice(&target.to_le_bytes());
                    }
                }
                let mut expected = data.clone();
                undo_e8_bytewise(&mut expected);
                undo_e8_translation(&mut data);
                assert_eq!(data, expected, "length {len}, density {density}");
            }
        }
    }

    fn first_chunk(file: &[u8]) -> (Vec<u8>, usize) {
        let chunk = &fixtures::chunks(file)[0];
        (chunk.data.to_vec(), chunk.size)
    }

    #[test]
    fn truncated_chunks_are_corrupt() {
        let (data, size) = first_chunk(include_bytes!("../../../tests/fixtures/codec/lzx-32k.bin"));
        let mut decoder = LzxDecompressor::new(32768).expect("supported chunk size");
        for cut in [0, 1, 2, 10, 100, data.len() / 2, data.len() - 8] {
            let mut out = vec![0u8; size];
            let result = decoder.decompress(&data[..cut], &mut out);
            assert!(
                matches!(result, Err(CodecError::Corrupt { .. })),
                "cut at {cut}: {result:?}"
            );
        }
    }

    #[test]
    fn a_chunk_decoded_with_the_wrong_size_is_corrupt() {
        let (data, size) = first_chunk(include_bytes!("../../../tests/fixtures/codec/lzx-32k.bin"));
        let mut decoder = LzxDecompressor::new(32768).expect("supported chunk size");
        let mut out = vec![0u8; size - 1];
        assert!(decoder.decompress(&data, &mut out).is_err());
    }

    #[test]
    fn damaged_input_never_panics() {
        let mut decoder = LzxDecompressor::new(1 << 20).expect("supported chunk size");
        let (chunk, size) = first_chunk(include_bytes!("../../../tests/fixtures/codec/lzx-1m.bin"));
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..300 {
            let mut data = chunk.clone();
            for _ in 0..1 + round % 5 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state as usize) % data.len().min(2000 + round * 50);
                data[at] = (state >> 32) as u8;
            }
            let mut out = vec![0u8; size];
            let _ = decoder.decompress(&data, &mut out);
        }
        // Pure noise for every window.
        for order in 15..=21 {
            let mut decoder = LzxDecompressor::new(1 << order).expect("supported chunk size");
            let mut out = vec![0u8; 1 << order];
            for _ in 0..20 {
                let noise: Vec<u8> = (0..4096)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        state as u8
                    })
                    .collect();
                let _ = decoder.decompress(&noise, &mut out);
            }
        }
    }
    #[test]
    fn every_truncation_fails_or_still_decodes_exactly() {
        let file = include_bytes!("../../../tests/fixtures/codec/lzx-32k.bin");
        let mut decoder = LzxDecompressor::new(32768).expect("supported chunk size");
        fixtures::check_truncations(file, &mut decoder);
    }
}
