//! LZMS decoding of arbitrary input: never panics, always fills exactly the
//! output or fails, and gives the same answer when the decompressor is reused.
//!
//! Input: u32 little-endian output size (taken modulo 256 KiB + 1), then
//! the compressed chunk.
#![no_main]

use containerimage_provider::wim::codec::lzms::LzmsDecompressor;
use containerimage_provider::wim::codec::Decompressor;
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
});
