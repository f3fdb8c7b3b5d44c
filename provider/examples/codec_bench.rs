//! Decoder micro-benchmark for `scripts/bench-codecs.sh`: decodes every chunk
//! of a chunk file (made by `scripts/make-codec-fixtures.py` from a real WIM)
//! on one thread, several rounds, and prints the throughput in MB/s of
//! uncompressed output per CPU second and per wall second (best round),
//! without and with SHA-1 of each chunk (wimlib hashes every blob it reads).
//!
//! Usage: codec_bench xpress|lzx CHUNK_SIZE CHUNKS.bin [ROUNDS]

// A benchmark program reports on stdout; the library itself never prints.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Instant;

use containerimage_provider::wim::codec::{decompressor, Compression};
use sha1::{Digest, Sha1};

struct Chunk {
    size: usize,
    sha1: [u8; 20],
    data: Vec<u8>,
}

fn parse(mut file: &[u8]) -> Option<Vec<Chunk>> {
    let mut chunks = Vec::new();
    while !file.is_empty() {
        let (head, rest) = file.split_at_checked(28)?;
        let size = u32::from_le_bytes(head.get(0..4)?.try_into().ok()?) as usize;
        let packed = u32::from_le_bytes(head.get(4..8)?.try_into().ok()?) as usize;
        let (data, rest) = rest.split_at_checked(packed)?;
        chunks.push(Chunk {
            size,
            sha1: head.get(8..28)?.try_into().ok()?,
            data: data.to_vec(),
        });
        file = rest;
    }
    Some(chunks)
}

/// User + system CPU time of this process, from /proc/self/stat (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 12th and 13th of them, in clock ticks (100 per second).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, codec, chunk_size, path, rest @ ..] = args.as_slice() else {
        println!("usage: codec_bench xpress|lzx CHUNK_SIZE CHUNKS.bin [ROUNDS]");
        return ExitCode::FAILURE;
    };
    let codec = match codec.as_str() {
        "xpress" => Compression::Xpress,
        "lzx" => Compression::Lzx,
        _ => {
            println!("unknown codec {codec}");
            return ExitCode::FAILURE;
        }
    };
    let (Ok(chunk_size), Some(rounds)) = (
        chunk_size.parse::<usize>(),
        rest.first().map_or(Some(10), |r| r.parse::<u32>().ok()),
    ) else {
        println!("bad chunk size or rounds");
        return ExitCode::FAILURE;
    };
    let Some(chunks) = std::fs::read(path).ok().and_then(|f| parse(&f)) else {
        println!("cannot read chunk file {path}");
        return ExitCode::FAILURE;
    };
    let mut decoder = match decompressor(codec, chunk_size) {
        Ok(d) => d,
        Err(e) => {
            println!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let total: usize = chunks.iter().map(|c| c.size).sum();
    let packed: usize = chunks.iter().map(|c| c.data.len()).sum();
    let mut out = vec![0u8; chunk_size];

    // Check every chunk once, then time.
    for (i, chunk) in chunks.iter().enumerate() {
        let out = &mut out[..chunk.size];
        if let Err(e) = decoder.decompress(&chunk.data, out) {
            println!("chunk {i}: {e}");
            return ExitCode::FAILURE;
        }
        if <[u8; 20]>::from(Sha1::digest(&*out)) != chunk.sha1 {
            println!("chunk {i}: wrong bytes");
            return ExitCode::FAILURE;
        }
    }
    // Decode-only rounds, then decode + SHA-1 rounds; wall time is the best
    // round, CPU time (less disturbed by other load) the sum over rounds.
    let mut best = [f64::MAX; 2];
    let mut cpu = [0f64; 2];
    for (with_sha1, (best, cpu)) in best.iter_mut().zip(&mut cpu).enumerate() {
        let cpu_start = cpu_seconds();
        for _ in 0..rounds {
            let start = Instant::now();
            for chunk in &chunks {
                let out = &mut out[..chunk.size];
                if decoder.decompress(&chunk.data, out).is_err() {
                    return ExitCode::FAILURE;
                }
                if with_sha1 == 1 {
                    std::hint::black_box(Sha1::digest(&*out));
                }
            }
            *best = best.min(start.elapsed().as_secs_f64());
        }
        *cpu = cpu_seconds() - cpu_start;
    }
    let mb = |seconds: f64, times: u32| total as f64 * f64::from(times) / seconds / 1e6;
    println!(
        "{codec} chunk={chunk_size} chunks={} uncompressed={total} compressed={packed} \
         cpu_decode_MBps={:.0} cpu_decode_sha1_MBps={:.0} wall_decode_MBps={:.0} wall_decode_sha1_MBps={:.0}",
        chunks.len(),
        mb(cpu[0], rounds),
        mb(cpu[1], rounds),
        mb(best[0], 1),
        mb(best[1], 1),
    );
    ExitCode::SUCCESS
}
