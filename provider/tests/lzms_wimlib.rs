//! LZMS chunks made by wimlib at test time, too large to commit: solid
//! resources with 64 MiB and 4 MiB chunks holding about 12 MiB of x86 code,
//! text, integer tables and random data repeated megabytes apart.
//!
//! Needs `wimlib-imagex` (Debian/Ubuntu: `apt-get install wimtools`).

use std::path::Path;
use std::process::Command;

use containerimage_provider::wim::codec::{lzms::LzmsDecompressor, Decompressor};

fn require_wimlib() {
    let found = Command::new("wimlib-imagex").arg("--version").output();
    assert!(
        matches!(found, Ok(ref out) if out.status.success()),
        "wimlib-imagex is needed for this test: install it with `apt-get install wimtools`"
    );
}

/// About 12 MiB whose parts exercise every LZMS item kind.
fn test_data() -> Vec<u8> {
    let mut data = Vec::new();
    // x86-64 machine code.
    for tool in [
        "/usr/bin/wimlib-imagex",
        "/usr/bin/ls",
        "/usr/bin/cp",
        "/bin/bash",
    ] {
        if let Ok(code) = std::fs::read(tool) {
            data.extend_from_slice(&code[..code.len().min(1 << 20)]);
        }
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut random = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    let far_block = random(200_000);
    data.extend_from_slice(&far_block);
    // Text.
    let words = [
        "wim",
        "layer",
        "image",
        "servercore",
        "the",
        "of",
        "chunk",
        "solid",
    ];
    let mut i = 0usize;
    while data.len() < 7 << 20 {
        data.extend_from_slice(words[(i * 7 + i / 3) % words.len()].as_bytes());
        data.push(if i.is_multiple_of(11) { b'\n' } else { b' ' });
        i += 1;
    }
    // Integer tables (delta matches).
    for n in 0..500_000u32 {
        data.extend_from_slice(&(3 * n + 17).to_le_bytes());
    }
    for n in 0..200_000u32 {
        data.extend_from_slice(&(n as u16).wrapping_mul(5).to_le_bytes());
        data.extend_from_slice(&(60_000u16.wrapping_sub(n as u16)).to_le_bytes());
    }
    data.extend(random(1 << 20));
    // The random block again, megabytes after its first copy.
    data.extend_from_slice(&far_block);
    data.extend(random(300_000));
    data.extend_from_slice(&far_block[..100_000]);
    data
}

fn u32_at(buf: &[u8], at: usize) -> usize {
    u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

/// The chunks of the (only) solid resource of `wim`: (uncompressed size,
/// compressed bytes, stored raw).
fn solid_chunks(wim: &[u8]) -> Vec<(usize, Vec<u8>)> {
    // Header: blob table resource header at 0x30 (7-byte size, flags,
    // offset, uncompressed size).
    let table_size = (u64_at(wim, 0x30) & 0x00FF_FFFF_FFFF_FFFF) as usize;
    let table_at = u64_at(wim, 0x38) as usize;
    let table = &wim[table_at..table_at + table_size];
    let resource = table
        .chunks_exact(50)
        .find(|entry| entry[7] & 0x10 != 0 && u64_at(entry, 16) == 1 << 32)
        .expect("a solid resource entry in the blob table");
    let at = u64_at(resource, 8) as usize;
    // Solid resource header: u64 size, u32 chunk size, u32 codec, then one
    // u32 compressed size per chunk.
    let total = u64_at(wim, at) as usize;
    let chunk_size = u32_at(wim, at + 8);
    assert_eq!(u32_at(wim, at + 12), 3, "the solid resource is LZMS");
    let count = total.div_ceil(chunk_size);
    let mut next = at + 16 + 4 * count;
    (0..count)
        .map(|i| {
            let size = u32_at(wim, at + 16 + 4 * i);
            let chunk = wim[next..next + size].to_vec();
            next += size;
            (chunk_size.min(total - i * chunk_size), chunk)
        })
        .collect()
}

fn check_solid(dir: &Path, data: &[u8], chunk_size: Option<&str>) {
    let wim = dir.join(format!("solid-{}.wim", chunk_size.unwrap_or("default")));
    let mut capture = Command::new("wimlib-imagex");
    capture
        .arg("capture")
        .arg(dir.join("src"))
        .arg(&wim)
        .arg("--solid");
    if let Some(size) = chunk_size {
        capture.arg(format!("--solid-chunk-size={size}"));
    }
    let status = capture.output().expect("run wimlib-imagex");
    assert!(
        status.status.success(),
        "wimlib-imagex capture failed: {status:?}"
    );

    let wim = std::fs::read(&wim).expect("read the captured WIM");
    let chunks = solid_chunks(&wim);
    let largest = chunks.iter().map(|c| c.0).max().unwrap_or(0);
    let mut decompressor = LzmsDecompressor::new(largest).expect("chunk size is supported");
    let mut decoded = Vec::new();
    let mut compressed_chunks = 0;
    for (size, chunk) in &chunks {
        if chunk.len() == *size {
            decoded.extend_from_slice(chunk); // stored raw
            continue;
        }
        compressed_chunks += 1;
        let mut out = vec![0u8; *size];
        decompressor
            .decompress(chunk, &mut out)
            .unwrap_or_else(|e| {
                panic!(
                    "chunk {} of {size} bytes: {e}",
                    decoded.len() / size.max(&1)
                )
            });
        decoded.extend_from_slice(&out);
    }
    assert!(compressed_chunks > 0, "wimlib stored every chunk raw");
    assert!(
        decoded == data,
        "decoded solid resource differs from the original file"
    );
}

#[test]
fn decodes_large_solid_chunks_made_by_wimlib() {
    require_wimlib();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = test_data();
    assert!(data.len() > 11 << 20);
    std::fs::create_dir(dir.path().join("src")).expect("create src");
    std::fs::write(dir.path().join("src/data.bin"), &data).expect("write data");
    // One 12 MiB chunk (default 64 MiB solid chunks), then 4 MiB chunks.
    check_solid(dir.path(), &data, None);
    check_solid(dir.path(), &data, Some("4194304"));
}
