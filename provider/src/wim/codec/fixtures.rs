//! Test support: compressed chunks cut out of WIM files written by
//! wimlib-imagex (`scripts/make-codec-fixtures.sh`).

use sha1::{Digest, Sha1};

pub(crate) struct Chunk<'a> {
    pub(crate) size: usize,
    pub(crate) sha1: [u8; 20],
    pub(crate) data: &'a [u8],
}

/// Splits a fixture file into its records: u32 uncompressed size, u32
/// compressed size, SHA-1 of the uncompressed chunk, compressed bytes.
pub(crate) fn chunks(mut file: &[u8]) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    while !file.is_empty() {
        let (head, rest) = file.split_at(28);
        let size = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes")) as usize;
        let packed = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
        let (data, rest) = rest.split_at(packed);
        chunks.push(Chunk {
            size,
            sha1: head[8..28].try_into().expect("20 bytes"),
            data,
        });
        file = rest;
    }
    chunks
}

pub(crate) fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

/// Decodes every chunk of a fixture file with `decoder` and checks each
/// one's SHA-1; returns how many chunks there were.
pub(crate) fn decode_all(name: &str, file: &[u8], decoder: &mut dyn super::Decompressor) -> usize {
    let chunks = chunks(file);
    assert!(!chunks.is_empty(), "{name}: no chunks in the fixture");
    for (i, chunk) in chunks.iter().enumerate() {
        let mut out = vec![0u8; chunk.size];
        decoder
            .decompress(chunk.data, &mut out)
            .unwrap_or_else(|e| panic!("{name} chunk {i}: {e}"));
        assert_eq!(sha1(&out), chunk.sha1, "{name} chunk {i}: wrong bytes");
    }
    chunks.len()
}

/// Cuts the smallest chunk of a fixture file at every few bytes: each cut
/// must fail as corrupt data or still decode to the right bytes, and some
/// cut must fail.
pub(crate) fn check_truncations(file: &[u8], decoder: &mut dyn super::Decompressor) {
    let chunks = chunks(file);
    let chunk = chunks
        .iter()
        .min_by_key(|c| c.data.len())
        .expect("fixture has chunks");
    let step = (chunk.data.len() / 400).max(1);
    let mut failures = 0;
    for cut in (0..chunk.data.len()).step_by(step) {
        let mut out = vec![0u8; chunk.size];
        match decoder.decompress(&chunk.data[..cut], &mut out) {
            Ok(()) => assert_eq!(sha1(&out), chunk.sha1, "cut at {cut}"),
            Err(super::CodecError::Corrupt { .. }) => failures += 1,
            Err(e) => panic!("cut at {cut}: unexpected {e}"),
        }
    }
    assert!(failures > 0, "no truncation was detected");
}
