//! Decodes every chunk of an LZMS chunk pack on one thread (benchmark and
//! cross-check tool; see scripts/bench-lzms.sh).
//!
//! Usage: lzms_decode PACK [OUT]
//!
//! PACK is a sequence of (u32 uncompressed size, u32 compressed size,
//! compressed bytes), as written by `scripts/lzms_chunks.py --pack`. With
//! OUT, the decoded bytes are written there.

use std::io::Write;

use containerimage_provider::wim::codec::{lzms::LzmsDecompressor, Decompressor};

fn chunks(pack: &[u8]) -> impl Iterator<Item = Result<(usize, &[u8]), String>> {
    let mut rest = pack;
    std::iter::from_fn(move || {
        let (head, tail) = rest.split_first_chunk::<8>()?;
        let usize = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let csize = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let Some((chunk, tail)) = tail.split_at_checked(csize) else {
            rest = &[];
            return Some(Err("truncated pack".to_owned()));
        };
        rest = tail;
        Some(Ok((usize, chunk)))
    })
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(pack_path) = args.first() else {
        return Err("usage: lzms_decode PACK [OUT]".to_owned());
    };
    let pack = std::fs::read(pack_path).map_err(|e| format!("{pack_path}: {e}"))?;
    let mut max = 0;
    for chunk in chunks(&pack) {
        max = max.max(chunk?.0);
    }
    let mut out = match args.get(1) {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| format!("{path}: {e}"))?,
        )),
        None => None,
    };
    let mut decompressor = LzmsDecompressor::new(max).map_err(|e| e.to_string())?;
    let mut buffer = vec![0u8; max];
    for chunk in chunks(&pack) {
        let (size, data) = chunk?;
        let output = &mut buffer[..size];
        decompressor
            .decompress(data, output)
            .map_err(|e| e.to_string())?;
        if let Some(out) = &mut out {
            out.write_all(output).map_err(|e| e.to_string())?;
        }
    }
    if let Some(mut out) = out {
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}
