//! Any input to the XPRESS decompressor: an error or the exact chunk size,
//! never a panic, hang or out-of-bounds access.
#![no_main]

use containerimage_provider::wim::codec::{decompressor, Compression};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the chunk size (1..=65536), the rest is the
    // compressed chunk.
    let Some((head, input)) = data.split_first_chunk::<2>() else {
        return;
    };
    let size = usize::from(u16::from_le_bytes(*head)) + 1;
    let Ok(mut decoder) = decompressor(Compression::Xpress, 65536) else {
        return;
    };
    let mut output = vec![0u8; size];
    let _ = decoder.decompress(input, &mut output);
});
