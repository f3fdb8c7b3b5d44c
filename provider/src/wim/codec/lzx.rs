//! LZX decompression (not implemented yet).

use super::{CodecError, Compression, Decompressor};

pub struct LzxDecompressor;

impl LzxDecompressor {
    pub fn new(_max_chunk_size: usize) -> Result<Self, CodecError> {
        Ok(LzxDecompressor)
    }
}

impl Decompressor for LzxDecompressor {
    fn decompress(&mut self, _input: &[u8], _output: &mut [u8]) -> Result<(), CodecError> {
        Err(CodecError::Corrupt {
            codec: Compression::Lzx,
            reason: "LZX decompression is not implemented yet",
        })
    }
}
