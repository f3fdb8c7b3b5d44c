//! Any input to the XPRESS decompressor: an error or the exact chunk size,
//! never a panic, hang or out-of-bounds access; and the fast loop decodes
//! exactly as the plain one (same bytes, or the same error).
#![no_main]

use containerimage_provider::wim::codec::xpress::XpressDecompressor;
use containerimage_provider::wim::codec::Decompressor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the chunk size (1..=65536), the rest is the
    // compressed chunk.
    let Some((head, input)) = data.split_first_chunk::<2>() else {
        return;
    };
    let size = usize::from(u16::from_le_bytes(*head)) + 1;
    let Ok(mut decoder) = XpressDecompressor::new(65536) else {
        return;
    };
    let mut output = vec![0u8; size];
    let fast = decoder.decompress(input, &mut output);
    let mut reference = vec![0u8; size];
    let plain = decoder.decompress_plain(input, &mut reference);
    assert_eq!(fast, plain, "the two loops disagree on success");
    if fast.is_ok() {
        assert!(output == reference, "the two loops decoded different bytes");
    }
});
