//! Any bytes on standard input of a pipeline cmdlet: objects or one clear
//! error, never a panic, a hang, or memory beyond the reader's bounds.
#![no_main]

use containerimage_provider::pipeline::{PipelineReader, MAX_LINE_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A small read buffer, so lines arrive in pieces as from a slow pipe.
    let input = std::io::BufReader::with_capacity(64, data);
    let mut count = 0usize;
    for item in PipelineReader::new(input) {
        match item {
            Ok(object) => {
                count += 1;
                // Reading properties the way the cmdlets do.
                let _ = object.get("Name").and_then(|v| v.as_str());
                let _ = object.get("Size").and_then(|v| v.as_u64());
            }
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("standard input"), "{text}");
                break;
            }
        }
    }
    assert!(count <= data.len() / 2 + 1);
    let _ = MAX_LINE_BYTES;
});
