//! Decoding real chunks written by wimlib (see scripts/make-lzms-fixtures.sh)
//! and surviving damaged input.

use super::*;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lzms")
}

/// (file name, uncompressed size, SHA-256 of the original bytes, compressed bytes)
fn fixtures() -> Vec<(String, usize, String, Vec<u8>)> {
    let dir = fixture_dir();
    let manifest =
        std::fs::read_to_string(dir.join("chunks.txt")).expect("fixture manifest chunks.txt");
    manifest
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, size, sha256] = fields[..] else {
                panic!("bad manifest line {line:?}")
            };
            let data = std::fs::read(dir.join(name)).expect("fixture listed in chunks.txt");
            (
                name.to_owned(),
                size.parse().expect("size in chunks.txt"),
                sha256.to_owned(),
                data,
            )
        })
        .collect()
}

#[test]
fn decodes_wimlib_chunks_exactly() {
    let all = fixtures();
    assert!(
        all.len() >= 40,
        "expected the committed fixtures, found {}",
        all.len()
    );
    for prefix in [
        "chunk32k-",
        "chunk64k-",
        "chunk128k-",
        "chunk1024k-",
        "solid256k-",
    ] {
        assert!(
            all.iter().any(|f| f.0.starts_with(prefix)),
            "no {prefix} fixtures"
        );
    }
    // One decompressor for all sizes, as a reader would use it.
    let mut decompressor = LzmsDecompressor::new(1 << 20).expect("1 MiB chunks are supported");
    for (name, size, sha256, data) in &all {
        let mut out = vec![0xAA; *size];
        decompressor
            .decompress(data, &mut out)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            hex::encode(Sha256::digest(&out)),
            *sha256,
            "{name}: decoded bytes differ from the original"
        );
    }
}

#[test]
fn rejects_bad_sizes() {
    let mut d = LzmsDecompressor::new(1 << 20).expect("1 MiB chunks are supported");
    let mut out = [0u8; 16];
    assert!(matches!(
        d.decompress(&[0; 5], &mut out),
        Err(CodecError::Corrupt { .. })
    ));
    assert!(matches!(
        d.decompress(&[0; 2], &mut out),
        Err(CodecError::Corrupt { .. })
    ));
    assert!(matches!(
        LzmsDecompressor::new((1 << 30) + 1),
        Err(CodecError::UnsupportedChunkSize { .. })
    ));
}
