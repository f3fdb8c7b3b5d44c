//! Streaming many blobs on all cores, each chunk read and decoded once.
//!
//! Where every chunk is a piece of one blob (a file without solid
//! resources), each core takes the next blob (or run of small blobs) and
//! decodes, hashes and writes it a group of about [`GROUP_BYTES`] at a
//! time, so that the bytes stay in the core's cache and no core waits on
//! another (see [`Separate`]). Memory: two groups per core. Where blobs are
//! hashed in lanes, only the largest blobs go that way; each core takes
//! the others sixteen tasks at a time and hashes their groups together
//! (see [`Separate::lanes`]). Memory: sixteen groups of up to twice
//! [`LANE_GROUP`] per core.
//!
//! Where chunks are shared by blobs (solid resources), the chunks are
//! decoded in batches of about [`BATCH_BYTES`], a solid chunk (that size
//! or more) a batch of its own, by one thread per core (at most four),
//! each with one batch at a time: the blobs that start and end in a batch
//! are handed to the sink at once, and a blob spanning batches as its
//! chunks arrive, in batch order (see [`Solid`]). Memory stays bounded by
//! one batch per thread, and its compressed bytes (a solid LZMS chunk's,
//! 1 MiB from each end at a time).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use rayon::prelude::*;

use super::blob_hash::{self, BlobHash};
use super::metadata::Sha1;

use super::reader::{resource_error, BATCH_BYTES};
use super::resource::{Buffer, ChunkRef};
use super::{Blob, BlobLocation, FastMap, WimError, WimFile};

/// Receives the bytes of blobs, identified by their index in the list,
/// and the SHA-1 of each (the stream hashes them, many blobs at once where
/// it can: see [`blob_hash`](super::blob_hash)).
pub(crate) trait BlobSink: Sync {
    type State: Send;
    /// Blob `bi` begins (called once, also for empty blobs).
    fn start(&self, bi: usize) -> Result<Self::State, WimError>;
    /// The next bytes of blob `bi`, in order.
    fn write(&self, bi: usize, state: &mut Self::State, data: &[u8]) -> Result<(), WimError>;
    /// Blob `bi` is complete, `hash` the hash of all its bytes; returns the
    /// bytes it accounts for.
    fn finish(&self, bi: usize, state: Self::State, hash: BlobHash) -> Result<u64, WimError>;
    /// As [`Self::finish`], for a blob whose bytes all came from one batch
    /// and are still in memory: `data`, the slices given to
    /// [`Self::write`], in order.
    fn finish_whole(
        &self,
        bi: usize,
        state: Self::State,
        hash: BlobHash,
        data: &[&[u8]],
    ) -> Result<u64, WimError> {
        let _ = data;
        self.finish(bi, state, hash)
    }
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

impl Layout<'_> {
    /// The pieces of blob `b`.
    fn blob_pieces(&self, b: usize) -> &[Piece] {
        let first = self.first_piece.get(b).copied().flatten();
        let last = self.last_piece.get(b).copied().flatten();
        match (first, last) {
            (Some(f), Some(l)) => self.pieces.get(f..=l).unwrap_or(&[]),
            _ => &[],
        }
    }
}

/// The decoded chunks of one batch, one after another in a buffer that its
/// thread reuses for its next batch: after the first batches, decoding
/// neither allocates nor clears memory.
#[derive(Default)]
struct Decoded {
    bytes: Buffer,
    /// Where each chunk ends in `bytes`.
    ends: Vec<usize>,
}

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
            total = total.saturating_add(sink.finish(bi, state, BlobHash::default())?);
        }
    }

    let layout = Layout {
        pieces: &pieces,
        first_piece: &first_piece,
        last_piece: &last_piece,
    };

    // A chunk of BATCH_BYTES or more is a solid chunk (64 MiB by default).
    // Smaller solid chunks are shared by blobs or cut between them.
    let big = |c: &ChunkRef| u64::from(c.size) >= BATCH_BYTES;
    let whole = |p: &Piece| {
        p.skip == 0
            && chunks
                .get(p.chunk)
                .is_some_and(|c| c.size == p.take && !big(c))
    };
    if pieces.len() == chunks.len() && pieces.iter().all(whole) {
        // Each blob is decoded, hashed and written on one core, a group
        // of its chunks at a time (see [`Separate`]).
        let separate = Separate {
            wim,
            sink,
            chunks: &chunks,
            layout,
        };
        return Ok(total.saturating_add(separate.run()?));
    }

    // Otherwise, batches of about BATCH_BYTES of decoded data, at
    // least two chunks (decoded in parallel), a solid chunk a batch of its
    // own.
    let mut batches: Vec<(usize, usize)> = Vec::new();
    let mut ci = 0usize;
    while let Some(first) = chunks.get(ci) {
        let mut cj = ci + 1;
        let mut bytes = u64::from(first.size);
        while let Some(c) = chunks.get(cj).filter(|c| !big(first) && !big(c)) {
            if cj >= ci + 2 && bytes >= BATCH_BYTES {
                break;
            }
            bytes += u64::from(c.size);
            cj += 1;
        }
        batches.push((ci, cj));
        ci = cj;
    }
    let starts = batch_starts(&pieces, &batches);

    // Decodes batch `k` into `into`, a single chunk's compressed bytes
    // into `raw` when too large for the thread to keep (a solid chunk) and
    // not read in pieces.
    let decode = |k: usize, into: &mut Decoded, raw: &mut Buffer| -> Result<(), WimError> {
        let &(ci, cj) = batches.get(k).unwrap_or(&(0, 0));
        let batch = chunks.get(ci..cj).unwrap_or(&[]);
        let decoded = wim.source().chunk_ends(batch).and_then(|ends| {
            let out = into.bytes.prepare(ends.last().copied().unwrap_or(0));
            match batch {
                [one] => wim.source().decode_one(one, out, raw)?,
                _ => wim.source().decode_to(batch, out)?,
            }
            into.ends = ends;
            Ok(())
        });
        decoded.map_err(|e| {
            let who = starts
                .get(k)
                .and_then(|&pi| pieces.get(pi))
                .map(|p| sink.describe(p.blob))
                .unwrap_or_default();
            resource_error(wim.path(), &format!("the data of {who}"), e)
        })
    };

    // Each core takes the next batch, decodes it and writes it (see
    // [`Solid`]); from inside the thread pool, whose threads must not wait
    // on threads that use it, this thread alone.
    let workers = match rayon::current_thread_index() {
        Some(_) => 1,
        None => rayon::current_num_threads().clamp(1, 4),
    };
    // Readies this thread for any batch: buffers as large as the largest
    // batch needs (see [`Solid::work`]).
    let reserve = |into: &mut Decoded, raw: &mut Buffer| {
        for &(ci, cj) in &batches {
            let batch = chunks.get(ci..cj).unwrap_or(&[]);
            wim.source().reserve(batch, &mut into.bytes, raw);
        }
    };
    let solid = Solid {
        sink,
        layout,
        batches: &batches,
        starts: &starts,
        decode: &decode,
        reserve: &reserve,
    };
    Ok(total.saturating_add(solid.run(workers)?))
}

/// Each batch's first piece, then the number of pieces.
fn batch_starts(pieces: &[Piece], batches: &[(usize, usize)]) -> Vec<usize> {
    let mut starts = Vec::with_capacity(batches.len() + 1);
    let mut pi = 0usize;
    for &(ci, _) in batches {
        while pieces.get(pi).is_some_and(|p| p.chunk < ci) {
            pi += 1;
        }
        starts.push(pi);
    }
    starts.push(pieces.len());
    starts
}

/// One blob's pieces that follow one another within a batch: the blob,
/// and the range of its pieces.
type Run = (usize, usize, usize);

/// The pieces `pi..pj` of a batch grouped into runs of one blob: those of
/// blobs that start and end in the batch, and the others (in order).
fn runs(layout: &Layout<'_>, pi: usize, pj: usize) -> (Vec<Run>, Vec<Run>) {
    let mut runs: Vec<Run> = Vec::new();
    for (k, p) in layout.pieces.iter().enumerate().take(pj).skip(pi) {
        match runs.last_mut() {
            Some((b, _, end)) if *b == p.blob && *end == k => *end = k + 1,
            _ => runs.push((p.blob, k, k + 1)),
        }
    }
    runs.into_iter().partition(|&(b, s, e)| {
        layout.first_piece.get(b) == Some(&Some(s))
            && layout.last_piece.get(b) == Some(&Some(e - 1))
    })
}

/// Hands blobs' pieces from one decoded batch (chunks from `ci`) to the
/// sink.
struct BatchWriter<'a, S: BlobSink> {
    sink: &'a S,
    layout: Layout<'a>,
    decoded: &'a Decoded,
    ci: usize,
}

impl<S: BlobSink> BatchWriter<'_, S> {
    fn piece_data(&self, p: &Piece) -> &[u8] {
        p.chunk
            .checked_sub(self.ci)
            .map(|k| self.decoded.chunk(k))
            .and_then(|d| d.get(p.skip as usize..p.skip as usize + p.take as usize))
            .unwrap_or(&[])
    }

    /// A run's pieces lie one after another in the batch (each is a whole
    /// chunk of its own resource, or a part of a solid chunk); they are
    /// hashed and go to the sink as the fewest slices that hold them in
    /// order.
    fn write_run(&self, run: &Run, open: &mut OpenBlob<S::State>) -> Result<(), WimError> {
        for slice in self.slices(run) {
            emit(self.sink, run.0, &mut open.0, &mut open.1, slice)?;
        }
        Ok(())
    }

    /// A run's data as the fewest slices that hold it in order.
    fn slices(&self, &(_, s, e): &Run) -> Vec<&[u8]> {
        let run = self.layout.pieces.get(s..e).unwrap_or(&[]);
        let mut slices: Vec<&[u8]> = Vec::with_capacity(1);
        for p in run {
            let data = self.piece_data(p);
            match slices.last_mut() {
                Some(last) => match join_adjacent(self.decoded, last, data) {
                    Some(joined) => *last = joined,
                    None => slices.push(data),
                },
                None => slices.push(data),
            }
        }
        slices
    }

    /// Blobs wholly inside the batch, from start to finish: hashed
    /// together (see [`blob_hash::update_all`]), then written in order.
    fn write_whole(&self, runs: &[Run]) -> Result<u64, WimError> {
        let slices: Vec<Vec<&[u8]>> = runs.iter().map(|run| self.slices(run)).collect();
        let mut hashes = vec![BlobHash::default(); runs.len()];
        hash_slices(&mut hashes, &slices);
        let mut total = 0u64;
        for ((run, slices), hash) in runs.iter().zip(&slices).zip(hashes) {
            let mut state = self.sink.start(run.0)?;
            for slice in slices {
                self.sink.write(run.0, &mut state, slice)?;
            }
            let bytes = self.sink.finish_whole(run.0, state, hash, slices)?;
            total = total.saturating_add(bytes);
        }
        Ok(total)
    }

    /// Pieces of blobs that go on into other batches, in order: started
    /// into `open` or continued from it, finished with their last piece.
    fn write_partial(
        &self,
        open: &mut FastMap<usize, OpenBlob<S::State>>,
        partial: &[Run],
    ) -> Result<u64, WimError> {
        let mut total = 0u64;
        for run @ &(b, _, e) in partial {
            if let Entry::Vacant(slot) = open.entry(b) {
                slot.insert((self.sink.start(b)?, BlobHash::default()));
            }
            if let Some(blob) = open.get_mut(&b) {
                self.write_run(run, blob)?;
            }
            if self.layout.last_piece.get(b) == Some(&Some(e - 1)) {
                if let Some((state, hash)) = open.remove(&b) {
                    total = total.saturating_add(self.sink.finish(b, state, hash)?);
                }
            }
        }
        Ok(total)
    }

    /// Whole blobs on all cores, in jobs of at most [`SERIAL_RUN`], so
    /// that the cores finish together.
    fn write_wide(&self, whole: &[Run]) -> Result<u64, WimError> {
        whole
            .par_chunks(SERIAL_RUN)
            .map(|runs| self.write_whole(runs))
            .try_reduce(|| 0, |a, b| Ok(a.saturating_add(b)))
    }
}

/// A blob started and not finished: its sink's state and its hash so far.
type OpenBlob<T> = (T, BlobHash);

/// Pieces of a blob at least this large are hashed and written at once on
/// two cores.
const HASH_BESIDE_WRITE: usize = 256 << 10;

/// Hashes and writes the next bytes of blob `b`: a large piece is hashed
/// on one core while it is written on another (a large file's pieces come
/// one after another, with no other work beside them when they are stored
/// uncompressed).
fn emit<S: BlobSink>(
    sink: &S,
    b: usize,
    state: &mut S::State,
    hash: &mut BlobHash,
    data: &[u8],
) -> Result<(), WimError> {
    if data.len() >= HASH_BESIDE_WRITE {
        rayon::join(|| hash.update(data), || sink.write(b, state, data)).1
    } else {
        hash.update(data);
        sink.write(b, state, data)
    }
}

/// Hashes each blob's slices (`slices[i]` into `hashes[i]`), the blobs
/// together: their first slices, then the second slices of those with
/// more, and so on.
fn hash_slices(hashes: &mut [BlobHash], slices: &[Vec<&[u8]>]) {
    let rounds = slices.iter().map(Vec::len).max().unwrap_or(0);
    for r in 0..rounds {
        let mut jobs: Vec<(&mut BlobHash, &[u8])> = hashes
            .iter_mut()
            .zip(slices)
            .filter_map(|(h, s)| s.get(r).map(|&slice| (h, slice)))
            .collect();
        blob_hash::update_all(&mut jobs);
    }
}

/// Decodes a batch (by its index) into the decoded buffer, the compressed
/// bytes of a solid chunk that is read whole into the buffer given.
type DecodeBatch<'a> = dyn Fn(usize, &mut Decoded, &mut Buffer) -> Result<(), WimError> + Sync + 'a;

/// Maps a thread's buffers for the batches of [`Solid`] and makes its
/// decompressor, without making pages ([`Buffer::reserve`]).
type ReserveBatch<'a> = dyn Fn(&mut Decoded, &mut Buffer) + Sync + 'a;

/// The batches of a stream with solid chunks, decoded and written by a few
/// threads at once. Each takes the next batch, decodes it into its own
/// buffer (the compressed bytes of a solid chunk read whole, not LZMS,
/// into another of its own), and writes the blobs wholly inside it;
/// pieces of blobs that run across batches are written in batch order,
/// the turn handed from thread to thread with the blobs still open.
/// Memory: one decoded batch per thread and those compressed bytes, all of
/// it reused from batch to batch. A long chunk does not hold up the
/// others, and the writing of one batch overlaps the decoding of the next
/// ones.
struct Solid<'a, S: BlobSink> {
    sink: &'a S,
    layout: Layout<'a>,
    /// Each batch's chunks.
    batches: &'a [(usize, usize)],
    /// Each batch's first piece, then the number of pieces.
    starts: &'a [usize],
    decode: &'a DecodeBatch<'a>,
    reserve: &'a ReserveBatch<'a>,
}

/// What the threads of [`Solid::run`] share.
struct Shared<T> {
    /// The next batch to take.
    next: AtomicUsize,
    /// Threads decoding.
    decoding: AtomicUsize,
    /// Set on the first error: no batch is taken after it.
    failed: AtomicBool,
    turn: Mutex<Turn<T>>,
    turned: Condvar,
    /// The error of the earliest batch that failed.
    error: Mutex<Option<(usize, WimError)>>,
}

/// Whose turn it is to write pieces of blobs that run across batches.
struct Turn<T> {
    /// The batch whose such pieces are written next.
    batch: usize,
    /// Blobs started and not finished, with their state.
    open: FastMap<usize, T>,
    /// Threads that have mapped their buffers, and threads started (not
    /// known until all are).
    ready: usize,
    workers: usize,
}

impl<'a, S: BlobSink> Solid<'a, S> {
    /// Runs `workers` threads (this one and others) to the end; returns
    /// the bytes finished, or the error of the earliest batch that failed.
    fn run(&self, workers: usize) -> Result<u64, WimError> {
        let n = self.batches.len();
        let split: Vec<(Vec<Run>, Vec<Run>)> = (0..n)
            .map(|k| {
                let at = |k: usize| self.starts.get(k).copied().unwrap_or(0);
                runs(&self.layout, at(k), at(k + 1))
            })
            .collect();
        let shared = Shared {
            next: AtomicUsize::new(0),
            decoding: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
            turn: Mutex::new(Turn {
                batch: next_with_partial(&split, 0),
                open: FastMap::default(),
                ready: 0,
                workers: usize::MAX,
            }),
            turned: Condvar::new(),
            error: Mutex::new(None),
        };
        let guarded = || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.work(&shared, &split)))
                .inspect_err(|_| {
                    // The others may wait for this thread's turn.
                    stop(&shared, None);
                })
        };
        let outcomes: Vec<std::thread::Result<u64>> = std::thread::scope(|scope| {
            let others: Vec<_> = (1..workers.min(n))
                .filter_map(|_| {
                    // Where no thread can be started, fewer do the work.
                    std::thread::Builder::new()
                        .name("solid".into())
                        .spawn_scoped(scope, guarded)
                        .ok()
                })
                .collect();
            shared.started(others.len() + 1);
            let mut outcomes = vec![guarded()];
            outcomes.extend(others.into_iter().map(|t| t.join().and_then(|r| r)));
            outcomes
        });
        let mut total = 0u64;
        for outcome in outcomes {
            match outcome {
                Ok(bytes) => total = total.saturating_add(bytes),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        let error = shared.error.into_inner().unwrap_or_else(|p| p.into_inner());
        match error {
            Some((_, e)) => Err(e),
            None => Ok(total),
        }
    }

    /// One thread's work: batches taken in turn until none is left or one
    /// failed; returns the bytes finished.
    fn work(&self, shared: &Shared<OpenBlob<S::State>>, split: &[(Vec<Run>, Vec<Run>)]) -> u64 {
        let mut decoded = Decoded::default();
        let mut raw = Buffer::default();
        // Every thread maps its memory before any makes pages, which would
        // hold up the others' mapping (see [`Buffer::reserve`]); a thread
        // starting maps memory too.
        (self.reserve)(&mut decoded, &mut raw);
        shared.ready();
        let mut total = 0u64;
        while !shared.failed.load(Ordering::Acquire) {
            let k = shared.next.fetch_add(1, Ordering::AcqRel);
            let Some((whole, partial)) = split.get(k) else {
                break;
            };
            shared.decoding.fetch_add(1, Ordering::AcqRel);
            let result = (self.decode)(k, &mut decoded, &mut raw);
            shared.decoding.fetch_sub(1, Ordering::AcqRel);
            let result =
                result.and_then(|()| self.write(shared, split, k, &decoded, whole, partial));
            match result {
                Ok(bytes) => total = total.saturating_add(bytes),
                Err(e) => stop(shared, Some((k, e))),
            }
        }
        total
    }

    /// Writes batch `k`: its whole blobs in order on this thread, a few at
    /// a time, and its pieces of blobs running across batches as soon as
    /// it is their turn; once nothing is left to decode, the rest of its
    /// whole blobs on all cores.
    fn write(
        &self,
        shared: &Shared<OpenBlob<S::State>>,
        split: &[(Vec<Run>, Vec<Run>)],
        k: usize,
        decoded: &Decoded,
        whole: &[Run],
        partial: &[Run],
    ) -> Result<u64, WimError> {
        let writer = BatchWriter {
            sink: self.sink,
            layout: self.layout,
            decoded,
            ci: self.batches.get(k).map_or(0, |b| b.0),
        };
        // Writes the pieces if it is this batch's turn (or, with `wait`,
        // once it is); `None` when it is not, or a failure elsewhere
        // stopped the work.
        let take_turn = |wait: bool| -> Result<Option<u64>, WimError> {
            let mut turn = shared.turn.lock().unwrap_or_else(|p| p.into_inner());
            while turn.batch != k {
                if !wait || shared.failed.load(Ordering::Acquire) {
                    return Ok(None);
                }
                turn = shared.turned.wait(turn).unwrap_or_else(|p| p.into_inner());
            }
            let mut open = std::mem::take(&mut turn.open);
            drop(turn);
            let written = writer.write_partial(&mut open, partial);
            let mut turn = shared.turn.lock().unwrap_or_else(|p| p.into_inner());
            turn.open = open;
            if written.is_ok() {
                turn.batch = next_with_partial(split, k + 1);
            }
            drop(turn);
            shared.turned.notify_all();
            written.map(Some)
        };
        let mut total = 0u64;
        let mut turn_done = partial.is_empty();
        let mut rest = whole;
        let free = || {
            shared.next.load(Ordering::Acquire) >= self.batches.len()
                && shared.decoding.load(Ordering::Acquire) == 0
        };
        while !rest.is_empty() && !free() {
            if !turn_done {
                if let Some(bytes) = take_turn(false)? {
                    total = total.saturating_add(bytes);
                    turn_done = true;
                }
            }
            let (now, later) = rest.split_at(rest.len().min(SERIAL_RUN));
            total = total.saturating_add(writer.write_whole(now)?);
            rest = later;
        }
        if !rest.is_empty() {
            // Nothing is left to decode: the pool's threads are free. Only
            // a turn already here is taken beside them (a thread of the
            // pool must not wait).
            let (wide, turn) = rayon::join(
                || writer.write_wide(rest),
                || match turn_done {
                    true => Ok(None),
                    false => take_turn(false),
                },
            );
            total = total.saturating_add(wide?);
            if let Some(bytes) = turn? {
                total = total.saturating_add(bytes);
                turn_done = true;
            }
        }
        if !turn_done {
            total = total.saturating_add(take_turn(true)?.unwrap_or(0));
        }
        Ok(total)
    }
}

impl<T> Shared<T> {
    /// Tells the threads of [`Solid::run`] how many were started.
    fn started(&self, workers: usize) {
        let mut turn = self.turn.lock().unwrap_or_else(|p| p.into_inner());
        turn.workers = workers;
        drop(turn);
        self.turned.notify_all();
    }

    /// Counts this thread ready, then waits until all are, or one failed.
    fn ready(&self) {
        let mut turn = self.turn.lock().unwrap_or_else(|p| p.into_inner());
        turn.ready += 1;
        self.turned.notify_all();
        while turn.ready < turn.workers && !self.failed.load(Ordering::Acquire) {
            turn = self.turned.wait(turn).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The first batch from `k` with pieces of blobs that run across batches.
fn next_with_partial(split: &[(Vec<Run>, Vec<Run>)], k: usize) -> usize {
    (k..split.len())
        .find(|&j| split.get(j).is_some_and(|(_, partial)| !partial.is_empty()))
        .unwrap_or(split.len())
}

/// Stops the threads of [`Solid::run`]: no batch is taken after this, and
/// those waiting for their turn give up. Keeps the error of the earliest
/// batch.
fn stop<T>(shared: &Shared<T>, error: Option<(usize, WimError)>) {
    if let Some((k, e)) = error {
        let mut first = shared.error.lock().unwrap_or_else(|p| p.into_inner());
        if first.as_ref().is_none_or(|(j, _)| k < *j) {
            *first = Some((k, e));
        }
    }
    // Set under the turn's lock, so that no thread checks it and then
    // waits past the notice.
    let turn = shared.turn.lock().unwrap_or_else(|p| p.into_inner());
    shared.failed.store(true, Ordering::Release);
    drop(turn);
    shared.turned.notify_all();
}

/// Blobs written in order between two looks at whether the cores are free,
/// hashed together: twice the lanes, so that they are busy most of the
/// time, and few enough for the cores to finish together.
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

/// Decoded bytes of one blob handled at a time by [`Separate`]: with the
/// hashing and writing that follow, they stay in the core's cache (L2).
const GROUP_BYTES: u64 = 256 << 10;

/// A stream without solid chunks, where each chunk is a piece of one blob
/// (none shared, none cut): each core takes the next task (a blob of at least
/// [`GROUP_BYTES`], or a run of smaller ones that follow one another),
/// and for each blob decodes a group of about [`GROUP_BYTES`] of its
/// chunks, hashes and writes it, then the next group. The bytes stay in
/// the core's cache from decoding to writing, nothing waits on another
/// core, and memory is two groups per core. The large blobs come first, so
/// that the cores finish together on small ones; the next group of a
/// large blob is decoded while the group before it is written, on another
/// core when one is free (once no task is left, in groups of
/// [`BATCH_BYTES`] decoded on all cores).
///
/// Where blobs are hashed in lanes ([`blob_hash`]), only blobs of at least
/// [`LANE_MAX`] are tasks of that kind; each core then takes the smaller
/// ones [`LANES`] tasks at a time and hashes them together (see
/// [`Separate::lanes`]).
struct Separate<'a, S: BlobSink> {
    wim: &'a WimFile,
    sink: &'a S,
    chunks: &'a [ChunkRef],
    layout: Layout<'a>,
}

/// A blob's decoded group: `len` bytes at the start of `bytes`. Made once
/// on the heap, as large as a group of [`GROUP_BYTES`] can be; a larger
/// group (once no task is left) moves it to a mapping of its own
/// ([`Buffer::prepare`]). Not cleared again.
struct Group {
    bytes: Buffer,
    len: usize,
}

impl Group {
    /// A group of up to `size` bytes, whose pages the system gives as they
    /// are first written.
    fn new(size: usize) -> Self {
        Group {
            bytes: Buffer::Heap(vec![0; size]),
            len: 0,
        }
    }

    fn data(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }
}

/// Lane tasks a core has under way at once: each round hashes the blobs
/// of all of them together.
const LANES: usize = 16;

/// Blobs this large or larger are tasks of their own even where blobs are
/// hashed in lanes: a lane moves one group a round, so a blob much larger
/// than the others would keep its core busy long after the others finish.
const LANE_MAX: u64 = 4 << 20;

/// Decoded bytes of a lane's blob, or of its run of small blobs, handled in
/// one round. Rounds of this size and more keep the decoding as fast as
/// without lanes; at 16 or 64 KiB, the decoding around the lanes' hashing
/// took 5–8% longer (docs/BENCHMARKS.md).
const LANE_GROUP: u64 = 256 << 10;

/// A task's blobs, as a range.
type Task = (usize, usize);

/// What the cores running [`Separate`] share.
struct Tasks {
    /// Each task's blobs, as a range.
    list: Vec<Task>,
    /// The next task to take.
    next: AtomicUsize,
    /// The tasks done in lanes, taken after the others.
    lanes: Vec<Task>,
    /// The next of them to take.
    next_lane: AtomicUsize,
    /// Set on the first error: no task is taken after it.
    failed: AtomicBool,
    /// The error of the earliest task that failed (all before it were
    /// taken, so it is the same from run to run); the lane tasks count
    /// after the others, in their order.
    error: Mutex<Option<(usize, WimError)>>,
    total: Mutex<u64>,
}

impl Tasks {
    /// Whether tasks or blobs are left for other cores to take.
    fn left(&self) -> bool {
        self.next.load(Ordering::Acquire) < self.list.len()
            || self.next_lane.load(Ordering::Acquire) < self.lanes.len()
    }

    /// Keeps the error of task `k` if no earlier task failed, and stops
    /// the taking of tasks.
    fn fail(&self, k: usize, e: WimError) {
        let mut error = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if error.as_ref().is_none_or(|(j, _)| k < *j) {
            *error = Some((k, e));
        }
        self.failed.store(true, Ordering::Release);
    }
}

/// A lane task under way: a blob, or a run of small ones, decoded, hashed
/// and written a group at a time (see [`Separate::lanes`]).
struct Slot<'p, T> {
    /// Its place among the lanes' tasks.
    k: usize,
    /// Its blobs not finished yet, in order.
    blobs: Vec<InSlot<T>>,
    /// Its pieces not decoded yet, and the index of the first.
    rest: &'p [Piece],
    at: usize,
    /// This round's group of its pieces, decoded.
    group: Group,
}

/// A blob of a lane task: its sink's state, its hash so far, and where its
/// bytes are in this round's group.
struct InSlot<T> {
    b: usize,
    state: T,
    hash: BlobHash,
    bytes: std::ops::Range<usize>,
    /// Rounds that had bytes of it.
    rounds: u32,
    /// Whether its last piece was in this round's group.
    done: bool,
}

impl<S: BlobSink> Separate<'_, S> {
    /// Writes every blob that has pieces; returns the bytes finished.
    fn run(&self) -> Result<u64, WimError> {
        let rounds = blob_hash::hashing() != blob_hash::Hashing::Chains;
        let (list, lanes) = tasks(&self.layout, rounds);
        let tasks = Tasks {
            list,
            next: AtomicUsize::new(0),
            lanes,
            next_lane: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            total: Mutex::new(0),
        };
        let work = tasks.list.len() + tasks.lanes.len();
        if work == 0 {
            return Ok(0);
        }
        let cores = rayon::current_num_threads().min(work);
        rayon::scope(|scope| {
            for _ in 1..cores {
                scope.spawn(|_| self.work(&tasks));
            }
            self.work(&tasks);
        });
        match tasks.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some((_, e)) => Err(e),
            None => Ok(tasks.total.into_inner().unwrap_or_else(|p| p.into_inner())),
        }
    }

    /// One core's work: tasks taken in turn until none is left or one
    /// failed, then blobs in lanes.
    fn work(&self, tasks: &Tasks) {
        // A group is less than GROUP_BYTES and then one more chunk, until
        // no task is left.
        let largest = self.chunks.iter().map(|c| c.size).max().unwrap_or(0);
        let size = (GROUP_BYTES + u64::from(largest)) as usize;
        let (mut current, mut next) = (Group::new(size), Group::new(size));
        let mut total = 0u64;
        while !tasks.failed.load(Ordering::Acquire) {
            let k = tasks.next.fetch_add(1, Ordering::AcqRel);
            let Some(&(first, end)) = tasks.list.get(k) else {
                break;
            };
            let written = (first..end).try_fold(0u64, |sum, b| {
                let bytes = self.blob(tasks, b, &mut current, &mut next)?;
                Ok(sum.saturating_add(bytes))
            });
            match written {
                Ok(bytes) => total = total.saturating_add(bytes),
                Err(e) => tasks.fail(k, e),
            }
        }
        drop((current, next));
        if !tasks.lanes.is_empty() {
            // A lane's blob is under LANE_MAX, and so is each of its
            // chunks, whatever the largest chunk of the file (a damaged
            // file may claim one of 4 GiB); a group that needs more grows.
            let size = (2 * LANE_GROUP + u64::from(largest).min(LANE_MAX)) as usize;
            total = total.saturating_add(self.lanes(tasks, size));
        }
        let mut sum = tasks.total.lock().unwrap_or_else(|p| p.into_inner());
        *sum = sum.saturating_add(total);
    }

    /// Decodes, hashes and writes blob `b` (if it has pieces), a group at
    /// a time, the next group decoded while one is written; returns the
    /// bytes finished.
    fn blob(
        &self,
        tasks: &Tasks,
        b: usize,
        current: &mut Group,
        next: &mut Group,
    ) -> Result<u64, WimError> {
        let mut rest = self.layout.blob_pieces(b);
        if rest.is_empty() {
            return Ok(0);
        }
        // Groups of GROUP_BYTES while the other cores have tasks of their
        // own; once none is left, they are free to help, and groups of
        // BATCH_BYTES keep what it costs to hand work over small.
        let mut take = || {
            let size = match tasks.left() {
                true => GROUP_BYTES,
                false => BATCH_BYTES,
            };
            let (group, after) = rest.split_at(group_len(rest, size));
            rest = after;
            group
        };
        let mut state = self.sink.start(b)?;
        let mut hash = BlobHash::default();
        self.decode(b, take(), current)?;
        let mut whole = true;
        loop {
            let group = take();
            if group.is_empty() {
                break;
            }
            whole = false;
            let (decoded, written) = rayon::join(
                || self.decode(b, group, next),
                || emit(self.sink, b, &mut state, &mut hash, current.data()),
            );
            written?;
            decoded?;
            std::mem::swap(current, next);
        }
        emit(self.sink, b, &mut state, &mut hash, current.data())?;
        match whole {
            true => self.sink.finish_whole(b, state, hash, &[current.data()]),
            false => self.sink.finish(b, state, hash),
        }
    }

    /// One core's tasks in lanes: up to [`LANES`] at once. Each round
    /// decodes the next group of each (about [`LANE_GROUP`] of a blob, or
    /// a whole run of small ones), hashes all the groups' blobs together
    /// ([`blob_hash::update_all`]) and writes them; a finished task's
    /// lane takes the next task. Tasks taken before a failure are run to
    /// their end, so that the error kept is the same from run to run.
    /// `size`: the largest group. Returns the bytes finished.
    fn lanes(&self, tasks: &Tasks, size: usize) -> u64 {
        let mut slots: Vec<Slot<'_, S::State>> = Vec::with_capacity(LANES);
        let mut groups: Vec<Group> = Vec::with_capacity(LANES);
        let mut total = 0u64;
        let key = |k: usize| tasks.list.len().saturating_add(k);
        loop {
            while slots.len() < LANES && !tasks.failed.load(Ordering::Acquire) {
                let k = tasks.next_lane.fetch_add(1, Ordering::AcqRel);
                let Some(&(first, end)) = tasks.lanes.get(k) else {
                    break;
                };
                let group = groups.pop().unwrap_or_else(|| Group::new(size));
                match self.slot(k, first, end, group) {
                    Ok(slot) => slots.push(slot),
                    Err(e) => tasks.fail(key(k), e),
                }
            }
            if slots.is_empty() {
                break;
            }
            slots.retain_mut(|slot| {
                let decoded = self.decode_next(slot);
                decoded.map_err(|e| tasks.fail(key(slot.k), e)).is_ok()
            });
            let mut jobs: Vec<(&mut BlobHash, &[u8])> = Vec::with_capacity(4 * LANES);
            for slot in &mut slots {
                let data = slot.group.data();
                for blob in &mut slot.blobs {
                    let bytes = data.get(blob.bytes.clone()).unwrap_or(&[]);
                    jobs.push((&mut blob.hash, bytes));
                }
            }
            blob_hash::update_all(&mut jobs);
            drop(jobs);
            slots.retain_mut(|slot| {
                let written = self.write_round(slot, &mut total);
                written.map_err(|e| tasks.fail(key(slot.k), e)).is_ok()
            });
            let finished = slots.extract_if(.., |slot| slot.rest.is_empty());
            groups.extend(finished.map(|slot| slot.group));
        }
        total
    }

    /// The lane task `k`: blobs `first..end`, started.
    fn slot(
        &self,
        k: usize,
        first: usize,
        end: usize,
        group: Group,
    ) -> Result<Slot<'_, S::State>, WimError> {
        let mut blobs = Vec::with_capacity(end.saturating_sub(first));
        let mut pieces = None;
        for b in first..end {
            let (Some(&Some(p)), Some(&Some(q))) = (
                self.layout.first_piece.get(b),
                self.layout.last_piece.get(b),
            ) else {
                continue;
            };
            let (start, _) = pieces.get_or_insert((p, q));
            pieces = Some((*start, q));
            blobs.push(InSlot {
                b,
                state: self.sink.start(b)?,
                hash: BlobHash::default(),
                bytes: 0..0,
                rounds: 0,
                done: false,
            });
        }
        let (at, rest) = match pieces {
            Some((p, q)) => (p, self.layout.pieces.get(p..=q).unwrap_or(&[])),
            None => (0, &[][..]),
        };
        Ok(Slot {
            k,
            blobs,
            rest,
            at,
            group,
        })
    }

    /// Decodes a lane task's next group: all of what is left when that is
    /// at most twice [`LANE_GROUP`], else about [`LANE_GROUP`]; and finds
    /// each blob's bytes in it.
    fn decode_next(&self, slot: &mut Slot<'_, S::State>) -> Result<(), WimError> {
        let left: u64 = slot.rest.iter().map(|p| u64::from(p.take)).sum();
        let n = match left <= 2 * LANE_GROUP {
            true => slot.rest.len(),
            false => group_len(slot.rest, LANE_GROUP),
        };
        let (group, after) = slot.rest.split_at(n);
        let b = group.first().map_or(0, |p| p.blob);
        self.decode(b, group, &mut slot.group)?;
        let mut blobs = slot.blobs.iter_mut();
        let mut blob = blobs.next();
        let mut offset = 0usize;
        for (i, p) in group.iter().enumerate() {
            while let Some(x) = blob.take() {
                if x.b == p.blob {
                    blob = Some(x);
                    break;
                }
                blob = blobs.next();
            }
            let Some(x) = blob.as_mut() else {
                break;
            };
            if x.bytes.is_empty() || x.bytes.end != offset {
                x.bytes = offset..offset;
                x.rounds += 1;
            }
            offset += p.take as usize;
            x.bytes.end = offset;
            x.done = self.layout.last_piece.get(p.blob) == Some(&Some(slot.at + i));
        }
        slot.rest = after;
        slot.at += n;
        Ok(())
    }

    /// Writes a lane task's blobs' bytes of this round (hashed already) and
    /// finishes those that are complete; adds their bytes to `total`.
    fn write_round(&self, slot: &mut Slot<'_, S::State>, total: &mut u64) -> Result<(), WimError> {
        let data = slot.group.data();
        for blob in &mut slot.blobs {
            let bytes = data.get(blob.bytes.clone()).unwrap_or(&[]);
            self.sink.write(blob.b, &mut blob.state, bytes)?;
        }
        for blob in slot.blobs.extract_if(.., |blob| blob.done) {
            let bytes = data.get(blob.bytes.clone()).unwrap_or(&[]);
            let finished = match blob.rounds {
                1 => self
                    .sink
                    .finish_whole(blob.b, blob.state, blob.hash, &[bytes]),
                _ => self.sink.finish(blob.b, blob.state, blob.hash),
            };
            *total = total.saturating_add(finished?);
        }
        for blob in &mut slot.blobs {
            blob.bytes = 0..0;
        }
        Ok(())
    }

    /// Decodes the chunks of blob `b`'s `pieces` (each a whole chunk) into
    /// `into`, one after another, on all cores that are free.
    fn decode(&self, b: usize, pieces: &[Piece], into: &mut Group) -> Result<(), WimError> {
        // Piece k is chunk k (one piece per chunk, in order), so the
        // pieces' chunks lie one after another.
        let chunks = match (pieces.first(), pieces.last()) {
            (Some(first), Some(last)) => self.chunks.get(first.chunk..=last.chunk),
            _ => None,
        };
        let chunks = chunks.unwrap_or(&[]);
        let source = self.wim.source();
        let decoded = source.chunk_ends(chunks).and_then(|ends| {
            source.decode_to(
                chunks,
                into.bytes.prepare(ends.last().copied().unwrap_or(0)),
            )?;
            Ok(ends)
        });
        into.len = decoded
            .map_err(|e| {
                let who = self.sink.describe(b);
                resource_error(self.wim.path(), &format!("the data of {who}"), e)
            })?
            .last()
            .copied()
            .unwrap_or(0);
        Ok(())
    }
}

/// The tasks, and (with `lanes`) the tasks done in lanes, as ranges of
/// blobs. Without lanes, each blob of at least [`GROUP_BYTES`] is a task
/// of its own, in stream order, then come the smaller ones, in runs of
/// about [`GROUP_BYTES`] in stream order. With lanes, only blobs of at
/// least [`LANE_MAX`] are tasks of their own; in lanes, each blob of at
/// least [`LANE_GROUP`], then runs of about [`LANE_GROUP`] of the smaller
/// ones, each in stream order, so that the cores finish on small ones.
/// Blobs without pieces are left out.
fn tasks(layout: &Layout<'_>, lanes: bool) -> (Vec<Task>, Vec<Task>) {
    let (alone, group) = match lanes {
        true => (LANE_MAX, LANE_GROUP),
        false => (GROUP_BYTES, GROUP_BYTES),
    };
    let mut large = Vec::new();
    let mut middle = Vec::new();
    let mut small = Vec::new();
    let mut run: Option<(usize, u64)> = None;
    for b in 0..layout.first_piece.len() {
        let pieces = layout.blob_pieces(b);
        if pieces.is_empty() {
            continue;
        }
        let size: u64 = pieces.iter().map(|p| u64::from(p.take)).sum();
        if size >= group {
            match size >= alone {
                true => large.push((b, b + 1)),
                false => middle.push((b, b + 1)),
            }
            if let Some((start, _)) = run.take() {
                small.push((start, b));
            }
            continue;
        }
        let (start, bytes) = run.get_or_insert((b, 0));
        *bytes += size;
        if *bytes >= group {
            small.push((*start, b + 1));
            run = None;
        }
    }
    if let Some((start, _)) = run {
        small.push((start, layout.first_piece.len()));
    }
    match lanes {
        true => middle.append(&mut small),
        false => large.append(&mut small),
    }
    (large, middle)
}

/// How many of `pieces` make the next group of about `size` bytes: at
/// least one piece, and pieces while the group has less than `size`.
fn group_len(pieces: &[Piece], size: u64) -> usize {
    let mut bytes = 0u64;
    let n = pieces
        .iter()
        .take_while(|p| {
            let more = bytes < size;
            bytes += u64::from(p.take);
            more
        })
        .count();
    n.max(1).min(pieces.len())
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

    fn finish(&self, bi: usize, state: Vec<u8>, hash: BlobHash) -> Result<u64, WimError> {
        let Some(blob) = self.blobs.get(bi) else {
            return Ok(0);
        };
        self.wim
            .check_hash(blob, hash, &|| (self.describe)(&blob.hash))?;
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

    /// Keeps every finished blob's bytes; with `one_write`, checks that
    /// each came in one write.
    #[derive(Default)]
    struct Record {
        finished: Mutex<Vec<(usize, Vec<u8>)>>,
        one_write: bool,
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
        fn finish(&self, bi: usize, writes: Self::State, hash: BlobHash) -> Result<u64, WimError> {
            // Pieces of a blob that lie one after another go as one write.
            assert!(
                !self.one_write || writes.len() <= 1,
                "blob {bi} came in {} writes",
                writes.len()
            );
            let bytes = writes.concat();
            assert_eq!(hash.len(), bytes.len() as u64, "blob {bi}");
            let expected: [u8; 20] = <sha1::Sha1 as sha1::Digest>::digest(&bytes).into();
            assert_eq!(hash.finalize(), expected, "blob {bi}");
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
            bytes: Buffer::Heap(bytes),
            ends,
        };
        (decoded, pieces)
    }

    /// Each of `blobs` blobs' first and last piece.
    fn first_and_last(pieces: &[Piece], blobs: usize) -> (Vec<Option<usize>>, Vec<Option<usize>>) {
        let mut first_piece = vec![None; blobs];
        let mut last_piece = vec![None; blobs];
        for (i, p) in pieces.iter().enumerate() {
            first_piece[p.blob].get_or_insert(i);
            last_piece[p.blob] = Some(i);
        }
        (first_piece, last_piece)
    }

    /// Writes the batch and checks that every whole blob was finished once
    /// with its bytes, and the running-on blob is open with its first
    /// piece.
    #[test]
    fn a_batch_is_written_whole_and_the_blob_running_on_is_left_open() {
        let n = 50;
        let (decoded, pieces) = batch(n);
        let (first_piece, last_piece) = first_and_last(&pieces, n + 1);
        let layout = Layout {
            pieces: &pieces,
            first_piece: &first_piece,
            last_piece: &last_piece,
        };
        let sink = Record {
            one_write: true,
            ..Record::default()
        };
        let mut open = FastMap::default();
        let starts = batch_starts(&pieces, &[(0, n), (n, n + 1)]);
        assert_eq!(
            starts,
            [0, pieces.len() - 1, pieces.len()],
            "the next batch starts at blob n's last piece"
        );
        let (whole, partial) = runs(&layout, starts[0], starts[1]);
        let writer = BatchWriter {
            sink: &sink,
            layout,
            decoded: &decoded,
            ci: 0,
        };
        let total = writer.write_wide(&whole).expect("written")
            + writer.write_partial(&mut open, &partial).expect("written");
        assert_eq!(total, (1..=n as u64).sum::<u64>());
        let mut finished = sink.finished.into_inner().expect("not poisoned");
        finished.sort_by_key(|(bi, _)| *bi);
        assert_eq!(finished.len(), n, "every whole blob once");
        for (k, (bi, data)) in finished.iter().enumerate() {
            assert_eq!(*bi, k);
            assert_eq!(data, &vec![k as u8; k + 1], "blob {k}");
        }
        assert_eq!(open.len(), 1);
        let (writes, hash) = open.get(&n).expect("blob n is open");
        assert_eq!(writes, &vec![vec![0xAA; 3]]);
        assert_eq!(hash.len(), 3);
    }

    /// Blobs of the given sizes, each in chunks of at most 32 KiB, one
    /// piece per chunk, as a stream without solid chunks has them.
    fn separate_stream(sizes: &[u64]) -> Vec<Piece> {
        let mut pieces = Vec::new();
        for (b, &size) in sizes.iter().enumerate() {
            let mut left = size;
            while left > 0 {
                let take = left.min(32 << 10);
                pieces.push(Piece {
                    blob: b,
                    chunk: pieces.len(),
                    skip: 0,
                    take: take as u32,
                });
                left -= take;
            }
        }
        pieces
    }

    /// The tasks (with `lanes`, and the lane tasks) of a stream of blobs
    /// of the given sizes.
    fn tasks_of(sizes: &[u64], lanes: bool) -> (Vec<Task>, Vec<Task>) {
        let pieces = separate_stream(sizes);
        let (first_piece, last_piece) = first_and_last(&pieces, sizes.len());
        let layout = Layout {
            pieces: &pieces,
            first_piece: &first_piece,
            last_piece: &last_piece,
        };
        tasks(&layout, lanes)
    }

    #[test]
    fn large_blobs_are_tasks_of_their_own_before_runs_of_small_ones() {
        let group = GROUP_BYTES;
        let sizes = [
            100,
            group - 1,
            0,
            group,
            7,
            group / 2,
            group / 2,
            3 * group + 5,
            1,
            2,
            0,
        ];
        let (list, lanes) = tasks_of(&sizes, false);
        assert!(lanes.is_empty());
        assert_eq!(
            list,
            [(3, 4), (7, 8), (0, 2), (4, 7), (8, 11)],
            "the large blobs, then runs of small ones that reach the group size"
        );
        // Every blob with bytes in exactly one task; an empty one in none
        // (2) or inside a run (10), where it is passed over.
        let mut seen = vec![0; sizes.len()];
        for &(first, end) in &list {
            for count in &mut seen[first..end] {
                *count += 1;
            }
        }
        for (b, &size) in sizes.iter().enumerate() {
            assert!(seen[b] == 1 || (size == 0 && seen[b] <= 1), "blob {b}");
        }
    }

    #[test]
    fn with_lanes_only_the_largest_blobs_are_tasks_of_their_own() {
        let sizes = [
            100,
            LANE_MAX,
            LANE_GROUP,
            7,
            LANE_GROUP / 2,
            LANE_GROUP / 2,
            0,
            3 * LANE_GROUP,
            1,
            2,
        ];
        let (list, lanes) = tasks_of(&sizes, true);
        assert_eq!(list, [(1, 2)], "a blob of LANE_MAX alone");
        assert_eq!(
            lanes,
            [(2, 3), (7, 8), (0, 1), (3, 6), (8, 10)],
            "the blobs of at least LANE_GROUP, then runs of small ones"
        );
    }

    #[test]
    fn a_blob_is_cut_into_groups_that_reach_the_group_size() {
        for size in [
            1,
            32 << 10,
            GROUP_BYTES,
            GROUP_BYTES + 1,
            5 * GROUP_BYTES - 3,
        ] {
            let pieces = separate_stream(&[size]);
            let mut cut: Vec<&[Piece]> = Vec::new();
            let mut rest = &pieces[..];
            while !rest.is_empty() {
                let (group, after) = rest.split_at(group_len(rest, GROUP_BYTES));
                cut.push(group);
                rest = after;
            }
            let bytes = |g: &[Piece]| g.iter().map(|p| u64::from(p.take)).sum::<u64>();
            assert_eq!(cut.iter().map(|g| g.len()).sum::<usize>(), pieces.len());
            assert_eq!(cut.iter().map(|g| bytes(g)).sum::<u64>(), size);
            for (i, g) in cut.iter().enumerate() {
                assert!(!g.is_empty());
                // Below the group size before its last piece, so that a
                // group fits in GROUP_BYTES and one more chunk.
                let before: u64 = bytes(&g[..g.len() - 1]);
                assert!(before < GROUP_BYTES, "size {size}, group {i}");
                if i + 1 < cut.len() {
                    assert!(bytes(g) >= GROUP_BYTES, "size {size}, group {i}");
                }
            }
        }
    }

    /// A stream of `batches` one-chunk batches of `CHUNK` bytes (byte i
    /// of chunk k is `(k * 31 + i * 7) % 251`): in each chunk, small blobs
    /// wholly inside it, and blobs running across chunk ends, one of them
    /// across three chunks.
    const CHUNK: usize = 4000;

    fn chunk_byte(k: usize, i: usize) -> u8 {
        ((k * 31 + i * 7) % 251) as u8
    }

    /// The pieces of the stream, and each blob's expected bytes.
    fn solid_stream(batches: usize) -> (Vec<Piece>, Vec<Vec<u8>>) {
        // Each blob as (chunk, skip, take) pieces, in stream order.
        let mut blobs: Vec<Vec<(usize, usize, usize)>> = Vec::new();
        let mut at = (0usize, 0usize);
        let mut size = 1usize;
        while at.0 < batches {
            size = match blobs.len() % 9 {
                4 => CHUNK * 2 + 500,
                7 => CHUNK / 2 + 300,
                _ => size % 97 + 13,
            };
            let mut blob = Vec::new();
            let mut left = size;
            while left > 0 && at.0 < batches {
                let take = left.min(CHUNK - at.1);
                blob.push((at.0, at.1, take));
                left -= take;
                at.1 += take;
                if at.1 == CHUNK {
                    at = (at.0 + 1, 0);
                }
            }
            blobs.push(blob);
        }
        let mut pieces = Vec::new();
        let mut expected = Vec::new();
        for (b, blob) in blobs.iter().enumerate() {
            let mut bytes = Vec::new();
            for &(chunk, skip, take) in blob {
                bytes.extend((skip..skip + take).map(|i| chunk_byte(chunk, i)));
                pieces.push(Piece {
                    blob: b,
                    chunk,
                    skip: skip as u32,
                    take: take as u32,
                });
            }
            expected.push(bytes);
        }
        (pieces, expected)
    }

    /// Where a solid stream's run fails, if it does.
    #[derive(Clone, Copy, PartialEq)]
    enum Fault {
        None,
        /// Batch k does not decode.
        Decode(usize),
        /// Batch k's decoding panics.
        Panic(usize),
        /// The first thread to map its buffers panics.
        PanicReserving,
    }

    /// What a run of the solid stream gave: its result, the blobs the
    /// sink finished (in blob order), and every blob's expected bytes.
    type SolidRun = (Result<u64, WimError>, Vec<(usize, Vec<u8>)>, Vec<Vec<u8>>);

    /// Runs the solid stream of `batches` batches on `workers` threads.
    fn run_solid(batches: usize, workers: usize, fault: Fault) -> SolidRun {
        let (pieces, expected) = solid_stream(batches);
        let (first_piece, last_piece) = first_and_last(&pieces, expected.len());
        let layout = Layout {
            pieces: &pieces,
            first_piece: &first_piece,
            last_piece: &last_piece,
        };
        let ranges: Vec<(usize, usize)> = (0..batches).map(|k| (k, k + 1)).collect();
        let starts = batch_starts(&pieces, &ranges);
        let reserved = AtomicUsize::new(0);
        let reserve = |into: &mut Decoded, _: &mut Buffer| {
            if fault == Fault::PanicReserving && reserved.load(Ordering::Acquire) == 0 {
                panic!("reserving");
            }
            // The threads started slow, so that this one, not waiting
            // for them, would decode first.
            if std::thread::current().name() == Some("solid") {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            into.bytes.reserve(CHUNK);
            reserved.fetch_add(1, Ordering::AcqRel);
        };
        let decode = |k: usize, into: &mut Decoded, raw: &mut Buffer| -> Result<(), WimError> {
            if reserved.load(Ordering::Acquire) != workers.min(batches) {
                return Err(WimError::Invalid {
                    path: "test.wim".into(),
                    reason: "a batch decoded before every thread mapped its buffers".into(),
                });
            }
            // Batches take different times, so that they finish out of
            // order.
            std::thread::sleep(std::time::Duration::from_millis((k as u64 * 7) % 5));
            match fault {
                Fault::Decode(j) if j == k => {
                    return Err(WimError::Invalid {
                        path: "test.wim".into(),
                        reason: format!("batch {k}"),
                    })
                }
                Fault::Panic(j) if j == k => panic!("batch {k}"),
                _ => {}
            }
            raw.prepare(10).fill(1);
            for (i, byte) in into.bytes.prepare(CHUNK).iter_mut().enumerate() {
                *byte = chunk_byte(k, i);
            }
            into.ends = vec![CHUNK];
            Ok(())
        };
        let sink = Record::default();
        let solid = Solid {
            sink: &sink,
            layout,
            batches: &ranges,
            starts: &starts,
            decode: &decode,
            reserve: &reserve,
        };
        let result = solid.run(workers);
        let mut finished = sink.finished.into_inner().expect("not poisoned");
        finished.sort_by_key(|(bi, _)| *bi);
        (result, finished, expected)
    }

    #[test]
    fn solid_batches_are_written_whole_and_in_order_across_them_on_any_number_of_threads() {
        for workers in 1..=4 {
            for batches in [1, 2, 7] {
                let (result, finished, expected) = run_solid(batches, workers, Fault::None);
                let total: u64 = expected.iter().map(|b| b.len() as u64).sum();
                assert_eq!(result.expect("written"), total, "{workers} threads");
                assert_eq!(finished.len(), expected.len(), "every blob once");
                for (bi, bytes) in &finished {
                    assert!(bytes == &expected[*bi], "blob {bi}, {workers} threads");
                }
            }
        }
    }

    #[test]
    fn a_solid_batch_that_fails_stops_the_others_with_its_error() {
        for workers in 1..=4 {
            let (result, finished, expected) = run_solid(7, workers, Fault::Decode(3));
            let error = result.expect_err("batch 3 fails").to_string();
            assert!(error.contains("batch 3"), "{error}");
            // Not every blob is finished, and those that are have their
            // bytes.
            assert!(finished.len() < expected.len());
            for (bi, bytes) in &finished {
                assert!(bytes == &expected[*bi], "blob {bi}");
            }
            let (result, _, _) = run_solid(7, workers, Fault::Decode(0));
            assert!(result
                .expect_err("batch 0 fails")
                .to_string()
                .contains("batch 0"));
        }
    }

    #[test]
    fn a_panic_in_a_solid_batch_is_passed_on_and_hangs_nothing() {
        for workers in 1..=4 {
            for k in [0, 2, 6] {
                let outcome = std::panic::catch_unwind(|| run_solid(7, workers, Fault::Panic(k)));
                assert!(outcome.is_err(), "batch {k}, {workers} threads");
            }
            let outcome = std::panic::catch_unwind(|| run_solid(7, workers, Fault::PanicReserving));
            assert!(outcome.is_err(), "reserving, {workers} threads");
        }
    }
}
