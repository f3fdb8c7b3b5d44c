//! LZMS decompression (not implemented yet).

use super::{CodecError, Compression, Decompressor};

pub struct LzmsDecompressor;

impl LzmsDecompressor {
    pub fn new(_max_chunk_size: usize) -> Result<Self, CodecError> {
        Ok(LzmsDecompressor)
    }
}

impl Decompressor for LzmsDecompressor {
    fn decompress(&mut self, _input: &[u8], _output: &mut [u8]) -> Result<(), CodecError> {
        Err(CodecError::Corrupt {
            codec: Compression::Lzms,
            reason: "LZMS decompression is not implemented yet",
        })
    }
}
