//! LZMS decompression: the codec of solid WIM resources and `.esd` files.
//!
//! A chunk holds two streams in one buffer of 16-bit units: a range-coded
//! stream read forwards from the start ([`range`]) that chooses what comes
//! next, and a bitstream read backwards from the end ([`bits`]) with the
//! adaptive Huffman codes ([`huffman`]) and verbatim bits for the values.
//! Items are literals, LZ matches (copy from `offset` bytes back) and delta
//! matches (`out[i] = out[i - offset] + out[i - span] - out[i - offset -
//! span]`, bytewise), each match giving its source explicitly or as one of
//! the three most recent ones. At the end the x86 filter is undone ([`x86`]).

mod bits;
mod huffman;
mod range;
mod tables;
mod x86;

use super::{CodecError, Compression, Decompressor, ReadChunk, ReadError};
use bits::{BackwardBits, Suspended};
use huffman::AdaptiveCode;
use range::{Decision, RangeDecoder};
use tables::{length_slot, offset_slot, NUM_LENGTH_SLOTS};
use x86::X86Filter;

/// The largest chunk LZMS can describe (matches may reach back 1 GiB).
const MAX_CHUNK_SIZE: usize = 1 << 30;

/// Symbols between rebuilds of each adaptive Huffman code.
const LITERAL_REBUILD: u32 = 1024;
const LZ_OFFSET_REBUILD: u32 = 1024;
const LENGTH_REBUILD: u32 = 512;
const DELTA_OFFSET_REBUILD: u32 = 1024;
const DELTA_POWER_REBUILD: u32 = 512;

/// First-level table bits of the offset and length codes. Larger tables
/// send fewer codewords to a subtable but cost more to rebuild.
const OFFSET_TABLE_BITS: u32 = 10;
const LENGTH_TABLE_BITS: u32 = 9;

/// How far the two streams of a chunk may overlap before the chunk counts
/// as damaged (wimlib's chunks leave at least 16 bits between them).
const STREAM_OVERLAP_TOLERANCE_BITS: u64 = 32;

/// Delta matches span 2^0 to 2^7 bytes.
const NUM_DELTA_POWERS: usize = 8;

/// Compressed bytes held from each end of a chunk read piece by piece
/// ([`Decompressor::decompress_read`]); a chunk up to twice as large is
/// read whole.
const WINDOW: usize = 1 << 20;

/// Most bytes one item takes from either end of a chunk, rounded up: five
/// range-coded decisions of one 16-bit unit each at the front; at the back
/// up to 105 bits (a delta match: four codewords of up to 15 bits and two
/// values of up to 30) and the 64 bits the reader loads ahead.
const ITEM_BYTES: usize = 32;

/// Most output decoded between two checks that the chunk's two streams
/// have not crossed. Past its end, each stream reads as zeros, which
/// decode as literals: without the checks, a few damaged bytes claiming a
/// 1 GiB chunk would be decoded to the end. Nothing else bounds a chunk's
/// expansion: one match may repeat a byte a billion times, and wimlib
/// writes 16 MiB of zeros as 14 bytes.
const PART_OUTPUT: usize = 1 << 20;

/// Decodes LZMS chunks; create one per thread and reuse it.
pub struct LzmsDecompressor {
    state: Box<State>,
    /// The bytes held from the front and the back of a chunk read piece by
    /// piece; their pages are made when first used.
    front: Vec<u8>,
    back: Vec<u8>,
}

/// Everything a chunk needs besides its input and output, allocated once.
///
/// The codes are sized for powers of two (1024 offset slots, 64 length
/// slots) larger than the format's counts, so that a symbol reduced modulo
/// their size is a mask; a chunk only ever uses the format's count.
struct State {
    literals: AdaptiveCode<256, 10, 4096>,
    lz_offsets: OffsetCode,
    lengths: AdaptiveCode<64, LENGTH_TABLE_BITS, 2048>,
    delta_offsets: OffsetCode,
    delta_powers: AdaptiveCode<NUM_DELTA_POWERS, 7, 512>,
    decisions: Decisions,
    x86: X86Filter,
}

type OffsetCode = AdaptiveCode<1024, OFFSET_TABLE_BITS, 8192>;

/// The binary decision classes of the range-coded stream.
struct Decisions {
    /// Literal (0) or match (1).
    is_match: Decision<16>,
    /// LZ match (0) or delta match (1).
    is_delta: Decision<32>,
    /// Explicit (0) or repeated (1) LZ offset.
    lz_is_repeat: Decision<64>,
    /// Explicit (0) or repeated (1) delta source.
    delta_is_repeat: Decision<64>,
    /// Which recent LZ offset: 0 stops at the first, 1 goes on.
    lz_repeat_index: [Decision<64>; 2],
    /// Which recent delta source.
    delta_repeat_index: [Decision<64>; 2],
}

impl Decisions {
    fn new() -> Self {
        Decisions {
            is_match: Decision::new(),
            is_delta: Decision::new(),
            lz_is_repeat: Decision::new(),
            delta_is_repeat: Decision::new(),
            lz_repeat_index: [Decision::new(), Decision::new()],
            delta_repeat_index: [Decision::new(), Decision::new()],
        }
    }

    fn reset(&mut self) {
        self.is_match.reset();
        self.is_delta.reset();
        self.lz_is_repeat.reset();
        self.delta_is_repeat.reset();
        self.lz_repeat_index.iter_mut().for_each(Decision::reset);
        self.delta_repeat_index.iter_mut().for_each(Decision::reset);
    }
}

/// The recently used match sources, most recent first.
///
/// A source enters the front only after the *next* item has been decoded:
/// while the previous item was a match of the same kind, its source sits in
/// slot 0 but is not yet visible, and repeat index `k` means slot `k + 1`.
/// The fourth slot keeps the source that the pending one will push out.
#[derive(Clone, Copy)]
struct RecentSources<T> {
    slots: [T; 4],
}

impl<T: Copy> RecentSources<T> {
    /// Records an explicitly coded source.
    #[inline(always)]
    fn push(&mut self, source: T) {
        self.slots.copy_within(0..3, 1);
        self.slots[0] = source;
    }

    /// Takes the source at repeat index `index` (0..=2) and moves it to the
    /// front. `pending`: the previous item was a match of this kind.
    #[inline(always)]
    fn take(&mut self, index: usize, pending: bool) -> T {
        let s = self.slots;
        let (source, slots) = match index + usize::from(pending) {
            0 => (s[0], s),
            1 => (s[1], [s[1], s[0], s[2], s[3]]),
            2 => (s[2], [s[2], s[0], s[1], s[3]]),
            _ => (s[3], [s[3], s[0], s[1], s[2]]),
        };
        self.slots = slots;
        source
    }
}

/// How far a chunk's items have been decoded: what [`State::decode_items`]
/// carries from one part of a chunk's bytes to the next.
#[derive(Clone, Copy)]
struct Cursor {
    /// The next byte of output.
    pos: usize,
    previous: Item,
    /// The recent bits of the literal-or-match decision.
    is_match_recent: usize,
    lz_recent: RecentSources<u32>,
    /// (power, raw offset) pairs.
    delta_recent: RecentSources<(u32, u32)>,
}

impl Cursor {
    const START: Cursor = Cursor {
        pos: 0,
        previous: Item::Literal,
        is_match_recent: 0,
        lz_recent: RecentSources {
            slots: [1, 2, 3, 4],
        },
        delta_recent: RecentSources {
            slots: [(0, 1), (0, 2), (0, 3), (0, 4)],
        },
    };
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Item {
    Literal,
    Lz,
    Delta,
}

fn corrupt(reason: &'static str) -> CodecError {
    CodecError::Corrupt {
        codec: Compression::Lzms,
        reason,
    }
}

impl LzmsDecompressor {
    /// A decompressor for chunks of up to `max_chunk_size` bytes (at most
    /// 1 GiB, the largest LZMS window). All its memory is allocated here.
    pub fn new(max_chunk_size: usize) -> Result<Self, CodecError> {
        if max_chunk_size > MAX_CHUNK_SIZE {
            return Err(CodecError::UnsupportedChunkSize {
                codec: Compression::Lzms,
                chunk_size: max_chunk_size,
            });
        }
        Ok(LzmsDecompressor {
            state: Box::new(State {
                literals: AdaptiveCode::new(LITERAL_REBUILD),
                lz_offsets: AdaptiveCode::new(LZ_OFFSET_REBUILD),
                lengths: AdaptiveCode::new(LENGTH_REBUILD),
                delta_offsets: AdaptiveCode::new(DELTA_OFFSET_REBUILD),
                delta_powers: AdaptiveCode::new(DELTA_POWER_REBUILD),
                decisions: Decisions::new(),
                x86: X86Filter::new(),
            }),
            front: vec![0; WINDOW],
            back: vec![0; WINDOW],
        })
    }
}

impl Decompressor for LzmsDecompressor {
    fn decompress(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), CodecError> {
        if output.len() > MAX_CHUNK_SIZE {
            return Err(CodecError::UnsupportedChunkSize {
                codec: Compression::Lzms,
                chunk_size: output.len(),
            });
        }
        // The data is made of 16-bit units, and the range decoder starts
        // with two of them.
        if !input.len().is_multiple_of(2) {
            return Err(corrupt("compressed size is odd"));
        }
        let mut range = RangeDecoder::new(input).ok_or(corrupt("compressed chunk is too short"))?;
        let mut bits = BackwardBits::new(input);
        self.state.reset(output.len());
        let mut cursor = Cursor::START;
        if output.len() <= PART_OUTPUT {
            (range, bits) =
                self.state
                    .decode_items::<false>(range, bits, output, &mut cursor, output.len())?;
        }
        // A larger chunk in parts, the streams checked after each: a
        // damaged chunk stops within a part of where they cross.
        while cursor.pos < output.len() {
            let end = cursor.pos.saturating_add(PART_OUTPUT);
            (range, bits) = self
                .state
                .decode_part(range, bits, output, &mut cursor, end)?;
            check_readers(&range, &bits, input.len())?;
        }
        // A chunk in one part is checked here, apart: with the two paths
        // in one loop, or this check inside the branch above, the item
        // loop inlined in this function took 0.4-1.5% more instructions
        // (cachegrind, 128 KiB chunks).
        if output.len() <= PART_OUTPUT {
            check_readers(&range, &bits, input.len())?;
        }
        self.state.x86.undo(output);
        Ok(())
    }

    fn decompress_read(
        &mut self,
        len: usize,
        read: &mut ReadChunk<'_>,
        output: &mut [u8],
    ) -> Option<Result<(), ReadError>> {
        Some(self.decompress_in_pieces(len, read, output, WINDOW))
    }
}

impl LzmsDecompressor {
    /// [`Decompressor::decompress_read`] holding `window` bytes (at least
    /// 256) from each end of the chunk at a time, rather than [`WINDOW`]:
    /// smaller ones let tests and fuzzing move the windows often.
    pub fn decompress_in_pieces(
        &mut self,
        len: usize,
        read: &mut ReadChunk<'_>,
        output: &mut [u8],
        window: usize,
    ) -> Result<(), ReadError> {
        // Whole units, and parts of at least two items.
        let window = window.max(8 * ITEM_BYTES).next_multiple_of(2);
        let mut front = std::mem::take(&mut self.front);
        let mut back = std::mem::take(&mut self.back);
        let decoded = match len <= 2 * window {
            true => self.read_whole(len, read, output, &mut front),
            false => self.read_ends(len, read, output, [&mut front, &mut back], window),
        };
        self.front = front;
        self.back = back;
        decoded
    }

    /// [`Decompressor::decompress_read`] for a chunk small enough to read
    /// whole into `into`.
    fn read_whole(
        &mut self,
        len: usize,
        read: &mut ReadChunk<'_>,
        output: &mut [u8],
        into: &mut Vec<u8>,
    ) -> Result<(), ReadError> {
        into.resize(len, 0);
        read(0, into)?;
        Ok(self.decompress(into, output)?)
    }

    /// [`Self::decompress_in_pieces`] for a chunk of more than `2 *
    /// window` bytes: up to `window` bytes are held from each end, in
    /// `front` for the range-coded stream and `back` for the bitstream.
    /// The items are decoded in parts, each short enough that neither
    /// stream can read past the bytes held ([`ITEM_BYTES`] per item, and
    /// each item gives at least one byte); between parts, a window with
    /// less than a quarter left moves on. A window that reaches its end of
    /// the chunk stays, and its stream reads on past it as in
    /// [`Decompressor::decompress`].
    fn read_ends(
        &mut self,
        len: usize,
        read: &mut ReadChunk<'_>,
        output: &mut [u8],
        [front, back]: [&mut Vec<u8>; 2],
        window: usize,
    ) -> Result<(), ReadError> {
        if output.len() > MAX_CHUNK_SIZE {
            return Err(CodecError::UnsupportedChunkSize {
                codec: Compression::Lzms,
                chunk_size: output.len(),
            }
            .into());
        }
        if !len.is_multiple_of(2) {
            return Err(corrupt("compressed size is odd").into());
        }
        front.resize(window, 0);
        back.resize(window, 0);
        // The front window holds the chunk's bytes from `f0`, `f_len` of
        // them, the next unread at `f_at`; the back window those from
        // `b0`, `b_at` of them unread.
        let (mut f0, mut f_len) = (0, window);
        let (mut b0, mut b_at) = (len - window, window);
        read(f0, front)?;
        read(b0, back)?;
        let range = RangeDecoder::new(front).ok_or(corrupt("compressed chunk is too short"))?;
        let (mut coder, unread) = range.suspend();
        let mut f_at = window - unread;
        let mut loaded = Suspended::default();

        self.state.reset(output.len());
        let mut cursor = Cursor::START;
        loop {
            if f0 + f_len < len && f_len - f_at < window / 4 {
                front.copy_within(f_at..f_len, 0);
                let kept = f_len - f_at;
                f0 += f_at;
                f_at = 0;
                f_len = window.min(len - f0);
                read(f0 + kept, &mut front[kept..f_len])?;
            }
            if b0 > 0 && b_at < window / 4 {
                let end = b0 + b_at;
                let start = end.saturating_sub(window);
                back.copy_within(..b_at, b0 - start);
                read(start, &mut back[..b0 - start])?;
                (b0, b_at) = (start, end - start);
            }
            let f_left = match f0 + f_len == len {
                true => usize::MAX,
                false => f_len - f_at,
            };
            let b_left = match b0 {
                0 => usize::MAX,
                _ => b_at,
            };
            let end = (cursor.pos)
                .saturating_add((f_left.min(b_left) / ITEM_BYTES).min(PART_OUTPUT))
                .min(output.len());
            let range = RangeDecoder::resume(&front[f_at..f_len], coder);
            let bits = BackwardBits::resume(&back[..b_at], loaded);
            let (range, bits) = self
                .state
                .decode_part(range, bits, output, &mut cursor, end)?;
            let unread;
            (coder, unread) = range.suspend();
            f_at = f_len - unread;
            (loaded, b_at) = bits.suspend();
            check_streams(
                (f0 + f_at) as u64,
                loaded.consumed_bits(len - b0 - b_at),
                len,
            )?;
            if cursor.pos >= output.len() {
                break;
            }
        }
        self.state.x86.undo(output);
        Ok(())
    }
}

/// [`check_streams`] for the two readers of a chunk of `len` bytes.
fn check_readers(
    range: &RangeDecoder<'_>,
    bits: &BackwardBits<'_>,
    len: usize,
) -> Result<(), CodecError> {
    check_streams(range.consumed_bytes() as u64, bits.consumed_bits(), len)
}

/// The range coder reads a chunk from the front and the bitstream from the
/// back; in a well-formed chunk they never cross. A small overlap is let
/// through, as the last range-coder units read may be ones whose value
/// does not matter.
fn check_streams(front_bytes: u64, back_bits: u64, len: usize) -> Result<(), CodecError> {
    let input_bits = (len as u64 & !1) * 8;
    match front_bytes * 8 + back_bits > input_bits + STREAM_OVERLAP_TOLERANCE_BITS {
        true => Err(corrupt(
            "the chunk is truncated or damaged (its two streams overlap)",
        )),
        false => Ok(()),
    }
}

impl State {
    fn reset(&mut self, chunk_len: usize) {
        let offset_slots = tables::offset_slots_for(chunk_len);
        self.literals.reset(256);
        self.lz_offsets.reset(offset_slots);
        self.lengths.reset(NUM_LENGTH_SLOTS);
        self.delta_offsets.reset(offset_slots);
        self.delta_powers.reset(NUM_DELTA_POWERS);
        self.decisions.reset();
    }

    /// [`Self::decode_items`] for one part of a chunk read in pieces: a
    /// function of its own, as inlined into the loop over the parts, the
    /// item loop took 4% more instructions.
    #[inline(never)]
    fn decode_part<'r, 'b>(
        &mut self,
        range: RangeDecoder<'r>,
        bits: BackwardBits<'b>,
        out: &mut [u8],
        cursor: &mut Cursor,
        end: usize,
    ) -> Result<(RangeDecoder<'r>, BackwardBits<'b>), CodecError> {
        self.decode_items::<true>(range, bits, out, cursor, end)
    }

    /// Decodes items from `cursor` on until `out` is full or, with
    /// `PARTS`, an item would start at `end` or later; returns the two
    /// readers.
    #[inline(always)]
    fn decode_items<'r, 'b, const PARTS: bool>(
        &mut self,
        mut range: RangeDecoder<'r>,
        mut bits: BackwardBits<'b>,
        out: &mut [u8],
        cursor: &mut Cursor,
        end: usize,
    ) -> Result<(RangeDecoder<'r>, BackwardBits<'b>), CodecError> {
        let end = match PARTS {
            true => end.min(out.len()),
            false => out.len(),
        };
        // Locals, not the cursor's fields, in the loop.
        let Cursor {
            mut pos,
            mut previous,
            mut is_match_recent,
            mut lz_recent,
            mut delta_recent,
        } = *cursor;

        'items: loop {
            // A run of literals, in a loop of its own: the most frequent
            // items, and few values live.
            loop {
                // One bound for both ends: `out`'s, or the part's, which
                // is no further.
                let Some(byte) = out[..end].get_mut(pos) else {
                    break 'items;
                };
                if range.decode_with(&mut self.decisions.is_match.entries, &mut is_match_recent) {
                    break;
                }
                *byte = self.literals.decode(&mut bits) as u8;
                pos += 1;
                previous = Item::Literal;
            }

            let d = &mut self.decisions;
            if !range.decode(&mut d.is_delta) {
                let offset = if !range.decode(&mut d.lz_is_repeat) {
                    let slot = offset_slot(self.lz_offsets.decode(&mut bits));
                    let offset = slot.base + bits.take(slot.extra_bits);
                    lz_recent.push(offset);
                    offset
                } else {
                    let index = repeat_index(&mut range, &mut d.lz_repeat_index);
                    lz_recent.take(index, previous == Item::Lz)
                };
                previous = Item::Lz;
                // The source is known now; the length is decoded while it
                // loads (in a solid chunk it may be megabytes back).
                super::lz::prefetch(out, pos.wrapping_sub(offset as usize));
                let length = decode_length(&mut self.lengths, &mut bits);

                let offset = offset as usize;
                let remaining = out.len() - pos;
                if offset > pos {
                    return Err(corrupt("match reaches before the chunk start"));
                }
                if length > remaining {
                    return Err(corrupt("match runs past the chunk end"));
                }
                copy_match(out, pos, offset, length);
                pos += length;
            } else {
                pos = self.delta_match(
                    &mut range,
                    &mut bits,
                    &mut delta_recent,
                    previous == Item::Delta,
                    out,
                    pos,
                )?;
                previous = Item::Delta;
            }
        }
        *cursor = Cursor {
            pos,
            previous,
            is_match_recent,
            lz_recent,
            delta_recent,
        };
        Ok((range, bits))
    }

    /// Decodes a delta match (the rarest item, kept out of the item loop)
    /// and writes it at `pos`; returns the position after it. `pending`:
    /// the previous item was a delta match.
    #[inline(never)]
    fn delta_match(
        &mut self,
        range: &mut RangeDecoder<'_>,
        bits: &mut BackwardBits<'_>,
        recent: &mut RecentSources<(u32, u32)>,
        pending: bool,
        out: &mut [u8],
        pos: usize,
    ) -> Result<usize, CodecError> {
        let d = &mut self.decisions;
        let (power, raw_offset) = if !range.decode(&mut d.delta_is_repeat) {
            let power = self.delta_powers.decode(bits) as u32;
            let slot = offset_slot(self.delta_offsets.decode(bits));
            let raw_offset = slot.base + bits.take(slot.extra_bits);
            recent.push((power, raw_offset));
            (power, raw_offset)
        } else {
            let index = repeat_index(range, &mut d.delta_repeat_index);
            recent.take(index, pending)
        };
        let length = decode_length(&mut self.lengths, bits);

        // power < 8, so neither value overflows in 64 bits.
        let span = 1u64 << (power % 8);
        let offset = u64::from(raw_offset) << (power % 8);
        let remaining = out.len() - pos;
        if offset + span > pos as u64 {
            return Err(corrupt("delta match reaches before the chunk start"));
        }
        if length > remaining {
            return Err(corrupt("delta match runs past the chunk end"));
        }
        copy_delta(out, pos, offset as usize, span as usize, length);
        Ok(pos + length)
    }
}

/// Decodes which of the three recent sources a repeated match uses.
#[inline(always)]
fn repeat_index(range: &mut RangeDecoder<'_>, decisions: &mut [Decision<64>; 2]) -> usize {
    if !range.decode(&mut decisions[0]) {
        0
    } else if !range.decode(&mut decisions[1]) {
        1
    } else {
        2
    }
}

/// Decodes a match length. Most lengths are of slots 0-25, which have no
/// extra bits, and take the early return: reading their zero bits, with
/// its refill check, took 20 M of 728 M instructions on the 128 KiB mixed
/// chunks (cachegrind).
#[inline(always)]
fn decode_length(
    lengths: &mut AdaptiveCode<64, LENGTH_TABLE_BITS, 2048>,
    bits: &mut BackwardBits<'_>,
) -> usize {
    let slot = length_slot(lengths.decode(bits));
    if slot.extra_bits == 0 {
        return slot.base as usize;
    }
    (slot.base + bits.take(slot.extra_bits)) as usize
}

/// Copies an LZ match of `length` bytes from `offset` bytes back to `pos`;
/// the source may overlap the destination (a repeating pattern). The caller
/// has checked `1 <= offset <= pos` and `pos + length <= out.len()`.
#[inline(always)]
fn copy_match(out: &mut [u8], pos: usize, offset: usize, length: usize) {
    let src = pos - offset;
    let end = pos + length;
    if offset >= 8 {
        // Eight bytes at a time, each read taken before the write that
        // follows it, so an overlapping source repeats as it should; the
        // bytes written past `end` are overwritten by later output.
        if length <= 24 {
            // Most matches: three words, no loop.
            if super::lz::copy_short(out, pos, offset) {
                return;
            }
        } else if offset >= 16 && end + 16 <= out.len() {
            // Long matches 16 bytes at a time when the source allows.
            copy_by::<16>(out, src, pos, end);
            return;
        } else if end + 8 <= out.len() {
            copy_by::<8>(out, src, pos, end);
            return;
        }
    }
    copy_match_slowly(out, pos, offset, length);
}

/// Copies `W` bytes at a time from `src` to `dst` until `end`; the caller
/// has checked `W <= dst - src` and `end + W <= out.len()`.
#[inline(always)]
fn copy_by<const W: usize>(out: &mut [u8], src: usize, dst: usize, end: usize) {
    let (mut s, mut d) = (src, dst);
    while d < end {
        out.copy_within(s..s + W, d);
        s += W;
        d += W;
    }
}

/// [`copy_match`] for short offsets and the end of the output: the shared
/// LZ copy, kept out of line so the item loop stays small.
#[inline(never)]
fn copy_match_slowly(out: &mut [u8], pos: usize, offset: usize, length: usize) {
    super::lz::copy_match(out, pos, offset, length);
}

/// Writes a delta match: every byte is its source byte plus the change
/// between the bytes one span before each. `offset + span <= pos`.
fn copy_delta(out: &mut [u8], pos: usize, offset: usize, span: usize, length: usize) {
    for i in pos..pos + length {
        out[i] = out[i - offset]
            .wrapping_add(out[i - span])
            .wrapping_sub(out[i - offset - span]);
    }
}

#[cfg(test)]
mod tests;
