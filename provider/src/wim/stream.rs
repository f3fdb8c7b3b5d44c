//! Streaming many blobs in the order they are stored: each chunk is read
//! and decoded once (solid chunks shared by several blobs too), in parallel
//! batches of about [`BATCH_BYTES`]; within a batch, the blobs that start and
//! end in it are handed to the sink in parallel, and a blob spanning batches
//! is handed over as its chunks arrive. Memory stays bounded by the batch.
//! A chunk of [`BATCH_BYTES`] or more (a solid chunk) is a batch of its own;
//! such batches are decoded by as many jobs at once as there are cores (at
//! most four), each written as soon as it and those before it are decoded,
//! so memory stays bounded by a few chunks.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex};

use rayon::prelude::*;

use super::metadata::Sha1;

use super::reader::{resource_error, BATCH_BYTES};
use super::resource::{fit, large_buffer, ChunkRef, ResourceError};
use super::{Blob, BlobLocation, FastMap, WimError, WimFile};

/// Receives the bytes of blobs, identified by their index in the list.
pub(crate) trait BlobSink: Sync {
    type State: Send;
    /// Blob `bi` begins (called once, also for empty blobs).
    fn start(&self, bi: usize) -> Result<Self::State, WimError>;
    /// The next bytes of blob `bi`, in order.
    fn write(&self, bi: usize, state: &mut Self::State, data: &[u8]) -> Result<(), WimError>;
    /// Blob `bi` is complete; returns the bytes it accounts for.
    fn finish(&self, bi: usize, state: Self::State) -> Result<u64, WimError>;
    /// Who uses blob `bi`, for error messages.
    fn describe(&self, bi: usize) -> String;
}

/// Where each blob's pieces are: all pieces in stream order, and the first
/// and last piece of each blob.
#[derive(Clone, Copy)]
struct Layout<'a> {
    pieces: &'a [Piece],
    first_piece: &'a [Option<usize>],
    last_piece: &'a [Option<usize>],
}

/// The decoded chunks of one batch, or why they could not be decoded.
type DecodedBatch = Result<Decoded, ResourceError>;

/// The decoded chunks of one batch, one after another in a buffer that is
/// handed on to a later batch once this one is written: after the first
/// batches, decoding neither allocates nor clears memory.
#[derive(Default)]
struct Decoded {
    bytes: Bytes,
    /// Where each chunk ends in `bytes`.
    ends: Vec<usize>,
}

/// Where a batch is decoded: a mapping of its own that the system may back
/// with huge pages (2 MiB on x86-64), or heap memory. Huge pages mean
/// thousands fewer page faults (per 64 MiB solid chunk, or the first time
/// a batch buffer is filled), and fewer address translation misses for the
/// decoder's matches that reach far back and for hashing and writing.
enum Bytes {
    Heap(Vec<u8>),
    Mapped(memmap2::MmapMut),
}

impl Default for Bytes {
    fn default() -> Self {
        Bytes::Heap(Vec::new())
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Heap(v) => v,
            Bytes::Mapped(m) => m,
        }
    }
}

impl Bytes {
    /// `len` bytes to decode into: this buffer's mapping if it is large
    /// enough, else a new one; heap memory resized by [`fit`] where the
    /// system gave no mapping. A reused buffer is not cleared: decoding
    /// writes every byte asked for.
    fn prepare(&mut self, len: usize) -> &mut [u8] {
        let keep = match self {
            Bytes::Mapped(m) => m.len() >= len,
            Bytes::Heap(v) => v.capacity() > 0,
        };
        if !keep {
            // Whole huge pages, so that a slightly larger batch next time
            // still fits.
            *self = match large_buffer(len.next_multiple_of(HUGE_PAGE)) {
                Some(map) => Bytes::Mapped(map),
                None => Bytes::Heap(Vec::new()),
            };
        }
        match self {
            Bytes::Mapped(m) => m.get_mut(..len).unwrap_or_default(),
            Bytes::Heap(v) => fit(v, len),
        }
    }
}

/// The size of a huge page on x86-64.
const HUGE_PAGE: usize = 2 << 20;

impl Decoded {
    /// The `k`th chunk of the batch.
    fn chunk(&self, k: usize) -> &[u8] {
        let start = match k.checked_sub(1) {
            Some(j) => self.ends.get(j).copied().unwrap_or(usize::MAX),
            None => 0,
        };
        self.ends
            .get(k)
            .and_then(|&end| self.bytes.get(start..end))
            .unwrap_or(&[])
    }
}

/// One piece of one blob within a decoded chunk.
struct Piece {
    blob: usize,
    chunk: usize,
    skip: u32,
    take: u32,
}

/// Streams `blobs` (best sorted in on-disk order) into `sink`; returns the
/// sum of what `finish` returned.
pub(crate) fn stream_blobs<S: BlobSink>(
    wim: &WimFile,
    blobs: &[&Blob],
    sink: &S,
) -> Result<u64, WimError> {
    let mut chunks: Vec<ChunkRef> = Vec::new();
    let mut pieces: Vec<Piece> = Vec::new();
    let mut first_piece: Vec<Option<usize>> = vec![None; blobs.len()];
    let mut last_piece: Vec<Option<usize>> = vec![None; blobs.len()];
    for (bi, blob) in blobs.iter().enumerate() {
        for (c, skip, take) in wim.blob_chunks(blob)? {
            let ci = match chunks.last() {
                Some(last) if *last == c => chunks.len() - 1,
                _ => {
                    chunks.push(c);
                    chunks.len() - 1
                }
            };
            if let Some(slot) = first_piece.get_mut(bi) {
                slot.get_or_insert(pieces.len());
            }
            if let Some(slot) = last_piece.get_mut(bi) {
                *slot = Some(pieces.len());
            }
            pieces.push(Piece {
                blob: bi,
                chunk: ci,
                skip,
                take,
            });
        }
    }
    let mut total = 0u64;

    // Blobs without data (empty) are still started and finished.
    for (bi, lp) in last_piece.iter().enumerate() {
        if lp.is_none() {
            let state = sink.start(bi)?;
            total = total.saturating_add(sink.finish(bi, state)?);
        }
    }

    let decode = |&(ci, cj): &(usize, usize), mut into: Decoded| -> DecodedBatch {
        let batch = chunks.get(ci..cj).unwrap_or(&[]);
        let ends = wim.source().chunk_ends(batch)?;
        let out = into.bytes.prepare(ends.last().copied().unwrap_or(0));
        wim.source().decode_to(batch, out)?;
        into.ends = ends;
        Ok(into)
    };
    let batch_error = |e, (ci, pi): (usize, usize)| {
        let who = pieces
            .iter()
            .skip(pi)
            .find(|p| p.chunk >= ci)
            .map(|p| sink.describe(p.blob))
            .unwrap_or_default();
        resource_error(wim.path(), &format!("the data of {who}"), e)
    };
    let layout = Layout {
        pieces: &pieces,
        first_piece: &first_piece,
        last_piece: &last_piece,
    };
    let mut open: FastMap<usize, S::State> = FastMap::default();
    let mut pi = 0usize;

    // Batches of about BATCH_BYTES of decoded data, at least two chunks
    // (their chunks are decoded in parallel), but a chunk of BATCH_BYTES or
    // more (a solid chunk, 64 MiB by default) is a batch of its own.
    let big = |c: usize| {
        chunks
            .get(c)
            .is_some_and(|c| u64::from(c.size) >= BATCH_BYTES)
    };
    let mut batches: Vec<(usize, usize)> = Vec::new();
    let mut ci = 0usize;
    while ci < chunks.len() {
        let mut cj = ci + 1;
        let mut bytes = u64::from(chunks[ci].size);
        while cj < chunks.len() && !big(ci) && !big(cj) && (cj < ci + 2 || bytes < BATCH_BYTES) {
            bytes += u64::from(chunks[cj].size);
            cj += 1;
        }
        batches.push((ci, cj));
        ci = cj;
    }

    // With solid chunks, batches are decoded by jobs of their own, as many
    // at once as there are cores, and each is written (on this thread, in
    // order; on all cores once nothing is left to decode) as soon as it is
    // decoded: one is written while the next ones decode, and a long chunk
    // does not hold up the others. (Not from inside the thread pool, whose
    // threads must not wait on each other.)
    if (0..chunks.len()).any(big) && rayon::current_thread_index().is_none() {
        let ahead = rayon::current_num_threads().clamp(1, 4);
        // Decoded batches waiting to be written, by batch.
        let slots: Mutex<Vec<Option<DecodedBatch>>> =
            Mutex::new(batches.iter().map(|_| None).collect());
        let ready = Condvar::new();
        let failed = std::sync::atomic::AtomicBool::new(false);
        // Decoding jobs spawned and not yet done.
        let decoding = std::sync::atomic::AtomicUsize::new(0);
        // Buffers written, for the next jobs to decode into: a new mapping
        // has its pages cleared by the system as they are first written,
        // a seventh of a solid apply's CPU time where the memory was not
        // used before. At most one per job in flight and the one written.
        let spare: Mutex<Vec<Bytes>> = Mutex::new(Vec::new());
        return rayon::in_place_scope(|scope| {
            let spawn = |k: usize| {
                let (batches, slots, ready, failed, decode, decoding, spare) = (
                    &batches, &slots, &ready, &failed, &decode, &decoding, &spare,
                );
                decoding.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                scope.spawn(move |_| {
                    // After a failure nothing more is decoded.
                    let outcome =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            match (
                                failed.load(std::sync::atomic::Ordering::Relaxed),
                                batches.get(k),
                            ) {
                                (false, Some(batch)) => {
                                    let bytes = spare
                                        .lock()
                                        .unwrap_or_else(|p| p.into_inner())
                                        .pop()
                                        .unwrap_or_default();
                                    let into = Decoded {
                                        bytes,
                                        ends: Vec::new(),
                                    };
                                    decode(batch, into)
                                }
                                _ => Ok(Decoded::default()),
                            }
                        }));
                    // The writer waits for this slot: fill it even after a
                    // panic, which the scope then passes on.
                    let (result, panic) = match outcome {
                        Ok(result) => (result, None),
                        Err(panic) => (
                            Err(ResourceError::Corrupt(
                                "decoding stopped by an internal error".into(),
                            )),
                            Some(panic),
                        ),
                    };
                    if let Some(slot) = slots.lock().unwrap_or_else(|p| p.into_inner()).get_mut(k) {
                        *slot = Some(result);
                    }
                    decoding.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                    ready.notify_all();
                    if let Some(panic) = panic {
                        std::panic::resume_unwind(panic);
                    }
                });
            };
            (0..ahead.min(batches.len())).for_each(spawn);
            let mut run = || -> Result<u64, WimError> {
                for (k, &(ci, cj)) in batches.iter().enumerate() {
                    let mut guard = slots.lock().unwrap_or_else(|p| p.into_inner());
                    let result = loop {
                        match guard.get_mut(k).and_then(Option::take) {
                            Some(result) => break result,
                            None => guard = ready.wait(guard).unwrap_or_else(|p| p.into_inner()),
                        }
                    };
                    drop(guard);
                    if k + ahead < batches.len() {
                        spawn(k + ahead);
                    }
                    let decoded = result.map_err(|e| batch_error(e, (ci, pi)))?;
                    // Once nothing is left to decode, the pool's threads
                    // are free to write beside this one.
                    let idle = || decoding.load(std::sync::atomic::Ordering::Acquire) == 0;
                    let (bytes, pj) =
                        write_batch(sink, &layout, &mut open, &decoded, (ci, cj), pi, &idle)?;
                    total = total.saturating_add(bytes);
                    pi = pj;
                    spare
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(decoded.bytes);
                }
                Ok(total)
            };
            let result = run();
            if result.is_err() {
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            result
        });
    }

    // While one batch is written (its blobs in parallel), the next one is
    // decoded: decoding and writing overlap on all cores, and at most two
    // batches are in memory; the buffer of the one written is reused for
    // the one after the next.
    let mut pending = batches.first().map(|b| decode(b, Decoded::default()));
    let mut spare = Decoded::default();
    for (k, &(ci, cj)) in batches.iter().enumerate() {
        let Some(result) = pending.take() else {
            break;
        };
        let decoded = result.map_err(|e| batch_error(e, (ci, pi)))?;
        let into = std::mem::take(&mut spare);
        let (next, written) = rayon::join(
            || batches.get(k + 1).map(|b| decode(b, into)),
            || write_batch(sink, &layout, &mut open, &decoded, (ci, cj), pi, &|| true),
        );
        spare = decoded;
        pending = next;
        let (bytes, pj) = written?;
        total = total.saturating_add(bytes);
        pi = pj;
    }
    Ok(total)
}

/// Hands the pieces of one decoded batch (chunks `ci..cj`, pieces from `pi`)
/// to the sink: blobs wholly inside the batch in parallel (or, while
/// `parallel` says no, in order on this thread), the others in order.
/// Returns the bytes finished and the first piece of the next batch.
fn write_batch<S: BlobSink>(
    sink: &S,
    layout: &Layout<'_>,
    open: &mut FastMap<usize, S::State>,
    decoded: &Decoded,
    (ci, cj): (usize, usize),
    pi: usize,
    parallel: &dyn Fn() -> bool,
) -> Result<(u64, usize), WimError> {
    let Layout {
        pieces,
        first_piece,
        last_piece,
    } = *layout;
    let mut total = 0u64;
    let piece_data = |p: &Piece| -> &[u8] {
        p.chunk
            .checked_sub(ci)
            .map(|k| decoded.chunk(k))
            .and_then(|d| d.get(p.skip as usize..p.skip as usize + p.take as usize))
            .unwrap_or(&[])
    };
    // The pieces of this batch, grouped into runs of one blob.
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    let mut pj = pi;
    while let Some(p) = pieces.get(pj) {
        if p.chunk >= cj {
            break;
        }
        match runs.last_mut() {
            Some((b, _, end)) if *b == p.blob && *end == pj => *end = pj + 1,
            _ => runs.push((p.blob, pj, pj + 1)),
        }
        pj += 1;
    }
    let complete = |&(b, s, e): &(usize, usize, usize)| {
        first_piece.get(b) == Some(&Some(s))
            && last_piece.get(b) == Some(&Some(e - 1))
            && !open.contains_key(&b)
    };
    let (whole, partial): (Vec<_>, Vec<_>) = runs.iter().partition(|r| complete(r));
    // A run's pieces lie one after another in the batch (each is a whole
    // chunk of its own resource, or a part of a solid chunk); they go to
    // the sink as the fewest slices that hold them in order.
    let write_run = |b: usize, state: &mut S::State, run: &[Piece]| -> Result<(), WimError> {
        let mut slices = run.iter().map(piece_data).peekable();
        while let Some(mut slice) = slices.next() {
            while let Some(next) = slices.peek() {
                match join_adjacent(decoded, slice, next) {
                    Some(joined) => {
                        slice = joined;
                        slices.next();
                    }
                    None => break,
                }
            }
            sink.write(b, state, slice)?;
        }
        Ok(())
    };
    let write_whole = |&&(b, s, e): &&(usize, usize, usize)| {
        let mut state = sink.start(b)?;
        write_run(b, &mut state, pieces.get(s..e).unwrap_or(&[]))?;
        sink.finish(b, state)
    };
    // Blobs that go on into other batches are written in order, beside
    // the whole ones: a large file cut by the batch ends (whose hashing is
    // one long task) then overlaps with the small files around it.
    let write_partial = |open: &mut FastMap<usize, S::State>| -> Result<u64, WimError> {
        let mut total = 0u64;
        for &&(b, s, e) in &partial {
            if let Entry::Vacant(slot) = open.entry(b) {
                slot.insert(sink.start(b)?);
            }
            if let Some(state) = open.get_mut(&b) {
                write_run(b, state, pieces.get(s..e).unwrap_or(&[]))?;
            }
            if last_piece.get(b) == Some(&Some(e - 1)) {
                if let Some(state) = open.remove(&b) {
                    total = total.saturating_add(sink.finish(b, state)?);
                }
            }
        }
        Ok(total)
    };
    // While the cores are busy elsewhere (decoding the next solid chunks),
    // blobs are written in order here, a few at a time, until they are
    // free: then the rest go on all of them, in jobs of at most four (as
    // chunks are decoded), so that the cores finish together.
    let mut rest = &whole[..];
    let mut wide = parallel();
    while !rest.is_empty() && !wide {
        let (now, later) = rest.split_at(rest.len().min(SERIAL_RUN));
        for run in now {
            total = total.saturating_add(write_whole(run)?);
        }
        rest = later;
        wide = parallel();
    }
    let (results, partial_total): (Vec<Result<u64, WimError>>, _) = if wide {
        rayon::join(
            || rest.par_iter().with_max_len(4).map(write_whole).collect(),
            || write_partial(open),
        )
    } else {
        (rest.iter().map(write_whole).collect(), write_partial(open))
    };
    for r in results {
        total = total.saturating_add(r?);
    }
    total = total.saturating_add(partial_total?);
    Ok((total, pj))
}

/// Blobs written in order between two looks at whether the cores are free.
const SERIAL_RUN: usize = 16;

/// `a` and `b` as one slice of `decoded`, when `b` follows `a` directly.
fn join_adjacent<'d>(decoded: &'d Decoded, a: &[u8], b: &[u8]) -> Option<&'d [u8]> {
    let base = decoded.bytes.as_ptr() as usize;
    let start = (a.as_ptr() as usize).checked_sub(base)?;
    let middle = (b.as_ptr() as usize).checked_sub(base)?;
    if start + a.len() != middle {
        return None;
    }
    // Both lie inside the buffer, where the joined slice starts at `a`.
    let joined = decoded.bytes.get(start..middle + b.len())?;
    (joined.as_ptr() == a.as_ptr()).then_some(joined)
}

/// Sort key putting blobs in the order they are stored in the file.
pub(crate) fn disk_order(wim: &WimFile, blob: &Blob) -> (u64, u64) {
    match blob.location {
        BlobLocation::Plain(spec) => (spec.offset, 0),
        BlobLocation::Solid { run, offset } => {
            (wim.solid_run_offset(run).unwrap_or(u64::MAX), offset)
        }
    }
}

/// Collects small blobs in memory, each SHA-1 checked.
struct Collector<'a> {
    wim: &'a WimFile,
    blobs: &'a [&'a Blob],
    describe: &'a (dyn Fn(&Sha1) -> String + Sync),
    out: Mutex<HashMap<Sha1, Vec<u8>>>,
}

impl BlobSink for Collector<'_> {
    type State = Vec<u8>;

    fn start(&self, _bi: usize) -> Result<Vec<u8>, WimError> {
        Ok(Vec::new())
    }

    fn write(&self, _bi: usize, state: &mut Vec<u8>, data: &[u8]) -> Result<(), WimError> {
        state.extend_from_slice(data);
        Ok(())
    }

    fn finish(&self, bi: usize, state: Vec<u8>) -> Result<u64, WimError> {
        let Some(blob) = self.blobs.get(bi) else {
            return Ok(0);
        };
        self.wim
            .check_blob(blob, &state, &|| (self.describe)(&blob.hash))?;
        let n = state.len() as u64;
        self.out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(blob.hash, state);
        Ok(n)
    }

    fn describe(&self, bi: usize) -> String {
        self.blobs
            .get(bi)
            .map(|b| (self.describe)(&b.hash))
            .unwrap_or_default()
    }
}

/// Reads the blobs `hashes` (those the file has; each at most `limit`
/// bytes, or an error naming its users via `describe`) in one pass in
/// on-disk order, so that a solid chunk holding many of them is decoded once.
pub(crate) fn read_small_blobs(
    wim: &WimFile,
    hashes: &[Sha1],
    limit: u64,
    describe: &(dyn Fn(&Sha1) -> String + Sync),
) -> Result<HashMap<Sha1, Vec<u8>>, WimError> {
    let mut seen = HashSet::new();
    let mut blobs: Vec<&Blob> = Vec::new();
    for h in hashes {
        if !seen.insert(*h) {
            continue;
        }
        if let Some(blob) = wim.blob(h) {
            if blob.size > limit {
                return Err(WimError::Invalid {
                    path: wim.path().to_path_buf(),
                    reason: format!(
                        "the data of {} declares {} bytes, more than the {limit} accepted",
                        describe(h),
                        blob.size
                    ),
                });
            }
            blobs.push(blob);
        }
    }
    blobs.sort_by_key(|b| disk_order(wim, b));
    let collector = Collector {
        wim,
        blobs: &blobs,
        describe,
        out: Mutex::new(HashMap::new()),
    };
    stream_blobs(wim, &blobs, &collector)?;
    Ok(collector
        .out
        .into_inner()
        .unwrap_or_else(|p| p.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Keeps every finished blob's bytes, and how many writes gave them.
    #[derive(Default)]
    struct Record {
        finished: Mutex<Vec<(usize, Vec<u8>)>>,
    }

    impl BlobSink for Record {
        /// Each write's bytes.
        type State = Vec<Vec<u8>>;
        fn start(&self, _bi: usize) -> Result<Self::State, WimError> {
            Ok(Vec::new())
        }
        fn write(&self, _bi: usize, writes: &mut Self::State, data: &[u8]) -> Result<(), WimError> {
            writes.push(data.to_vec());
            Ok(())
        }
        fn finish(&self, bi: usize, writes: Self::State) -> Result<u64, WimError> {
            // Pieces of a blob that lie one after another go as one write.
            assert!(
                writes.len() <= 1,
                "blob {bi} came in {} writes",
                writes.len()
            );
            let bytes = writes.concat();
            let n = bytes.len() as u64;
            self.finished
                .lock()
                .expect("not poisoned")
                .push((bi, bytes));
            Ok(n)
        }
        fn describe(&self, bi: usize) -> String {
            format!("blob {bi}")
        }
    }

    /// A batch of `n` chunks: chunk k holds blob k (k + 1 bytes of value
    /// k) whole, and the last chunk also the first 3 bytes of blob `n`,
    /// which goes on in the next batch (chunk `n`).
    fn batch(n: usize) -> (Decoded, Vec<Piece>) {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        let mut pieces = Vec::new();
        for k in 0..n {
            bytes.extend(std::iter::repeat_n(k as u8, k + 1));
            pieces.push(Piece {
                blob: k,
                chunk: k,
                skip: 0,
                take: (k + 1) as u32,
            });
            if k == n - 1 {
                bytes.extend([0xAA; 3]);
                pieces.push(Piece {
                    blob: n,
                    chunk: k,
                    skip: (k + 1) as u32,
                    take: 3,
                });
            }
            ends.push(bytes.len());
        }
        pieces.push(Piece {
            blob: n,
            chunk: n,
            skip: 0,
            take: 5,
        });
        let decoded = Decoded {
            bytes: Bytes::Heap(bytes),
            ends,
        };
        (decoded, pieces)
    }

    /// Writes the batch with `parallel` and checks that every whole blob
    /// was finished once with its bytes, and the running-on blob is open
    /// with its first piece.
    fn write_and_check(parallel: &dyn Fn() -> bool) {
        let n = 50;
        let (decoded, pieces) = batch(n);
        let mut first_piece = vec![None; n + 1];
        let mut last_piece = vec![None; n + 1];
        for (i, p) in pieces.iter().enumerate() {
            first_piece[p.blob].get_or_insert(i);
            last_piece[p.blob] = Some(i);
        }
        let layout = Layout {
            pieces: &pieces,
            first_piece: &first_piece,
            last_piece: &last_piece,
        };
        let sink = Record::default();
        let mut open = FastMap::default();
        let (total, next) =
            write_batch(&sink, &layout, &mut open, &decoded, (0, n), 0, parallel).expect("written");
        assert_eq!(
            next,
            pieces.len() - 1,
            "the next batch starts at blob n's last piece"
        );
        assert_eq!(total, (1..=n as u64).sum::<u64>());
        let mut finished = sink.finished.into_inner().expect("not poisoned");
        finished.sort_by_key(|(bi, _)| *bi);
        assert_eq!(finished.len(), n, "every whole blob once");
        for (k, (bi, data)) in finished.iter().enumerate() {
            assert_eq!(*bi, k);
            assert_eq!(data, &vec![k as u8; k + 1], "blob {k}");
        }
        assert_eq!(open.len(), 1);
        assert_eq!(open.get(&n), Some(&vec![vec![0xAA; 3]]));
    }

    #[test]
    fn a_batch_is_written_whole_in_order_in_parallel_or_first_one_then_the_other() {
        write_and_check(&|| false);
        write_and_check(&|| true);
        // In order for two runs of blobs, then on all cores.
        let looks = AtomicUsize::new(0);
        write_and_check(&|| looks.fetch_add(1, Ordering::Relaxed) >= 2);
        assert_eq!(looks.load(Ordering::Relaxed), 3, "looked before each run");
        // An answer that changes back is taken once per run all the same.
        let looks = AtomicUsize::new(0);
        write_and_check(&|| looks.fetch_add(1, Ordering::Relaxed) % 2 == 1);
    }
}
