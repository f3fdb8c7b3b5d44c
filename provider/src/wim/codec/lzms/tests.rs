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

/// A small deterministic generator for test inputs.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn assert_corrupt(result: Result<(), CodecError>, what: &str) {
    match result {
        Err(CodecError::Corrupt {
            codec: Compression::Lzms,
            ..
        }) => {}
        other => panic!("{what}: expected a corrupt-data error, got {other:?}"),
    }
}

#[test]
fn random_input_is_rejected_without_panicking() {
    let mut rng = Lcg(7);
    let mut d = LzmsDecompressor::new(1 << 20).expect("1 MiB chunks are supported");
    let mut rejected = 0;
    let trials = 300;
    for trial in 0..trials {
        let in_len = 4 + 2 * (rng.next() as usize % 3000);
        let out_len = 1 + rng.next() as usize % 70_000;
        let input = rng.bytes(in_len);
        let mut out = vec![0u8; out_len];
        match d.decompress(&input, &mut out) {
            Err(CodecError::Corrupt { .. }) => rejected += 1,
            Err(other) => panic!("trial {trial}: unexpected error {other}"),
            // Random bits can form a valid stream for a tiny output.
            Ok(()) => assert!(
                out_len < 64,
                "trial {trial}: {in_len} random bytes decoded to {out_len} bytes"
            ),
        }
    }
    assert!(
        rejected > trials * 9 / 10,
        "only {rejected} of {trials} random inputs rejected"
    );
}

#[test]
fn odd_and_short_inputs_are_rejected() {
    let chunks = fixtures();
    let (name, size, _, data) = &chunks[0];
    let mut d = LzmsDecompressor::new(1 << 20).expect("1 MiB chunks are supported");
    let mut out = vec![0u8; *size];
    assert_corrupt(
        d.decompress(&data[..data.len() - 1], &mut out),
        &format!("{name} minus one byte"),
    );
    assert_corrupt(d.decompress(&data[..3], &mut out), "three bytes");
    assert_corrupt(d.decompress(&[], &mut out), "no input");
}

#[test]
fn truncated_chunks_are_rejected() {
    // Without an end marker or checksum a cut chunk can occasionally decode
    // to something (the WIM layer's SHA-1 catches that); nearly all must fail.
    let mut d = LzmsDecompressor::new(1 << 20).expect("1 MiB chunks are supported");
    let (mut tried, mut rejected) = (0, 0);
    let mut decoded = Vec::new();
    for (name, size, _, data) in fixtures().iter().filter(|f| f.3.len() > 1000) {
        let mut out = vec![0u8; *size];
        for cut in [2, 4, 8, 16, 100, data.len() / 2, data.len() - 4] {
            let cut = cut & !1;
            for input in [&data[..data.len() - cut], &data[cut..]] {
                tried += 1;
                match d.decompress(input, &mut out) {
                    Err(CodecError::Corrupt { .. }) => rejected += 1,
                    Err(other) => panic!("{name} cut by {cut}: unexpected error {other}"),
                    Ok(()) => decoded.push(format!("{name} cut by {cut}")),
                }
            }
        }
    }
    assert!(
        rejected * 100 >= tried * 97,
        "only {rejected} of {tried} truncated chunks rejected; decoded: {decoded:?}"
    );
}

#[test]
fn damaged_chunks_never_panic_and_the_decoder_recovers() {
    let chunks = fixtures();
    let mut rng = Lcg(99);
    let mut d = LzmsDecompressor::new(1 << 20).expect("1 MiB chunks are supported");
    let (mut tried, mut noticed) = (0, 0);
    for (name, size, sha256, data) in chunks.iter().step_by(4) {
        let mut out = vec![0u8; *size];
        for _ in 0..20 {
            let mut damaged = data.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = rng.next() as usize % damaged.len();
                damaged[at] ^= 1 << (rng.next() % 8);
            }
            // Either outcome is allowed (a flipped padding bit changes
            // nothing); it must not panic.
            tried += 1;
            match d.decompress(&damaged, &mut out) {
                Err(_) => noticed += 1,
                Ok(()) if hex::encode(Sha256::digest(&out)) != *sha256 => noticed += 1,
                Ok(()) => {}
            }
        }
        // The same decompressor still decodes the intact chunk.
        d.decompress(data, &mut out)
            .unwrap_or_else(|e| panic!("{name} after damaged runs: {e}"));
        assert_eq!(
            hex::encode(Sha256::digest(&out)),
            *sha256,
            "{name} after damaged runs"
        );
    }
    assert!(
        noticed * 10 >= tried * 9,
        "only {noticed} of {tried} damaged chunks changed the result"
    );
}

#[test]
fn match_copies_agree_with_a_byte_by_byte_copy() {
    for offset in 1..40 {
        for length in (1..70).chain([100, 200, 300]) {
            for slack in [0, 3, 8, 23, 40] {
                let pos = 40;
                let size = pos + length + slack;
                let mut fast: Vec<u8> = (0..size).map(|b| (b as u8).wrapping_mul(37)).collect();
                let mut slow = fast.clone();
                copy_match(&mut fast, pos, offset, length);
                for i in pos..pos + length {
                    slow[i] = slow[i - offset];
                }
                assert_eq!(
                    fast[..pos + length],
                    slow[..pos + length],
                    "offset {offset} length {length} slack {slack}"
                );
            }
        }
    }
}

/// Decodes `input` read in pieces through windows of `window` bytes,
/// checking that every read lies within the chunk; returns the result as
/// a codec result, and how many reads there were.
fn decode_in_pieces(
    d: &mut LzmsDecompressor,
    input: &[u8],
    out: &mut [u8],
    window: usize,
) -> (Result<(), CodecError>, usize) {
    let mut reads = 0;
    let mut read = |at: usize, buf: &mut [u8]| {
        reads += 1;
        let piece = at
            .checked_add(buf.len())
            .and_then(|end| input.get(at..end))
            .unwrap_or_else(|| panic!("a read of {} bytes at {at} past the chunk", buf.len()));
        buf.copy_from_slice(piece);
        Ok(())
    };
    let result = match d.decompress_in_pieces(input.len(), &mut read, out, window) {
        Ok(()) => Ok(()),
        Err(ReadError::Codec(e)) => Err(e),
        Err(ReadError::Io(e)) => panic!("no read failed, yet: {e}"),
    };
    (result, reads)
}

/// A chunk read in pieces, through windows small enough to move hundreds
/// of times, decodes exactly as when read whole: wimlib's chunks, and the
/// same damaged (a byte changed in the middle, the end cut off) give the
/// same bytes, or both fail (not always with the same error: the streams
/// are checked after every part, and the parts differ).
#[test]
fn a_chunk_read_in_pieces_decodes_as_when_read_whole() {
    let mut whole = LzmsDecompressor::new(1 << 20).expect("1 MiB chunks are supported");
    let mut pieces = LzmsDecompressor::new(1 << 20).expect("1 MiB chunks are supported");
    let mut most_reads = 0;
    for (name, size, _, data) in fixtures() {
        let mut changed = data.clone();
        let middle = changed.len() / 2;
        changed[middle] ^= 0x21;
        let cut = &data[..(data.len() / 2) & !1];
        for (what, input) in [("whole", &data[..]), ("changed", &changed), ("cut", cut)] {
            let mut expected = vec![0u8; size];
            let want = whole.decompress(input, &mut expected);
            for window in [256, 1000, 4096, 1 << 16] {
                let mut out = vec![0x55u8; size];
                let (got, reads) = decode_in_pieces(&mut pieces, input, &mut out, window);
                assert_eq!(
                    got.is_ok(),
                    want.is_ok(),
                    "{name} {what}, {window}-byte windows: {got:?} against {want:?}"
                );
                if want.is_ok() {
                    assert!(out == expected, "{name} {what}, {window}-byte windows");
                }
                most_reads = most_reads.max(reads);
            }
        }
    }
    assert!(
        most_reads > 500,
        "the windows moved at most {most_reads} times"
    );
}

/// A read that fails stops the decoding with its error.
#[test]
fn a_failed_read_is_passed_on() {
    let (_, size, _, data) = fixtures()
        .into_iter()
        .max_by_key(|f| f.3.len())
        .expect("fixtures");
    let mut d = LzmsDecompressor::new(1 << 20).expect("1 MiB chunks are supported");
    for fail_at in [0, 1, 5, 40] {
        let mut reads = 0;
        let mut read = |at: usize, buf: &mut [u8]| {
            reads += 1;
            if reads > fail_at {
                return Err(std::io::Error::other("the disk went away"));
            }
            buf.copy_from_slice(&data[at..at + buf.len()]);
            Ok(())
        };
        let mut out = vec![0u8; size];
        match d.decompress_in_pieces(data.len(), &mut read, &mut out, 256) {
            Err(ReadError::Io(e)) => assert_eq!(e.to_string(), "the disk went away"),
            other => panic!("read {fail_at} failed, yet: {other:?}"),
        }
    }
    // The decompressor is still good for the next chunk.
    let mut out = vec![0u8; size];
    let (result, _) = decode_in_pieces(&mut d, &data, &mut out, 256);
    assert_eq!(result, Ok(()));
}

/// A few bytes claiming a large chunk fail within a part of where the two
/// streams cross, read whole or in pieces, rather than being decoded to
/// the end (a chunk of zeros as wimlib writes it, 16 MiB from 14 bytes, is
/// applied in tests/it/wim.rs).
#[test]
fn damaged_bytes_claiming_a_large_chunk_stop_early() {
    const CLAIM: usize = 16 << 20;
    let mut d = LzmsDecompressor::new(CLAIM).expect("16 MiB chunks are supported");
    let mut rng = Lcg(11);
    // Zeros decode as literals and nothing else, before and past their
    // end; random bytes soon give a match that fails anyway.
    for (len, zeros) in [
        (4, true),
        (64, true),
        (5000, true),
        (64, false),
        (5000, false),
    ] {
        let input = match zeros {
            true => vec![0; len],
            false => rng.bytes(len),
        };
        let mut whole = vec![0xA5u8; CLAIM];
        assert_corrupt(d.decompress(&input, &mut whole), "read whole");
        let mut pieces = vec![0xA5u8; CLAIM];
        let (result, _) = decode_in_pieces(&mut d, &input, &mut pieces, 1024);
        assert_corrupt(result, "read in pieces");
        for (how, out) in [("whole", &whole), ("in pieces", &pieces)] {
            let written = out.iter().rposition(|&b| b != 0xA5).map_or(0, |i| i + 1);
            assert!(
                written <= 2 * PART_OUTPUT,
                "{len} bytes read {how}: {written} bytes written before failing"
            );
        }
    }
}
