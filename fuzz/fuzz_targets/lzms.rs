//! LZMS decoding of arbitrary input: never panics, always fills exactly the
//! output or fails, gives the same answer when the decompressor is reused,
//! and the same bytes (or a failure) again when the chunk is read in pieces
//! through small windows, reading only within the chunk.
//!
//! Input: u32 little-endian output size (taken modulo 256 KiB + 1), then
//! the compressed chunk.
#![no_main]

use containerimage_provider::wim::codec::lzms::LzmsDecompressor;
use containerimage_provider::wim::codec::{Decompressor, ReadError};
use libfuzzer_sys::fuzz_target;

const MAX_OUTPUT: usize = 256 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((size, input)) = data.split_first_chunk::<4>() else {
        return;
    };
    let size = u32::from_le_bytes(*size) as usize % (MAX_OUTPUT + 1);
    let Ok(mut decompressor) = LzmsDecompressor::new(MAX_OUTPUT) else {
        return;
    };
    let mut first = vec![0u8; size];
    let first_result = decompressor.decompress(input, &mut first);
    let mut second = vec![0xFFu8; size];
    let second_result = decompressor.decompress(input, &mut second);
    assert_eq!(first_result, second_result);
    if first_result.is_ok() {
        assert!(first == second, "reusing the decompressor changed the output");
    }
    for window in [256, 1024] {
        let mut read = |at: usize, buf: &mut [u8]| {
            let piece = at
                .checked_add(buf.len())
                .and_then(|end| input.get(at..end))
                .expect("a read within the chunk");
            buf.copy_from_slice(piece);
            Ok(())
        };
        let mut pieces = vec![0x5Au8; size];
        let result =
            match decompressor.decompress_in_pieces(input.len(), &mut read, &mut pieces, window) {
                Ok(()) => Ok(()),
                Err(ReadError::Codec(e)) => Err(e),
                Err(ReadError::Io(e)) => panic!("no read failed, yet: {e}"),
            };
        // Both fail, or both give the same bytes (a damaged chunk may fail
        // for another reason first: the streams are checked part by part).
        assert_eq!(result.is_ok(), first_result.is_ok(), "{window}-byte windows");
        if result.is_ok() {
            assert!(first == pieces, "{window}-byte windows changed the output");
        }
    }
});
