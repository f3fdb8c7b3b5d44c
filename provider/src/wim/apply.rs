//! Applying an image to a folder, the way `wimlib-imagex apply` does on
//! Linux.
//!
//! Order of work: the directory tree and empty files first; then every blob
//! once, in on-disk order, decoded in parallel batches and written to the
//! first file that uses it, then copied to the others (the reparse data of
//! links is kept in memory in the same pass, so a solid chunk holding it is
//! not decoded twice); then symbolic links, hard links and timestamps
//! (directories last, deepest first).
//!
//! All of it is done through open folder handles ([`OutDirs`]): no path is
//! resolved through a symbolic link, also when another process changes the
//! tree while the apply runs. Only folders created by this apply (or
//! already there as real folders) are written into, every file is created
//! exclusively, and links are made only once all data is written, so
//! nothing is ever written through a link or outside the target.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use rustix::fs::{FileType, OFlags, Timespec, Timestamps};
use sha1::{Digest, Sha1 as Sha1Hasher};

use super::blob_hash::BlobHash;
use super::format::{IO_REPARSE_TAG_MOUNT_POINT, IO_REPARSE_TAG_SYMLINK};
use super::link_target::link_target;
use super::metadata::{Dentry, Image, Sha1, ZERO_HASH};
use super::out_dirs::{name_path, OutDirs};
use super::stream::{disk_order, stream_blobs, BlobSink};
use super::{sidecar, ApplyOptions, ApplySummary, Blob, FastMap, FastSet, WimError, WimFile};
use crate::fsutil::dir::Dir;
use crate::progress::Reporter;

/// Largest reparse data accepted (Windows caps it at 16 KiB).
const MAX_REPARSE: u64 = 16 * 1024;

/// Folders deeper than this are opened from the apply folder when their
/// tree is made, rather than from their parent's handle: at most this many
/// handles stay open for the folders still to fill.
pub(super) const HANDLES_DEPTH: usize = 64;

/// Entries handled by one job when hard links and timestamps are made on
/// all cores: enough that each job's folder handle is found in the cache.
const FOLDER_RUN: usize = 64;

/// Modes of created folders and files, less the umask (as wimlib does
/// without `--unix-data`).
const DIR_MODE: u32 = 0o777;
const FILE_MODE: u32 = 0o666;

/// A FILETIME as a `timespec`.
pub(crate) fn filetime_to_timespec(ft: u64) -> Timespec {
    let (secs, nanos) = super::filetime::to_unix(ft);
    Timespec {
        tv_sec: secs,
        tv_nsec: nanos as _,
    }
}

fn timestamps(e: &Dentry) -> Timestamps {
    Timestamps {
        last_access: filetime_to_timespec(e.last_access_time),
        last_modification: filetime_to_timespec(e.last_write_time),
    }
}

/// Why an entry named `name` is not applied, or `None` when its name is
/// safe (`valid`: the stored name was valid UTF-16).
fn unsafe_name(name: &str, valid: bool) -> Option<&'static str> {
    if !valid {
        Some("its name is not valid UTF-16")
    } else if name.is_empty() {
        Some("it has an empty name")
    } else if name == "." || name == ".." {
        Some("its name is . or ..")
    } else if name.contains('/') || name.contains('\\') {
        Some("its name contains a path separator")
    } else if name.contains('\0') {
        Some("its name contains NUL")
    } else {
        None
    }
}

/// A file to write a blob into: entry `entry`, in folder entry `dir`.
struct Destination {
    dir: usize,
    entry: usize,
}

struct Plan {
    /// Directories created (or merged into), parents first.
    dirs: Vec<usize>,
    /// Empty files and symbolic links, whose times are set at the end (a
    /// file with data gets its times as its data is finished).
    leaves: Vec<usize>,
    /// Blob → the files that receive it.
    destinations: FastMap<Sha1, Vec<Destination>>,
    /// (existing file, new link) entries, linked after the data is written.
    hard_links: Vec<(usize, usize)>,
    /// Symbolic links and junctions, made after the data is written.
    links: Vec<usize>,
}

/// Test-only hook: pauses at `stage` when `CONTAINERIMAGE_TEST_PAUSE_AT`
/// names it, until the file named by `CONTAINERIMAGE_TEST_RESUME` appears.
/// Compiled only with the `test-hooks` feature.
fn test_pause(stage: &str, reporter: &dyn Reporter) {
    #[cfg(feature = "test-hooks")]
    if std::env::var("CONTAINERIMAGE_TEST_PAUSE_AT").is_ok_and(|v| v == stage) {
        reporter.warn(&format!("test pause at {stage}"));
        let resume = std::env::var_os("CONTAINERIMAGE_TEST_RESUME").map(std::path::PathBuf::from);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::time::Instant::now() < until {
            if resume.as_deref().is_some_and(Path::exists) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    #[cfg(not(feature = "test-hooks"))]
    let _ = (stage, reporter);
}

pub(crate) fn apply(
    wim: &WimFile,
    index: u32,
    target: &Path,
    options: &ApplyOptions,
    reporter: &dyn Reporter,
) -> Result<ApplySummary, WimError> {
    if options.check_integrity {
        wim.check_integrity(reporter)?;
    }
    let image = wim.image(index)?;
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WimError::Write { path, source }
    };
    fs::create_dir_all(target).map_err(write_err(target))?;
    let target_abs = fs::canonicalize(target).map_err(write_err(target))?;
    if let Some(meta) = &options.metadata_path {
        if sidecar::is_inside(meta, &target_abs) {
            return Err(WimError::Sidecar {
                path: meta.clone(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the metadata file must not be inside the apply folder",
                ),
            });
        }
    }
    let (root, root_file) = open_root(&target_abs).map_err(write_err(&target_abs))?;
    let mut out = OutDirs::new(root, target_abs.clone(), image.entries.len());

    let mut summary = ApplySummary::default();
    let mut plan = build_tree(&image, &mut out, reporter, &mut summary)?;
    test_pause("apply-data", reporter);

    // Data, in on-disk order: file contents and the reparse data of links.
    let mut blobs: Vec<(&Blob, Vec<Destination>)> = Vec::with_capacity(plan.destinations.len());
    // Of several blobs missing, the one with the lowest hash is reported
    // (the map's order changes from run to run).
    let mut missing: Option<(Sha1, Vec<Destination>)> = None;
    for (hash, dests) in std::mem::take(&mut plan.destinations) {
        match wim.blob(&hash) {
            Some(blob) => blobs.push((blob, dests)),
            None if missing.as_ref().is_none_or(|(m, _)| hash < *m) => {
                missing = Some((hash, dests));
            }
            None => {}
        }
    }
    if let Some((hash, dests)) = missing {
        return Err(WimError::MissingBlob {
            path: wim.path().to_path_buf(),
            files: name_files(&image, &dests),
            hash: hex::encode(hash),
        });
    }
    // Blobs kept in memory: the reparse data of links, and for a metadata
    // file its reparse data and named streams, all read in this one pass.
    let mut keep = link_blobs(wim, &image, &plan.links)?;
    if options.metadata_path.is_some() {
        let held: u64 = keep.values().fold(0u64, |t, b| t.saturating_add(b.size));
        let already: HashMap<Sha1, usize> = keep.keys().map(|h| (*h, 0)).collect();
        let budget = sidecar::MAX_KEPT_BYTES.saturating_sub(held);
        for hash in sidecar::data_blobs(wim, &image, &already, budget).into_keys() {
            if let Some(blob) = wim.blob(&hash) {
                keep.insert(hash, blob);
            }
        }
    }
    if !keep.is_empty() {
        let with_files: FastSet<Sha1> = blobs.iter().map(|(b, _)| b.hash).collect();
        for blob in keep.values() {
            if !with_files.contains(&blob.hash) {
                blobs.push((blob, Vec::new()));
            }
        }
    }
    // By place in the file; the hash orders what a damaged blob table
    // places together, so that the order never depends on the maps'.
    blobs.sort_unstable_by_key(|(b, _)| (disk_order(wim, b), b.hash));
    let total: u64 = blobs.iter().fold(0u64, |t, (b, d)| {
        t.saturating_add(b.size.saturating_mul(d.len() as u64))
    });
    reporter.on_start("Applying image", Some(total));
    let written = write_blobs(wim, &image, &out, &blobs, &keep, reporter);
    reporter.on_complete();
    let (written, kept) = written?;
    summary.bytes = written;

    // Symbolic links and junctions, folder by folder.
    let by_folder = |a: &usize, b: &usize| {
        let parent = |i: &usize| image.entries.get(*i).map_or(0, |e| e.parent);
        parent(a).cmp(&parent(b))
    };
    plan.links.sort_by(by_folder);
    for &entry in &plan.links {
        let Some(e) = image.entries.get(entry) else {
            continue;
        };
        let data = kept.get(&e.reparse_hash()).map_or(&[][..], Vec::as_slice);
        let depth = (!options.absolute_links).then(|| {
            image
                .path_of(e.parent)
                .split('/')
                .filter(|p| !p.is_empty())
                .count()
        });
        let Some(link) = link_target(data, e, wim.header().rp_fix, &target_abs, depth) else {
            let path = image.path_of(entry);
            reporter.warn(&format!("Skipping '{path}': its link target is unreadable"));
            summary.skipped.push(path);
            continue;
        };
        let name = image.name_of(e);
        let werr = |source| WimError::Write {
            path: out.display(e.parent, name),
            source,
        };
        out.get(e.parent)
            .and_then(|d| d.symlink(Path::new(&link), name_path(name)))
            .map_err(werr)?;
        summary.symlinks += 1;
        plan.leaves.push(entry);
    }

    // Hard links and timestamps are independent of each other within each
    // step, so each step runs on all cores, in runs of entries of one folder.
    let link_one = |&(existing, link): &(usize, usize)| -> Result<u64, WimError> {
        let (Some(a), Some(b)) = (image.entries.get(existing), image.entries.get(link)) else {
            return Ok(0);
        };
        let (a_name, b_name) = (image.name_of(a), image.name_of(b));
        // Through the folders' cached handles: no path is walked again.
        let made = out.get(a.parent).and_then(|from| {
            let to = out.get(b.parent)?;
            from.hard_link_to(name_path(a_name), &to, name_path(b_name))
        });
        made.map_err(|source| WimError::Write {
            path: out.display(b.parent, b_name),
            source,
        })?;
        Ok(1)
    };
    summary.hard_links += plan
        .hard_links
        .par_chunks(FOLDER_RUN)
        .map(|run| run.iter().map(link_one).sum::<Result<u64, WimError>>())
        .sum::<Result<u64, WimError>>()?;

    // Timestamps of empty files and links folder by folder, then of
    // folders (a folder's times do not change when those of what it holds
    // are set, so these may go in any order), then the root's.
    let set_times = |&entry: &usize| -> Result<(), WimError> {
        let Some(e) = image.entries.get(entry) else {
            return Ok(());
        };
        let name = image.name_of(e);
        out.get(e.parent)
            .and_then(|d| d.set_times(name_path(name), &timestamps(e)))
            .map_err(|source| WimError::Write {
                path: out.display(e.parent, name),
                source,
            })
    };
    plan.leaves.sort_by(by_folder);
    plan.leaves
        .par_chunks(FOLDER_RUN)
        .try_for_each(|run| run.iter().try_for_each(set_times))?;
    plan.dirs
        .par_chunks(FOLDER_RUN)
        .try_for_each(|run| run.iter().try_for_each(set_times))?;
    if let Some(root) = image.entries.first() {
        rustix::fs::futimens(&root_file, &timestamps(root))
            .map_err(|e| write_err(&target_abs)(e.into()))?;
    }

    if options.verify {
        reporter.verbose("Verifying the applied files");
        for (blob, dests) in &blobs {
            for d in dests {
                let Some(e) = image.entries.get(d.entry) else {
                    continue;
                };
                let name = image.name_of(e);
                let path = out.display(d.dir, name);
                let actual = out
                    .get(d.dir)
                    .and_then(|dir| hash_file(&dir, name))
                    .map_err(write_err(&path))?;
                if actual != blob.hash {
                    return Err(WimError::VerifyFailed { path });
                }
            }
        }
    }
    out.forget();

    summary.not_represented = sidecar::not_represented_of(&image);
    match &options.metadata_path {
        Some(path) => sidecar::write_streamed(path, wim, index, &image, &kept)?,
        None => sidecar::check_blobs(wim, &image, false)?,
    }
    Ok(summary)
}

/// Opens the apply folder: a handle to work in, and a file on the same
/// folder for setting its own times.
fn open_root(path: &Path) -> io::Result<(Dir, File)> {
    let file = File::open(path)?;
    let root = Dir::open(path)?;
    let (a, b) = (rustix::fs::fstat(&file)?, root.stat(Path::new(""))?);
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
        return Err(io::Error::other(
            "the apply folder was replaced while it was being opened",
        ));
    }
    Ok((root, file))
}

fn name_files(image: &Image, dests: &[Destination]) -> String {
    let names: Vec<String> = dests
        .iter()
        .map(|d| format!("'{}'", image.path_of(d.entry)))
        .collect();
    names.join(", ")
}

/// Creates the folders and empty files of the image, each folder through a
/// handle opened from its parent's handle (or, deeper than
/// [`HANDLES_DEPTH`], from the apply folder's) without following links,
/// and plans the rest.
fn build_tree(
    image: &Image,
    out: &mut OutDirs,
    reporter: &dyn Reporter,
    summary: &mut ApplySummary,
) -> Result<Plan, WimError> {
    let mut plan = Plan {
        dirs: Vec::new(),
        leaves: Vec::new(),
        destinations: FastMap::default(),
        hard_links: Vec::new(),
        links: Vec::new(),
    };
    let mut link_primary: FastMap<u64, usize> = FastMap::default();
    // Folders to fill, each with its parent's handle to open it from (one
    // step, no path walked from the apply folder); past a depth where the
    // handles held open could add up, a folder is opened from the top.
    let mut stack: Vec<(usize, usize, Option<Arc<Dir>>)> = vec![(0, 0, None)];
    let skip = |summary: &mut ApplySummary, path: String, why: &str| {
        reporter.warn(&format!("Skipping '{path}': {why}"));
        summary.skipped.push(path);
    };
    while let Some((dir, depth, parent)) = stack.pop() {
        let Some(d) = image.entries.get(dir) else {
            continue;
        };
        let opened = match parent {
            Some(parent) => parent.open_dir(name_path(image.name_of(d))),
            None => out.open(dir),
        };
        let here = Arc::new(opened.map_err(|source| WimError::Write {
            path: out.display_dir(dir),
            source,
        })?);
        let shared = (depth < HANDLES_DEPTH).then(|| Arc::clone(&here));
        let mut names: FastSet<&str> = FastSet::default();
        for child in d.children() {
            let Some(e) = image.entries.get(child) else {
                continue;
            };
            let e_name = image.name_of(e);
            if let Some(why) = unsafe_name(e_name, e.name_valid) {
                skip(summary, image.path_of(child), why);
                continue;
            }
            if !names.insert(e_name) {
                skip(
                    summary,
                    image.path_of(child),
                    "another entry of the same folder has the same name",
                );
                continue;
            }
            let name = name_path(e_name);
            let werr = |source| WimError::Write {
                path: out.display(dir, e_name),
                source,
            };
            if e.is_reparse_point() {
                if e.reparse_tag != IO_REPARSE_TAG_SYMLINK
                    && e.reparse_tag != IO_REPARSE_TAG_MOUNT_POINT
                {
                    skip(
                        summary,
                        image.path_of(child),
                        &format!(
                            "reparse points of tag {:#x} cannot be represented here (kept in the metadata file)",
                            e.reparse_tag
                        ),
                    );
                    continue;
                }
                plan.links.push(child);
            } else if e.is_directory() {
                match here.create_dir(name, DIR_MODE) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                        // Merge into a folder that was already there, never
                        // into a link.
                        if here.file_type(name).map_err(werr)? != Some(FileType::Directory) {
                            return Err(werr(io::Error::new(
                                io::ErrorKind::AlreadyExists,
                                "it exists and is not a folder",
                            )));
                        }
                    }
                    Err(err) => return Err(werr(err)),
                }
                summary.directories += 1;
                out.add(child, dir, e_name);
                plan.dirs.push(child);
                stack.push((child, depth + 1, shared.clone()));
            } else {
                summary.files += 1;
                if e.link_group != 0 {
                    if let Some(&primary) = link_primary.get(&e.link_group) {
                        plan.hard_links.push((primary, child));
                        continue;
                    }
                    link_primary.insert(e.link_group, child);
                }
                if e.data_hash == ZERO_HASH {
                    here.create_file(name, FILE_MODE).map_err(werr)?;
                    plan.leaves.push(child);
                } else {
                    plan.destinations
                        .entry(e.data_hash)
                        .or_default()
                        .push(Destination { dir, entry: child });
                }
            }
        }
    }
    Ok(plan)
}

/// The blobs holding the reparse data of `links`, by hash: each must be in
/// the file and small enough to be kept in memory, and all of them
/// together within [`sidecar::MAX_KEPT_BYTES`].
fn link_blobs<'w>(
    wim: &'w WimFile,
    image: &Image,
    links: &[usize],
) -> Result<FastMap<Sha1, &'w Blob>, WimError> {
    let mut found = FastMap::default();
    let mut total = 0u64;
    for &link in links {
        let Some(e) = image.entries.get(link) else {
            continue;
        };
        let hash = e.reparse_hash();
        if hash == ZERO_HASH || found.contains_key(&hash) {
            continue;
        }
        let Some(blob) = wim.blob(&hash) else {
            return Err(WimError::MissingBlob {
                path: wim.path().to_path_buf(),
                files: format!("'{}'", image.path_of(link)),
                hash: hex::encode(hash),
            });
        };
        if blob.size > MAX_REPARSE {
            return Err(WimError::Invalid {
                path: wim.path().to_path_buf(),
                reason: format!(
                    "the data of '{}' declares {} bytes, more than the {MAX_REPARSE} accepted",
                    image.path_of(link),
                    blob.size
                ),
            });
        }
        total = total.saturating_add(blob.size);
        if total > sidecar::MAX_KEPT_BYTES {
            return Err(WimError::Invalid {
                path: wim.path().to_path_buf(),
                reason: format!(
                    "the link targets of the image add up to more than the {} bytes accepted",
                    sidecar::MAX_KEPT_BYTES
                ),
            });
        }
        found.insert(hash, blob);
    }
    Ok(found)
}

fn hash_file(dir: &Dir, name: &str) -> io::Result<Sha1> {
    let mut f = dir.open_with(name_path(name), OFlags::RDONLY, 0)?;
    let mut h = Sha1Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or(&[]));
    }
    Ok(h.finalize().into())
}

/// A blob being written: the first of its files. The other files that use
/// the blob get its bytes once it is complete and checked, one at a time,
/// so a blob shared by thousands of files never holds more than two
/// descriptors: from its decoded bytes when they were all in memory at
/// once, else copied from the first file.
struct Open {
    file: Option<File>,
    /// The bytes so far, for the reparse data of links.
    kept: Option<Vec<u8>>,
}

/// Writes blobs to their files, checking each one's SHA-1 (made by the
/// stream).
struct Writer<'a> {
    wim: &'a WimFile,
    image: &'a Image,
    out: &'a OutDirs,
    blobs: &'a [(&'a Blob, Vec<Destination>)],
    /// Blobs to keep in memory (the reparse data of links), and what was kept.
    keep: &'a FastMap<Sha1, &'a Blob>,
    kept: Mutex<HashMap<Sha1, Vec<u8>>>,
    reporter: &'a dyn Reporter,
}

impl Writer<'_> {
    fn dests(&self, bi: usize) -> &[Destination] {
        self.blobs.get(bi).map_or(&[][..], |(_, d)| d.as_slice())
    }

    fn name(&self, d: &Destination) -> &str {
        self.image.name(d.entry)
    }

    /// The error for a failed write to `d` (its path made only then).
    fn write_error<'a>(&'a self, d: &'a Destination) -> impl FnOnce(io::Error) -> WimError + 'a {
        move |source| WimError::Write {
            path: self.out.display(d.dir, self.name(d)),
            source,
        }
    }

    /// Creates the file of destination `d` (readable too when `read`).
    fn create(&self, d: &Destination, read: bool) -> Result<File, WimError> {
        let access = if read { OFlags::RDWR } else { OFlags::WRONLY };
        self.out
            .get(d.dir)
            .and_then(|dir| {
                dir.open_with(
                    name_path(self.name(d)),
                    access | OFlags::CREATE | OFlags::EXCL,
                    FILE_MODE,
                )
            })
            .map_err(self.write_error(d))
    }

    /// Gives a blob's other files its bytes: `data` when they are still in
    /// memory, else a copy of the complete first file (`len` bytes).
    fn copy_to_others(
        &self,
        first: &mut File,
        len: u64,
        dests: &[Destination],
        data: Option<&[&[u8]]>,
    ) -> Result<(), WimError> {
        let Some(primary) = dests.first() else {
            return Ok(());
        };
        for d in dests.iter().skip(1) {
            let mut out = self.create(d, false)?;
            if let Some(data) = data {
                for slice in data {
                    out.write_all(slice).map_err(self.write_error(d))?;
                }
            } else if !copy_in_kernel(first, &out, len).map_err(self.write_error(d))? {
                first
                    .seek(SeekFrom::Start(0))
                    .map_err(self.write_error(primary))?;
                io::copy(first, &mut out).map_err(self.write_error(d))?;
            }
            self.set_times(&out, d)?;
        }
        Ok(())
    }

    /// Sets the times of destination `d`'s file, through its open handle
    /// (no path lookup), once all its data is written.
    fn set_times(&self, file: &File, d: &Destination) -> Result<(), WimError> {
        let Some(e) = self.image.entries.get(d.entry) else {
            return Ok(());
        };
        rustix::fs::futimens(file, &timestamps(e))
            .map_err(io::Error::from)
            .map_err(self.write_error(d))
    }
}

impl BlobSink for Writer<'_> {
    type State = Open;

    /// Creates the first file of blob `bi`.
    fn start(&self, bi: usize) -> Result<Open, WimError> {
        let file = match self.dests(bi).first() {
            Some(d) => Some(self.create(d, true)?),
            None => None,
        };
        let keep = self
            .blobs
            .get(bi)
            .is_some_and(|(b, _)| self.keep.contains_key(&b.hash));
        Ok(Open {
            file,
            kept: keep.then(Vec::new),
        })
    }

    /// Writes the next bytes of blob `bi`.
    fn write(&self, bi: usize, state: &mut Open, data: &[u8]) -> Result<(), WimError> {
        if let Some(kept) = &mut state.kept {
            // Checked against the declared size when the list was made.
            kept.extend_from_slice(data);
        }
        if let (Some(f), Some(d)) = (&mut state.file, self.dests(bi).first()) {
            f.write_all(data).map_err(self.write_error(d))?;
        }
        self.reporter.on_progress(data.len() as u64);
        Ok(())
    }

    /// Completes blob `bi` (see `complete`), its other files copied from
    /// its first.
    fn finish(&self, bi: usize, state: Open, hash: BlobHash) -> Result<u64, WimError> {
        self.complete(bi, state, hash, None)
    }

    /// Completes blob `bi`, its other files written from its bytes in
    /// memory, as its first was.
    fn finish_whole(
        &self,
        bi: usize,
        state: Open,
        hash: BlobHash,
        data: &[&[u8]],
    ) -> Result<u64, WimError> {
        self.complete(bi, state, hash, Some(data))
    }

    fn describe(&self, bi: usize) -> String {
        self.blobs
            .get(bi)
            .map(|(_, d)| name_files(self.image, d))
            .unwrap_or_default()
    }
}

impl Writer<'_> {
    /// Checks blob `bi`'s size and SHA-1 (`hash`, of the bytes written),
    /// then gives its other files their bytes (`data`, else copied from its
    /// first file); on a mismatch its file is removed. Returns the bytes
    /// written.
    fn complete(
        &self,
        bi: usize,
        state: Open,
        hash: BlobHash,
        data: Option<&[&[u8]]>,
    ) -> Result<u64, WimError> {
        let Some((blob, dests)) = self.blobs.get(bi) else {
            return Ok(0);
        };
        if let Err(e) = self
            .wim
            .check_hash(blob, hash, &|| name_files(self.image, dests))
        {
            drop(state.file);
            if let Some(d) = dests.first() {
                let _ = self
                    .out
                    .get(d.dir)
                    .and_then(|dir| dir.remove_file(name_path(self.name(d))));
            }
            return Err(e);
        }
        if let Some(mut first) = state.file {
            self.copy_to_others(&mut first, blob.size, dests, data)?;
            if let Some(primary) = dests.first() {
                // After the copies, which read it.
                self.set_times(&first, primary)?;
            }
            self.reporter.on_progress(
                blob.size
                    .saturating_mul(dests.len().saturating_sub(1) as u64),
            );
        }
        if let Some(kept) = state.kept {
            self.kept
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(blob.hash, kept);
        }
        Ok(blob.size.saturating_mul(dests.len() as u64))
    }
}

/// Copies the first `len` bytes of `from` to the empty file `to` inside the
/// kernel, reading at offsets (no seek, and no size query as `io::copy`
/// makes). Returns false, having copied nothing, where the system cannot.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn copy_in_kernel(from: &File, to: &File, len: u64) -> io::Result<bool> {
    use rustix::io::Errno;
    let mut at = 0u64;
    while at < len {
        let want = usize::try_from(len - at).unwrap_or(usize::MAX).min(1 << 30);
        match rustix::fs::copy_file_range(from, Some(&mut at), to, None, want) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file written first is shorter than its data",
                ))
            }
            Ok(_) => {}
            Err(Errno::NOSYS | Errno::XDEV | Errno::INVAL | Errno::OPNOTSUPP) if at == 0 => {
                return Ok(false)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn copy_in_kernel(_from: &File, _to: &File, _len: u64) -> io::Result<bool> {
    Ok(false)
}

/// Writes every blob to its destinations and keeps those of `keep` in
/// memory; returns the bytes written and the blobs kept.
fn write_blobs(
    wim: &WimFile,
    image: &Image,
    out: &OutDirs,
    blobs: &[(&Blob, Vec<Destination>)],
    keep: &FastMap<Sha1, &Blob>,
    reporter: &dyn Reporter,
) -> Result<(u64, HashMap<Sha1, Vec<u8>>), WimError> {
    let writer = Writer {
        wim,
        image,
        out,
        blobs,
        keep,
        kept: Mutex::new(HashMap::new()),
        reporter,
    };
    let list: Vec<&Blob> = blobs.iter().map(|(b, _)| *b).collect();
    let written = stream_blobs(wim, &list, &writer)?;
    let kept = writer.kept.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok((written, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names_are_recognised() {
        for (name, bad) in [
            ("ok", false),
            (".", true),
            ("..", true),
            ("a/b", true),
            ("a\\b", true),
            ("a\0b", true),
            ("", true),
            ("...", false),
        ] {
            assert_eq!(unsafe_name(name, true).is_some(), bad, "{name:?}");
        }
    }

    #[test]
    fn filetime_conversion() {
        let t =
            filetime_to_timespec(super::super::filetime::UNIX_EPOCH_FILETIME as u64 + 15_000_000);
        assert_eq!((t.tv_sec, t.tv_nsec), (1, 500_000_000));
        let t = filetime_to_timespec(0);
        assert_eq!(t.tv_sec, -11_644_473_600);
    }
}
