//! Chunk decompressors for the WIM codecs, written in this project:
//! XPRESS (Huffman), LZX (WIM variant) and LZMS.
//!
//! Every chunk is independent, so a decompressor is cheap to create per
//! thread and is reused for many chunks.

mod bits;
#[cfg(test)]
mod fixtures;
mod huffman;
mod lz;
pub mod lzms;
pub mod lzx;
pub mod xpress;

use std::fmt;

/// The 16 bytes of `bytes` from `at` as one SSE2 vector, byte k in lane k;
/// `at + 16 <= bytes.len()`. Built from two little-endian words: a plain
/// load through a pointer would need `unsafe`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn load_16(bytes: &[u8], at: usize) -> std::arch::x86_64::__m128i {
    let word = |k: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[k..k + 8]);
        i64::from_le_bytes(word)
    };
    std::arch::x86_64::_mm_set_epi64x(word(at + 8), word(at))
}

/// A WIM compression format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Xpress,
    Lzx,
    Lzms,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "None",
            Compression::Xpress => "XPRESS",
            Compression::Lzx => "LZX",
            Compression::Lzms => "LZMS",
        })
    }
}

impl Compression {
    /// The most a chunk can claim per stored byte before a reader refuses
    /// it unread: no XPRESS or LZX chunk expands 65,536 times. `None` for
    /// LZMS, where one match may repeat a byte a billion times (wimlib
    /// writes 16 MiB of zeros as 14 bytes): its decoder stops a damaged
    /// chunk itself, checking every 1 MiB of output that its two streams
    /// have not crossed.
    pub fn max_expansion(self) -> Option<u64> {
        match self {
            Compression::Lzms => None,
            Compression::None | Compression::Xpress | Compression::Lzx => Some(1 << 16),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The compressed data is damaged or does not decode to the declared size.
    #[error("corrupt {codec} data: {reason}")]
    Corrupt {
        codec: Compression,
        reason: &'static str,
    },
    /// The chunk size is outside what the codec supports.
    #[error("{codec} does not support a chunk size of {chunk_size} bytes")]
    UnsupportedChunkSize {
        codec: Compression,
        chunk_size: usize,
    },
}

/// Decompresses chunks of one codec.
pub trait Decompressor: Send {
    /// Decodes one compressed chunk `input` into `output`, whose length is the
    /// chunk's uncompressed size. Fails unless exactly `output.len()` bytes
    /// are produced from well-formed input.
    fn decompress(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), CodecError>;

    /// Decodes a chunk of `len` compressed bytes as [`Self::decompress`]
    /// would, reading them piece by piece: `read(at, buf)` fills `buf`
    /// with the chunk's bytes from `at`. `None` where the codec needs the
    /// whole chunk in memory.
    fn decompress_read(
        &mut self,
        len: usize,
        read: &mut ReadChunk<'_>,
        output: &mut [u8],
    ) -> Option<Result<(), ReadError>> {
        let _ = (len, read, output);
        None
    }
}

/// Reads a chunk's compressed bytes from a given offset within it.
pub type ReadChunk<'a> = dyn FnMut(usize, &mut [u8]) -> std::io::Result<()> + 'a;

/// Why [`Decompressor::decompress_read`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A decompressor for `codec` able to handle chunks up to `max_chunk_size` bytes.
pub fn decompressor(
    codec: Compression,
    max_chunk_size: usize,
) -> Result<Box<dyn Decompressor>, CodecError> {
    Ok(match codec {
        Compression::None => Box::new(Stored),
        Compression::Xpress => Box::new(xpress::XpressDecompressor::new(max_chunk_size)?),
        Compression::Lzx => Box::new(lzx::LzxDecompressor::new(max_chunk_size)?),
        Compression::Lzms => Box::new(lzms::LzmsDecompressor::new(max_chunk_size)?),
    })
}

/// "Compression: none" — the input is the output.
struct Stored;

impl Decompressor for Stored {
    fn decompress(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), CodecError> {
        if input.len() != output.len() {
            return Err(CodecError::Corrupt {
                codec: Compression::None,
                reason: "stored chunk has the wrong size",
            });
        }
        output.copy_from_slice(input);
        Ok(())
    }
}
