//! Layer compression on all cores, with bounded memory and the same bytes
//! every time.
//!
//! Gzip: the stream is cut into 1 MiB pieces, each compressed whole by
//! libdeflate on its own core into a gzip member of its own (no file name,
//! time 0, operating system "unknown"); the members
//! are written in order. Concatenated members are one valid gzip stream, as
//! `gzip -d`, Go's reader (Docker, containerd) and every other reader take
//! it, and the output depends only on the input. Zstd: libzstd's own worker
//! threads. Either way at most a few pieces per core are in memory.

use std::io::{self, Write};

use super::spec::Compression;

/// Bytes per gzip member.
const PIECE: usize = 1 << 20;
/// Compression level, as pigz's and gzip's default.
pub const GZIP_LEVEL: u32 = 6;
/// The level a push compresses at: on the benchmark tree its layer is 5%
/// larger than at level 6 for 55% less CPU time (docs/REGISTRY.md).
pub const GZIP_LEVEL_PUSH: u32 = 1;
const ZSTD_LEVEL: i32 = 3;

/// A writer that compresses what it is given into `out`.
pub enum Compressor<W: Write> {
    None(W),
    Gzip(ParallelGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    pub fn new(compression: Compression, out: W) -> io::Result<Compressor<W>> {
        Compressor::with_gzip_level(compression, GZIP_LEVEL, out)
    }

    /// As [`Compressor::new`], gzip at `gzip_level` (1 fastest, 9 smallest).
    pub fn with_gzip_level(
        compression: Compression,
        gzip_level: u32,
        out: W,
    ) -> io::Result<Compressor<W>> {
        Ok(match compression {
            Compression::None => Compressor::None(out),
            Compression::Gzip => Compressor::Gzip(ParallelGzip::with_level(out, gzip_level)),
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
                let workers = u32::try_from(rayon::current_num_threads()).unwrap_or(1);
                if workers > 1 {
                    e.multithread(workers)?;
                }
                Compressor::Zstd(e)
            }
        })
    }

    /// Writes what is pending and the stream's end; returns the output.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::None(mut w) => {
                w.flush()?;
                Ok(w)
            }
            Compressor::Gzip(g) => g.finish(),
            Compressor::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(g) => g.write(buf),
            Compressor::Zstd(z) => z.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // Compressed streams are flushed only at the end: a flush would
        // change the bytes written.
        match self {
            Compressor::None(w) => w.flush(),
            _ => Ok(()),
        }
    }
}

/// Gzip on all cores: a member per 1 MiB piece (see the module
/// documentation). Pieces are compressed by the rayon pool while the caller
/// goes on producing the next ones; members are written in order, and at
/// most two pieces per core are in flight.
pub struct ParallelGzip<W: Write> {
    out: W,
    current: Vec<u8>,
    next_seq: u64,
    next_to_write: u64,
    done: std::collections::BTreeMap<u64, io::Result<Vec<u8>>>,
    level: u32,
    sender: std::sync::mpsc::Sender<(u64, io::Result<Vec<u8>>)>,
    receiver: std::sync::mpsc::Receiver<(u64, io::Result<Vec<u8>>)>,
    limit: u64,
}

fn gzip_member(piece: &[u8], level: u32) -> io::Result<Vec<u8>> {
    // One compressor per worker thread and level: libdeflate allocates its
    // tables once, and a whole piece is compressed in one call.
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<(u32, libdeflater::Compressor)>> =
            const { std::cell::RefCell::new(None) };
    }
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            let lvl = libdeflater::CompressionLvl::new(level as i32)
                .map_err(|_| io::Error::other(format!("gzip level {level} is not supported")))?;
            *slot = Some((level, libdeflater::Compressor::new(lvl)));
        }
        let Some((_, compressor)) = slot.as_mut() else {
            return Err(io::Error::other("no gzip compressor"));
        };
        let mut out = vec![0; compressor.gzip_compress_bound(piece.len())];
        let n = compressor
            .gzip_compress(piece, &mut out)
            .map_err(|e| io::Error::other(format!("gzip: {e}")))?;
        out.truncate(n);
        Ok(out)
    })
}

impl<W: Write> ParallelGzip<W> {
    pub fn new(out: W) -> Self {
        ParallelGzip::with_level(out, GZIP_LEVEL)
    }

    pub fn with_level(out: W, level: u32) -> Self {
        let (sender, receiver) = std::sync::mpsc::channel();
        ParallelGzip {
            out,
            level: level.clamp(1, 9),
            current: Vec::with_capacity(PIECE),
            next_seq: 0,
            next_to_write: 0,
            done: std::collections::BTreeMap::new(),
            sender,
            receiver,
            limit: (rayon::current_num_threads().clamp(1, 16) * 2) as u64,
        }
    }

    fn send(&mut self, piece: Vec<u8>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let sender = self.sender.clone();
        let level = self.level;
        rayon::spawn(move || {
            // The receiver outlives every job (finish waits for all).
            let _ = sender.send((seq, gzip_member(&piece, level)));
        });
    }

    /// Writes the members that are ready, in order; with `wait_until`,
    /// first waits until fewer than that many pieces are in flight.
    fn drain(&mut self, wait_until: u64) -> io::Result<()> {
        loop {
            while let Some(result) = self.done.remove(&self.next_to_write) {
                self.out.write_all(&result?)?;
                self.next_to_write += 1;
            }
            let in_flight = self.next_seq - self.next_to_write;
            if in_flight < wait_until.max(1) {
                // Pick up what finished without waiting.
                match self.receiver.try_recv() {
                    Ok((seq, r)) => {
                        self.done.insert(seq, r);
                        continue;
                    }
                    Err(_) => return Ok(()),
                }
            }
            match self.receiver.recv() {
                Ok((seq, r)) => {
                    self.done.insert(seq, r);
                }
                Err(_) => return Err(io::Error::other("a compression job was lost")),
            }
        }
    }

    pub fn finish(mut self) -> io::Result<W> {
        if !self.current.is_empty() || self.next_seq == 0 {
            // An empty input is still one (empty) member: a valid gzip file.
            let last = std::mem::take(&mut self.current);
            self.send(last);
        }
        // Wait for every piece: nothing may be in flight.
        while self.next_to_write < self.next_seq {
            self.drain(1)?;
            if self.next_to_write < self.next_seq {
                match self.receiver.recv() {
                    Ok((seq, r)) => {
                        self.done.insert(seq, r);
                    }
                    Err(_) => return Err(io::Error::other("a compression job was lost")),
                }
            }
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = PIECE - self.current.len();
        let n = room.min(buf.len());
        self.current.extend_from_slice(&buf[..n]);
        if self.current.len() == PIECE {
            let full = std::mem::replace(&mut self.current, Vec::with_capacity(PIECE));
            self.send(full);
            let limit = self.limit;
            self.drain(limit)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Passes bytes on (written to it, or read through it) while computing
/// their SHA-256 and counting them.
pub struct Hashing<W> {
    inner: W,
    hasher: sha2::Sha256,
    count: u64,
}

impl<W> Hashing<W> {
    pub fn new(inner: W) -> Self {
        use sha2::Digest;
        Hashing {
            inner,
            hasher: sha2::Sha256::new(),
            count: 0,
        }
    }

    /// The output, `sha256:<hex>` of what passed, and how many bytes.
    pub fn finish(self) -> (W, String, u64) {
        use sha2::Digest;
        (
            self.inner,
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        )
    }
}

impl<R: io::Read> io::Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        let mut x: u32 = 7;
        (0..len)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                if i % 3 == 0 {
                    (x >> 24) as u8
                } else {
                    b'a' + (i % 7) as u8
                }
            })
            .collect()
    }

    fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
        let mut w = Compressor::new(c, Vec::new()).expect("compressor");
        for part in data.chunks(77_777) {
            w.write_all(part).expect("write");
        }
        w.finish().expect("finish")
    }

    #[test]
    fn gzip_members_read_back_whole_and_are_deterministic() {
        for len in [0, 1, PIECE - 1, PIECE, 5 * PIECE + 123] {
            let data = sample(len);
            let gz = compress(Compression::Gzip, &data);
            assert_eq!(
                gz,
                compress(Compression::Gzip, &data),
                "same input, same bytes"
            );
            let mut back = Vec::new();
            flate2::read::MultiGzDecoder::new(&gz[..])
                .read_to_end(&mut back)
                .expect("gunzip");
            assert_eq!(back, data, "{len} bytes");
        }
    }

    #[test]
    fn gzip_reads_back_with_the_gzip_tool() {
        let data = sample(3 * PIECE + 5);
        let gz = compress(Compression::Gzip, &data);
        let mut child = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gzip runs");
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || stdin.write_all(&gz));
        let out = child.wait_with_output().expect("gzip output");
        writer.join().expect("join").expect("feed gzip");
        assert!(out.status.success());
        assert_eq!(out.stdout, data);
    }

    #[test]
    fn zstd_and_none_read_back() {
        let data = sample(2 * PIECE + 9);
        let z = compress(Compression::Zstd, &data);
        assert_eq!(zstd::decode_all(&z[..]).expect("unzstd"), data);
        assert_eq!(compress(Compression::None, &data), data);
        let mut h = Hashing::new(Vec::new());
        h.write_all(b"abc").expect("write");
        let (_, digest, n) = h.finish();
        assert_eq!(n, 3);
        assert_eq!(
            digest,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
