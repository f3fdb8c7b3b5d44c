//! Decodes every chunk of a chunk pack on one thread, in process, and prints
//! the CPU time the decoding took (benchmark and cross-check tool for
//! `scripts/bench-codecs.sh`; `scripts/codec-decode-wimlib.c` is its
//! counterpart built on wimlib's decoders).
//!
//! Usage: codec_decode xpress|lzx|lzms PACK ROUNDS [OUT]
//!
//! PACK is a sequence of (u32 uncompressed size, u32 compressed size,
//! compressed bytes), as written by `scripts/lzms_chunks.py --pack`. The pack
//! is read into memory first; then every chunk is decoded ROUNDS times over
//! and the CPU time of those rounds alone (the thread's run time from
//! /proc/self/schedstat, in nanoseconds) is printed as
//! `cpu_seconds=S bytes=N`. With OUT, the decoded bytes of one round are
//! written there first (outside the timed rounds).

// A benchmark program reports on stdout; the library itself never prints.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::time::Instant;

use containerimage_provider::wim::codec::decompressor;

mod common;
use common::{chunks, decode};

/// User + system CPU time of this process, in seconds, from
/// /proc/self/schedstat (nanoseconds of run time; Linux).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [codec, pack_path, rounds, rest @ ..] = args.as_slice() else {
        return Err("usage: codec_decode xpress|lzx|lzms|lzms-read PACK ROUNDS [OUT]".to_owned());
    };
    let (codec, in_pieces) = common::codec(codec)?;
    let rounds: u32 = rounds.parse().map_err(|_| "bad ROUNDS".to_owned())?;
    let pack = std::fs::read(pack_path).map_err(|e| format!("{pack_path}: {e}"))?;
    let mut max = 0;
    let mut total = 0;
    let chunks = chunks(&pack)?;
    for &(size, _) in &chunks {
        max = max.max(size);
        total += size;
    }
    let mut decoder = decompressor(codec, max).map_err(|e| e.to_string())?;
    let mut buffer = vec![0u8; max];
    if let Some(path) = rest.first() {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| format!("{path}: {e}"))?,
        );
        for &(size, data) in &chunks {
            let output = &mut buffer[..size];
            decode(decoder.as_mut(), data, output, in_pieces)?;
            out.write_all(output).map_err(|e| e.to_string())?;
        }
        out.flush().map_err(|e| e.to_string())?;
    }
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    for _ in 0..rounds {
        for &(size, data) in &chunks {
            decode(decoder.as_mut(), data, &mut buffer[..size], in_pieces)?;
        }
    }
    println!(
        "cpu_seconds={:.6} wall_seconds={:.6} bytes={}",
        cpu_seconds() - cpu,
        wall.elapsed().as_secs_f64(),
        total * rounds as usize
    );
    Ok(())
}
