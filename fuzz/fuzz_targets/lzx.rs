//! Any input to the LZX decompressor, for every window size: an error or
//! the exact chunk size, never a panic, hang or out-of-bounds access.
#![no_main]

use containerimage_provider::wim::codec::{decompressor, Compression};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Byte 0 chooses the window (32 KiB << 0..=6), bytes 1-3 the chunk size
    // within it; the rest is the compressed chunk.
    let Some((head, input)) = data.split_first_chunk::<4>() else {
        return;
    };
    let window = 32768usize << (head[0] % 7);
    let size = (usize::from(head[1]) | usize::from(head[2]) << 8 | usize::from(head[3]) << 16)
        % window
        + 1;
    let Ok(mut decoder) = decompressor(Compression::Lzx, window) else {
        return;
    };
    let mut output = vec![0u8; size];
    let _ = decoder.decompress(input, &mut output);
});
