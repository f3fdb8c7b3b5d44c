//! What the decoder benchmark programs share: reading a chunk pack and
//! decoding one chunk with our decoder.

use containerimage_provider::wim::codec::{Compression, Decompressor};

/// The codec a program was asked for, and whether chunks are to be read
/// in pieces (`lzms-read`, as the apply reads solid chunks).
pub fn codec(name: &str) -> Result<(Compression, bool), String> {
    match name {
        "xpress" => Ok((Compression::Xpress, false)),
        "lzx" => Ok((Compression::Lzx, false)),
        "lzms" => Ok((Compression::Lzms, false)),
        "lzms-read" => Ok((Compression::Lzms, true)),
        _ => Err(format!("unknown codec {name}")),
    }
}

/// The chunks of a pack, a sequence of (u32 uncompressed size, u32
/// compressed size, compressed bytes) as `scripts/lzms_chunks.py --pack`
/// writes it: each chunk's uncompressed size and compressed bytes.
pub fn chunks(pack: &[u8]) -> Result<Vec<(usize, &[u8])>, String> {
    let mut rest = pack;
    let mut out = Vec::new();
    while let Some((head, tail)) = rest.split_first_chunk::<8>() {
        let size = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let packed = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let (chunk, tail) = tail
            .split_at_checked(packed)
            .ok_or("truncated pack".to_owned())?;
        out.push((size, chunk));
        rest = tail;
    }
    Ok(out)
}

/// Decodes one chunk whole or, with `in_pieces`, read piece by piece as
/// the apply reads a solid chunk (from memory here).
pub fn decode(
    decoder: &mut dyn Decompressor,
    data: &[u8],
    output: &mut [u8],
    in_pieces: bool,
) -> Result<(), String> {
    if !in_pieces {
        return decoder.decompress(data, output).map_err(|e| e.to_string());
    }
    let mut read = |at: usize, buf: &mut [u8]| {
        let piece = data
            .get(at..at + buf.len())
            .ok_or(std::io::ErrorKind::InvalidInput)?;
        buf.copy_from_slice(piece);
        Ok(())
    };
    match decoder.decompress_read(data.len(), &mut read, output) {
        Some(result) => result.map_err(|e| e.to_string()),
        None => Err("the codec cannot read a chunk in pieces".to_owned()),
    }
}
