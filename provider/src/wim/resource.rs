//! Resources: where a blob's bytes live and how to decode them.
//!
//! A resource is stored uncompressed, as independent compressed chunks behind
//! a chunk table (non-solid), or inside a solid resource with its own header
//! and chunk sizes. Every reader here turns a resource into a list of
//! [`ChunkRef`]s: independent units that can be read and decoded on any
//! thread, in any order. Every offset and size is checked against the file
//! before anything is allocated from it.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::codec::{self, CodecError, Compression, Decompressor, ReadError};
use super::format::{self, resource_flags, SolidResourceHeader};

/// Largest chunk accepted in any resource (LZMS allows up to 1 GiB).
pub const MAX_CHUNK_SIZE: u32 = 1 << 30;

/// Largest chunk a codec allows, as wimlib and Microsoft's tools write
/// them (XPRESS 64 KiB, LZX 2 MiB, LZMS 1 GiB): a larger one is damage, and
/// refusing it keeps a chunk's buffer from being sized by a hostile file.
pub fn max_chunk_size(codec: Compression) -> u32 {
    match codec {
        Compression::Xpress => 1 << 16,
        Compression::Lzx => 1 << 21,
        Compression::Lzms | Compression::None => MAX_CHUNK_SIZE,
    }
}
/// Chunk size used to cut uncompressed resources into independent pieces.
const PLAIN_PIECE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("read error")]
    Io(#[source] io::Error),
    #[error("{0}")]
    Corrupt(String),
    #[error("chunk at offset {offset} does not decompress")]
    Codec {
        offset: u64,
        #[source]
        source: CodecError,
    },
}

fn corrupt(msg: impl Into<String>) -> ResourceError {
    ResourceError::Corrupt(msg.into())
}

/// The open file, with what is needed to read resources from it.
pub struct Source {
    file: File,
    len: u64,
    /// Codec of non-solid compressed resources.
    pub codec: Compression,
    /// Chunk size of non-solid compressed resources.
    pub chunk_size: u32,
    /// Bytes of chunks read so far (decoded or stored raw), to check that
    /// a pass reads each chunk once.
    chunk_bytes_read: AtomicU64,
}

/// A non-solid resource (or a solid resource's own extent in the file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceSpec {
    pub offset: u64,
    pub stored_size: u64,
    pub size: u64,
    pub flags: u8,
}

impl ResourceSpec {
    pub fn from_header(h: &format::ResourceHeader) -> ResourceSpec {
        ResourceSpec {
            offset: h.offset,
            stored_size: h.size_in_wim(),
            size: h.uncompressed_size,
            flags: h.flags(),
        }
    }

    pub fn compressed(&self) -> bool {
        self.flags & resource_flags::COMPRESSED != 0
    }
}

/// One independently decodable piece of a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    /// Offset of the stored bytes in the file.
    pub offset: u64,
    /// Stored bytes.
    pub stored: u32,
    /// Bytes it decodes to.
    pub size: u32,
    pub codec: Compression,
    /// The resource's nominal chunk size (the codec's window).
    pub window: u32,
}

/// A resource's chunks, in order; their sizes add up to the resource's size.
#[derive(Clone, Debug, Default)]
pub struct ChunkPlan {
    pub chunks: Vec<ChunkRef>,
    /// Uncompressed size (the sum of the chunk sizes).
    pub size: u64,
    /// Nominal chunk size (every chunk but the last has this size).
    pub chunk_size: u64,
}

impl ChunkPlan {
    /// The chunks covering bytes `[start, end)` and the offset of `start`
    /// within the first of them.
    pub fn covering(&self, start: u64, end: u64) -> (&[ChunkRef], u64) {
        if start >= end || self.chunk_size == 0 {
            return (&[], 0);
        }
        let first = (start / self.chunk_size) as usize;
        let last = end.div_ceil(self.chunk_size) as usize;
        let first = first.min(self.chunks.len());
        let last = last.min(self.chunks.len());
        (
            self.chunks.get(first..last).unwrap_or(&[]),
            start - first as u64 * self.chunk_size,
        )
    }
}

/// Maps the codec number of a solid resource header.
fn solid_codec(n: u32) -> Option<Compression> {
    match n {
        0 => Some(Compression::None),
        1 => Some(Compression::Xpress),
        2 => Some(Compression::Lzx),
        3 => Some(Compression::Lzms),
        _ => None,
    }
}

impl Source {
    pub fn new(file: File, codec: Compression, chunk_size: u32) -> io::Result<Source> {
        let len = file.metadata()?.len();
        Ok(Source {
            file,
            len,
            codec,
            chunk_size,
            chunk_bytes_read: AtomicU64::new(0),
        })
    }

    /// Bytes of chunks read so far by [`Self::decode_to`].
    pub fn chunk_bytes_read(&self) -> u64 {
        self.chunk_bytes_read.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads exactly `buf.len()` bytes at `offset`.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ResourceError> {
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| corrupt("offset overflows"))?;
        if end > self.len {
            return Err(corrupt(format!(
                "data at offset {offset} (+{}) lies past the end of the file ({} bytes)",
                buf.len(),
                self.len
            )));
        }
        read_exact_at(&self.file, buf, offset).map_err(ResourceError::Io)
    }

    /// Reads `len` bytes at `offset` into a new buffer, `len` checked against
    /// the file size first.
    pub fn read_vec(&self, offset: u64, len: u64) -> Result<Vec<u8>, ResourceError> {
        self.check_extent(offset, len)?;
        let mut buf = vec![0u8; len as usize];
        self.read_at(offset, &mut buf)?;
        Ok(buf)
    }

    fn check_extent(&self, offset: u64, len: u64) -> Result<(), ResourceError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(corrupt(format!(
                "a resource at offset {offset} of {len} bytes lies past the end of the file ({} bytes)",
                self.len
            ))),
        }
    }

    /// The chunks of a non-solid resource.
    pub fn plan(&self, spec: &ResourceSpec) -> Result<ChunkPlan, ResourceError> {
        self.check_extent(spec.offset, spec.stored_size)?;
        if spec.size == 0 {
            return Ok(ChunkPlan::default());
        }
        if !spec.compressed() {
            if spec.stored_size != spec.size {
                return Err(corrupt(format!(
                    "an uncompressed resource at offset {} stores {} bytes but declares {}",
                    spec.offset, spec.stored_size, spec.size
                )));
            }
            return Ok(plain_plan(spec.offset, spec.size));
        }
        if self.codec == Compression::None || self.chunk_size == 0 {
            return Err(corrupt(format!(
                "the resource at offset {} is compressed but the file has no compression",
                spec.offset
            )));
        }
        let chunk_size = u64::from(self.chunk_size);
        let n = spec.size.div_ceil(chunk_size);
        let width: u64 = if spec.size > u64::from(u32::MAX) {
            8
        } else {
            4
        };
        let table_len = (n - 1)
            .checked_mul(width)
            .filter(|&t| t <= spec.stored_size)
            .ok_or_else(|| {
                corrupt(format!(
                    "the chunk table of the resource at offset {} does not fit its {} stored bytes",
                    spec.offset, spec.stored_size
                ))
            })?;
        let table = self.read_vec(spec.offset, table_len)?;
        let data_start = spec.offset + table_len;
        let data_len = spec.stored_size - table_len;
        let mut starts = Vec::with_capacity(n as usize);
        starts.push(0u64);
        for entry in table.chunks_exact(width as usize) {
            let v = if width == 8 {
                u64::from_le_bytes(entry.try_into().unwrap_or([0; 8]))
            } else {
                u64::from(u32::from_le_bytes(entry.try_into().unwrap_or([0; 4])))
            };
            starts.push(v);
        }
        let mut chunks = Vec::with_capacity(n as usize);
        for i in 0..n as usize {
            let start = starts.get(i).copied().unwrap_or(0);
            let end = starts.get(i + 1).copied().unwrap_or(data_len);
            let size = if i as u64 == n - 1 {
                spec.size - (n - 1) * chunk_size
            } else {
                chunk_size
            };
            if end <= start || end > data_len || end - start > size {
                return Err(corrupt(format!(
                    "chunk {i} of the resource at offset {} has a bad extent ({start}..{end} of {data_len})",
                    spec.offset
                )));
            }
            chunks.push(ChunkRef {
                offset: data_start + start,
                stored: (end - start) as u32,
                size: size as u32,
                codec: self.codec,
                window: self.chunk_size,
            });
        }
        Ok(ChunkPlan {
            chunks,
            size: spec.size,
            chunk_size,
        })
    }

    /// The chunks of one solid resource (its header is read and checked).
    pub fn plan_solid(&self, spec: &ResourceSpec) -> Result<ChunkPlan, ResourceError> {
        self.check_extent(spec.offset, spec.stored_size)?;
        let at = spec.offset;
        if spec.stored_size < SolidResourceHeader::SIZE as u64 {
            return Err(corrupt(format!(
                "the solid resource at offset {at} is too small for its header"
            )));
        }
        let head = self.read_vec(at, SolidResourceHeader::SIZE as u64)?;
        let header: SolidResourceHeader = format::parse(&head)
            .ok_or_else(|| corrupt(format!("bad solid resource header at offset {at}")))?;
        let codec = solid_codec(header.codec).ok_or_else(|| {
            corrupt(format!(
                "the solid resource at offset {at} uses unknown codec {}",
                header.codec
            ))
        })?;
        if header.chunk_size == 0 || header.chunk_size > max_chunk_size(codec) {
            return Err(corrupt(format!(
                "the solid resource at offset {at} has a bad chunk size {} (at most {} for {codec})",
                header.chunk_size,
                max_chunk_size(codec)
            )));
        }
        let size = header.uncompressed_size;
        let chunk_size = u64::from(header.chunk_size);
        let n = size.div_ceil(chunk_size);
        let room = spec.stored_size - SolidResourceHeader::SIZE as u64;
        let table_len = n.checked_mul(4).filter(|&t| t <= room).ok_or_else(|| {
            corrupt(format!(
                "the chunk sizes of the solid resource at offset {at} do not fit it"
            ))
        })?;
        let table = self.read_vec(at + SolidResourceHeader::SIZE as u64, table_len)?;
        let mut pos = at + SolidResourceHeader::SIZE as u64 + table_len;
        let end = at + spec.stored_size;
        let mut chunks = Vec::with_capacity(n as usize);
        for (i, entry) in table.chunks_exact(4).enumerate() {
            let stored = u32::from_le_bytes(entry.try_into().unwrap_or([0; 4]));
            let csize = if i as u64 == n - 1 {
                size - (n - 1) * chunk_size
            } else {
                chunk_size
            };
            if stored == 0 || u64::from(stored) > csize || pos + u64::from(stored) > end {
                return Err(corrupt(format!(
                    "chunk {i} of the solid resource at offset {at} has a bad stored size {stored}"
                )));
            }
            chunks.push(ChunkRef {
                offset: pos,
                stored,
                size: csize as u32,
                codec,
                window: header.chunk_size,
            });
            pos += u64::from(stored);
        }
        Ok(ChunkPlan {
            chunks,
            size,
            chunk_size,
        })
    }

    /// Refuses a chunk whose sizes no codec could produce, before anything
    /// is allocated for it.
    fn check_chunk(&self, chunk: &ChunkRef) -> Result<(), ResourceError> {
        self.check_extent(chunk.offset, u64::from(chunk.stored))?;
        let stored_as_is = chunk.stored == chunk.size || chunk.codec == Compression::None;
        if stored_as_is && chunk.stored != chunk.size {
            return Err(corrupt(format!(
                "uncompressed chunk at offset {} has the wrong size",
                chunk.offset
            )));
        }
        let limit = chunk.codec.max_expansion();
        if limit.is_some_and(|limit| u64::from(chunk.size) > u64::from(chunk.stored) * limit) {
            return Err(corrupt(format!(
                "the chunk at offset {} claims {} bytes from {} stored",
                chunk.offset, chunk.size, chunk.stored
            )));
        }
        Ok(())
    }

    /// Reads and decodes one chunk (already checked) into `out`, exactly
    /// its size, reading its compressed bytes into `input`.
    fn decode_chunk_into(
        &self,
        chunk: &ChunkRef,
        out: &mut [u8],
        dec: &mut Decoders,
        input: Input<'_>,
    ) -> Result<(), ResourceError> {
        self.chunk_bytes_read
            .fetch_add(u64::from(chunk.size), Ordering::Relaxed);
        if chunk.stored == chunk.size {
            return self.read_at(chunk.offset, out);
        }
        let stored = chunk.stored as usize;
        let offset = chunk.offset;
        if let Input::Kept(_) = input {
            // A solid chunk: read in pieces where the codec can, rather
            // than whole into memory of its own.
            let codec = |source| ResourceError::Codec { offset, source };
            let decoder = dec.get(chunk.codec, chunk.window as usize).map_err(codec)?;
            let mut read = |at: usize, buf: &mut [u8]| match at.checked_add(buf.len()) {
                Some(end) if end <= stored => read_exact_at(&self.file, buf, offset + at as u64),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a read past the end of the chunk",
                )),
            };
            match decoder.decompress_read(stored, &mut read, out) {
                Some(Ok(())) => return Ok(()),
                Some(Err(ReadError::Codec(source))) => return Err(codec(source)),
                Some(Err(ReadError::Io(e))) => return Err(ResourceError::Io(e)),
                None => {}
            }
        }
        let mut mapped;
        let input: &mut [u8] = match input {
            Input::Kept(buffer) => buffer.prepare(stored),
            Input::Thread(raw) => match (stored > KEEP_RAW).then(|| large_buffer(stored)) {
                // A solid chunk's compressed bytes, in a mapping of their
                // own (see `large_buffer`), unmapped once decoded.
                Some(Some(map)) => {
                    mapped = map;
                    &mut mapped
                }
                _ => {
                    raw.resize(stored, 0);
                    raw
                }
            },
        };
        self.read_at(offset, input)?;
        dec.get(chunk.codec, chunk.window as usize)
            .and_then(|d| d.decompress(input, out))
            .map_err(|source| ResourceError::Codec { offset, source })
    }

    /// Decodes one chunk (checked by [`Self::chunk_ends`]) on this thread
    /// into `out`, exactly its size, with this thread's decompressors. Its
    /// compressed bytes are read into this thread's buffer or, too large
    /// for the thread to keep (a solid chunk), in pieces where the codec
    /// can (LZMS: 1 MiB from each end at a time, no page made for the
    /// rest), else into `raw`, which the caller keeps for its next chunk.
    pub(crate) fn decode_one(
        &self,
        chunk: &ChunkRef,
        out: &mut [u8],
        raw: &mut Buffer,
    ) -> Result<(), ResourceError> {
        let decode = |scratch: &mut Scratch| {
            let input = match chunk.stored as usize > KEEP_RAW {
                true => Input::Kept(raw),
                false => Input::Thread(&mut scratch.raw),
            };
            self.decode_chunk_into(chunk, out, &mut scratch.dec, input)
        };
        with_scratch(decode)
    }

    /// Readies this thread to decode `batch` with [`Self::decode_one`]
    /// (one chunk) or [`Self::decode_to`]: maps `out` and `raw` as large
    /// as it needs them, without making their pages (see
    /// [`Buffer::reserve`]), and makes this thread's decompressor for a
    /// single chunk. A damaged batch is left for the decoding to report.
    pub(crate) fn reserve(&self, batch: &[ChunkRef], out: &mut Buffer, raw: &mut Buffer) {
        let Ok(ends) = self.chunk_ends(batch) else {
            return;
        };
        out.reserve(ends.last().copied().unwrap_or(0));
        if let [one] = batch {
            if one.stored != one.size {
                // LZMS reads such a chunk in pieces.
                if one.stored as usize > KEEP_RAW && one.codec != Compression::Lzms {
                    raw.reserve(one.stored as usize);
                }
                with_scratch(|scratch| {
                    // A failure is the decoding's to report.
                    let _ = scratch.dec.get(one.codec, one.window as usize);
                });
            }
        }
    }

    /// Decodes `chunks` on all cores into `out`, one after another (it is
    /// resized to their total; its capacity is reused, so a buffer passed
    /// again is neither reallocated nor cleared); returns where each chunk
    /// ends in it.
    pub fn decode_into(
        &self,
        chunks: &[ChunkRef],
        out: &mut Vec<u8>,
    ) -> Result<Vec<usize>, ResourceError> {
        let ends = self.chunk_ends(chunks)?;
        self.decode_to(chunks, fit(out, ends.last().copied().unwrap_or(0)))?;
        Ok(ends)
    }

    /// Checks `chunks` and returns where each ends when they are decoded
    /// one after another.
    pub fn chunk_ends(&self, chunks: &[ChunkRef]) -> Result<Vec<usize>, ResourceError> {
        let mut total = 0usize;
        let mut ends = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            self.check_chunk(chunk)?;
            total = total
                .checked_add(chunk.size as usize)
                .ok_or_else(|| corrupt("chunks too large to decode at once"))?;
            ends.push(total);
        }
        Ok(ends)
    }

    /// Decodes `chunks` (checked by [`Self::chunk_ends`]) on all cores into
    /// `out`, exactly their total size, one after another. Each thread keeps
    /// its decompressors and a buffer for compressed bytes from one call to
    /// the next.
    pub fn decode_to(&self, chunks: &[ChunkRef], out: &mut [u8]) -> Result<(), ResourceError> {
        let mut pieces = Vec::with_capacity(chunks.len());
        let mut rest = out;
        for chunk in chunks {
            let Some((piece, after)) = rest.split_at_mut_checked(chunk.size as usize) else {
                return Err(corrupt("chunks larger than their buffer"));
            };
            pieces.push(piece);
            rest = after;
        }
        let one = |(chunk, piece): (&ChunkRef, &mut [u8])| {
            with_scratch(|Scratch { dec, raw }| {
                let decoded = self.decode_chunk_into(chunk, piece, dec, Input::Thread(raw));
                // The compressed bytes of a solid chunk are not kept: with
                // them, the decoded chunks in flight would no longer be
                // the bulk of a solid apply's memory.
                if raw.capacity() > KEEP_RAW {
                    *raw = Vec::new();
                }
                decoded
            })
        };
        if chunks.len() <= 1 {
            chunks.iter().zip(pieces).try_for_each(one)
        } else {
            // Jobs of at most four chunks: left to itself, the pool cuts
            // the work into about two jobs per core, and a core that
            // finishes early then waits on the longest of them.
            chunks
                .par_iter()
                .zip(pieces)
                .with_max_len(4)
                .try_for_each(one)
        }
    }

    /// Reads a whole non-solid resource into memory (for the blob table, the
    /// XML data and metadata). `limit` caps the size accepted.
    pub fn read_resource(&self, spec: &ResourceSpec, limit: u64) -> Result<Vec<u8>, ResourceError> {
        if spec.size > limit {
            return Err(corrupt(format!(
                "the resource at offset {} declares {} bytes, more than the {limit} accepted",
                spec.offset, spec.size
            )));
        }
        let plan = self.plan(spec)?;
        let mut out = Vec::with_capacity(spec.size.min(self.len.saturating_mul(64)) as usize);
        let mut decoded = Vec::new();
        for piece in plan.chunks.chunks(64) {
            self.decode_into(piece, &mut decoded)?;
            out.extend_from_slice(&decoded);
        }
        Ok(out)
    }
}

/// An uncompressed extent cut into pieces.
pub fn plain_plan(offset: u64, size: u64) -> ChunkPlan {
    let n = size.div_ceil(PLAIN_PIECE);
    let chunks = (0..n)
        .map(|i| {
            let start = i * PLAIN_PIECE;
            let len = (size - start).min(PLAIN_PIECE) as u32;
            ChunkRef {
                offset: offset + start,
                stored: len,
                size: len,
                codec: Compression::None,
                window: PLAIN_PIECE as u32,
            }
        })
        .collect();
    ChunkPlan {
        chunks,
        size,
        chunk_size: PLAIN_PIECE,
    }
}

/// `out` resized to `len` bytes to decode into: its capacity is reused (a
/// buffer passed again is neither reallocated nor cleared), and a new one
/// is allocated as zeros, whose pages the system gives as they are first
/// written rather than all at once as filling it would take them.
fn fit(out: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if out.capacity() == 0 {
        *out = vec![0u8; len];
    } else {
        out.resize(len, 0);
    }
    out
}

/// A buffer for many chunks in turn (a batch's decoded data, or a solid
/// chunk's compressed bytes): a mapping of its own, its pages made with
/// it (see [`large_buffer`]) and given back as soon as it is dropped, or
/// heap memory.
///
/// The mapping is not advised to use huge pages: on a virtual machine that
/// reports its free 2 MiB blocks to the host, which takes their memory
/// back, huge pages come from such blocks, and clearing them then cost up
/// to 2 ms per MiB, a fifth of a solid apply's CPU time
/// (docs/BENCHMARKS.md); small pages, mostly reused, did not.
pub(crate) enum Buffer {
    Heap(Vec<u8>),
    Mapped(memmap2::MmapMut),
    /// A mapping whose pages are not made yet ([`Buffer::reserve`]); they
    /// are made when it is first prepared.
    Reserved(memmap2::MmapMut),
}

impl Default for Buffer {
    fn default() -> Self {
        Buffer::Heap(Vec::new())
    }
}

impl std::ops::Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Buffer::Heap(v) => v,
            Buffer::Mapped(m) | Buffer::Reserved(m) => m,
        }
    }
}

impl Buffer {
    /// `len` bytes to fill: the first `len` bytes of this buffer if it has
    /// as many, else of a new mapping; heap memory resized by [`fit`] where
    /// the system gave no mapping. A reused buffer is not cleared: decoding
    /// and reading write every byte asked for.
    pub(crate) fn prepare(&mut self, len: usize) -> &mut [u8] {
        if self.len() < len {
            // Whole 2 MiB units, so that a slightly larger batch next
            // time still fits.
            *self = match large_buffer(len.next_multiple_of(ROUND_UP)) {
                Some(map) => Buffer::Mapped(map),
                None => Buffer::Heap(Vec::new()),
            };
        }
        if let Buffer::Reserved(_) = self {
            if let Buffer::Reserved(map) = std::mem::take(self) {
                if map.len() <= POPULATE_AT_MOST {
                    populate(&map);
                }
                *self = Buffer::Mapped(map);
            }
        }
        match self {
            Buffer::Mapped(m) | Buffer::Reserved(m) => m.get_mut(..len).unwrap_or_default(),
            Buffer::Heap(v) => match v.len() >= len {
                true => v.get_mut(..len).unwrap_or_default(),
                false => fit(v, len),
            },
        }
    }

    /// Makes this buffer hold at least `len` bytes without making pages:
    /// those of a new mapping are made when it is first prepared. The
    /// system lets a thread map memory only between the steps in which
    /// another makes pages ([`populate`]), after about 5 ms each time here;
    /// threads that map all their buffers first, then make their pages,
    /// do not wait for each other.
    pub(crate) fn reserve(&mut self, len: usize) {
        if self.len() < len {
            *self = match memmap2::MmapMut::map_anon(len.next_multiple_of(ROUND_UP)) {
                Ok(map) => Buffer::Reserved(map),
                Err(_) => Buffer::Heap(Vec::new()),
            };
        }
    }
}

/// The unit a new mapping's size is rounded up to.
const ROUND_UP: usize = 2 << 20;

/// Where a chunk's compressed bytes are read: the thread's own buffer
/// (kept up to [`KEEP_RAW`] bytes), or a caller's.
enum Input<'a> {
    Thread(&'a mut Vec<u8>),
    Kept(&'a mut Buffer),
}

/// What one thread keeps from chunk to chunk: its decompressors and the
/// buffer compressed bytes are read into (kept up to [`KEEP_RAW`] bytes).
#[derive(Default)]
struct Scratch {
    dec: Decoders,
    raw: Vec<u8>,
}

/// A zeroed buffer of `len` bytes in a mapping of its own. Up to
/// [`POPULATE_AT_MOST`] bytes, its pages are all made at once, a
/// [`POPULATE_STEP`] at a time, rather than one fault per 4 KiB page as
/// they are first written: each is written anyway (see [`Buffer`]). A
/// larger one (a solid chunk of more than 64 MiB, which a damaged file may
/// only claim) gets its pages as they are written. `None` where the system
/// gives no such mapping.
fn large_buffer(len: usize) -> Option<memmap2::MmapMut> {
    let map = memmap2::MmapMut::map_anon(len).ok()?;
    if len <= POPULATE_AT_MOST {
        populate(&map);
    }
    Some(map)
}

/// Makes the pages of `map`. The system holds the process's map of
/// memory while it makes pages, and any thread that maps memory (a new
/// thread, a large allocation) waits for it; in steps, such a thread waits
/// for one step rather than for the whole buffer (28 ms for 64 MiB here).
/// Where the system cannot (Linux before 5.14, other systems), pages are
/// made as they are written.
fn populate(map: &memmap2::MmapMut) {
    #[cfg(target_os = "linux")]
    for at in (0..map.len()).step_by(POPULATE_STEP) {
        let len = POPULATE_STEP.min(map.len() - at);
        if map
            .advise_range(memmap2::Advice::PopulateWrite, at, len)
            .is_err()
        {
            break;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = map;
}

/// How much of a buffer [`populate`] makes at a time.
const POPULATE_STEP: usize = 2 << 20;

/// Largest mapping made whole at once: a 64 MiB solid chunk (wimlib's
/// default), rounded up.
const POPULATE_AT_MOST: usize = (64 << 20) + ROUND_UP;

/// Runs `f` with this thread's [`Scratch`]: where it is already in use
/// (never the case, as decoding does not re-enter itself), with a fresh
/// one, which is as correct.
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// Largest buffer of compressed bytes a thread keeps for its next chunk:
/// every non-solid chunk fits (LZX's largest is 2 MiB).
const KEEP_RAW: usize = 4 << 20;

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// One decompressor per codec, created on first use; one per thread.
#[derive(Default)]
struct Decoders {
    xpress: Option<(usize, Box<dyn Decompressor>)>,
    lzx: Option<(usize, Box<dyn Decompressor>)>,
    lzms: Option<(usize, Box<dyn Decompressor>)>,
}

impl Decoders {
    /// The decompressor for `codec` with window (nominal chunk size) `chunk`.
    fn get(
        &mut self,
        codec: Compression,
        chunk: usize,
    ) -> Result<&mut Box<dyn Decompressor>, CodecError> {
        let slot = match codec {
            Compression::Xpress => &mut self.xpress,
            Compression::Lzx => &mut self.lzx,
            Compression::Lzms => &mut self.lzms,
            Compression::None => &mut self.xpress,
        };
        let stale = match slot {
            Some((window, _)) => *window != chunk,
            None => true,
        };
        if stale {
            *slot = Some((chunk, codec::decompressor(codec, chunk)?));
        }
        match slot {
            Some((_, d)) => Ok(d),
            None => Err(CodecError::Corrupt {
                codec,
                reason: "no decompressor",
            }),
        }
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn source_with(bytes: &[u8], codec: Compression, chunk_size: u32) -> Source {
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(bytes).expect("write");
        Source::new(f, codec, chunk_size).expect("source")
    }

    fn spec(offset: u64, stored: u64, size: u64) -> ResourceSpec {
        ResourceSpec {
            offset,
            stored_size: stored,
            size,
            flags: resource_flags::COMPRESSED,
        }
    }

    #[test]
    fn chunk_table_entries_are_64_bit_past_4_gib() {
        // 5 chunks of a 4 GiB + 100 byte resource: 4 table entries of 8 bytes.
        let chunk = 1u32 << 30;
        let size = (4u64 << 30) + 100;
        let mut bytes = Vec::new();
        for start in [10u64, 20, 30, 40] {
            bytes.extend_from_slice(&start.to_le_bytes());
        }
        bytes.extend_from_slice(&[0u8; 50]);
        let src = source_with(&bytes, Compression::Lzms, chunk);
        let plan = src.plan(&spec(0, bytes.len() as u64, size)).expect("plan");
        let got: Vec<(u64, u32, u32)> = plan
            .chunks
            .iter()
            .map(|c| (c.offset, c.stored, c.size))
            .collect();
        assert_eq!(
            got,
            vec![
                (32, 10, chunk),
                (42, 10, chunk),
                (52, 10, chunk),
                (62, 10, chunk),
                (72, 10, 100)
            ]
        );
    }

    #[test]
    fn chunk_table_entries_are_32_bit_below_4_gib() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&7u32.to_le_bytes());
        bytes.extend_from_slice(&[0u8; 12]);
        let src = source_with(&bytes, Compression::Xpress, 4096);
        let plan = src.plan(&spec(0, 16, 5000)).expect("plan");
        let got: Vec<(u64, u32, u32)> = plan
            .chunks
            .iter()
            .map(|c| (c.offset, c.stored, c.size))
            .collect();
        assert_eq!(got, vec![(4, 7, 4096), (11, 5, 904)]);
    }

    #[test]
    fn bad_chunk_tables_are_errors() {
        // Decreasing offsets.
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&9u32.to_le_bytes());
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(&[0u8; 12]);
        let src = source_with(&bytes, Compression::Xpress, 4096);
        assert!(src.plan(&spec(0, 20, 9000)).is_err());
        // A table larger than the resource.
        assert!(src.plan(&spec(0, 4, 1 << 40)).is_err());
        // Past the end of the file.
        assert!(src.plan(&spec(8, 20, 9000)).is_err());
        // A chunk claiming an impossible expansion is refused before
        // decoding: 2 MiB of LZX from 1 byte.
        let c = ChunkRef {
            offset: 0,
            stored: 1,
            size: 1 << 21,
            codec: Compression::Lzx,
            window: 1 << 21,
        };
        let refused = src.chunk_ends(&[c]).expect_err("refused");
        assert!(refused.to_string().contains("claims"), "{refused}");
        // LZMS may expand that much: its decoder finds the damage.
        let c = ChunkRef {
            codec: Compression::Lzms,
            size: 64 << 20,
            window: 64 << 20,
            ..c
        };
        assert!(src.chunk_ends(&[c]).is_ok());
        assert!(src.decode_into(&[c], &mut Vec::new()).is_err());
    }

    /// Resident bytes of the `len` bytes at `start` (whole pages), from
    /// /proc/self/pagemap: exact even where the system has merged the
    /// mapping with one beside it (as other tests map memory too).
    #[cfg(target_os = "linux")]
    fn resident_bytes(start: *const u8, len: usize) -> u64 {
        use std::io::{Read, Seek, SeekFrom};
        const PAGE: usize = 4096;
        let mut map = File::open("/proc/self/pagemap").expect("pagemap");
        map.seek(SeekFrom::Start((start as usize / PAGE * 8) as u64))
            .expect("seek");
        let mut entries = vec![0u8; len / PAGE * 8];
        map.read_exact(&mut entries).expect("entries");
        let (entries, _) = entries.as_chunks::<8>();
        // Bit 63: the page is present.
        let present = entries
            .iter()
            .filter(|e| u64::from_le_bytes(**e) >> 63 == 1)
            .count();
        (present * PAGE) as u64
    }

    /// A claimed size past a default solid chunk costs nothing until it
    /// is written; a default one is made whole.
    #[cfg(target_os = "linux")]
    #[test]
    fn only_buffers_of_a_default_solid_chunk_or_less_are_made_whole() {
        let big = large_buffer(1 << 30).expect("a mapping");
        assert_eq!(resident_bytes(big.as_ptr(), 1 << 30), 0, "1 GiB claimed");
        let whole = large_buffer(8 << 20).expect("a mapping");
        assert_eq!(
            resident_bytes(whole.as_ptr(), 8 << 20),
            8 << 20,
            "8 MiB made whole"
        );
    }

    /// A reserved buffer has no pages until it is first prepared, then
    /// all of them; a reserve it already covers changes nothing.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_reserved_buffer_makes_its_pages_when_first_prepared() {
        let mut buffer = Buffer::default();
        buffer.reserve(5 << 20);
        assert!(matches!(buffer, Buffer::Reserved(_)));
        assert_eq!(buffer.len(), 6 << 20, "whole 2 MiB units");
        assert_eq!(resident_bytes(buffer.as_ptr(), 6 << 20), 0, "reserved");
        let at = buffer.as_ptr();
        buffer.prepare(1 << 20).fill(7);
        assert!(matches!(buffer, Buffer::Mapped(_)));
        assert_eq!(buffer.as_ptr(), at, "the same mapping");
        assert_eq!(resident_bytes(at, 6 << 20), 6 << 20, "made whole");
        buffer.reserve(4 << 20);
        assert_eq!(buffer.as_ptr(), at, "still large enough");
        assert_eq!(buffer.prepare(1 << 20)[0], 7, "not cleared");
    }
}
