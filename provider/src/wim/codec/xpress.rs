//! XPRESS decompression (not implemented yet).

use super::{CodecError, Compression, Decompressor};

pub struct XpressDecompressor;

impl XpressDecompressor {
    pub fn new(_max_chunk_size: usize) -> Result<Self, CodecError> {
        Ok(XpressDecompressor)
    }
}

impl Decompressor for XpressDecompressor {
    fn decompress(&mut self, _input: &[u8], _output: &mut [u8]) -> Result<(), CodecError> {
        Err(CodecError::Corrupt {
            codec: Compression::Xpress,
            reason: "XPRESS decompression is not implemented yet",
        })
    }
}
