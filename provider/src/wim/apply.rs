//! Applying an image to a folder, the way `wimlib-imagex apply` does on
//! Linux.
//!
//! Order of work: the directory tree and empty files first; then every blob
//! once, in on-disk order, decoded in parallel batches and written to each
//! file that uses it (the reparse data of links is kept in memory in the
//! same pass, so a solid chunk holding it is not decoded twice); then
//! symbolic links, hard links and timestamps (directories last, deepest
//! first). Only folders created by this apply are written into, every file
//! is created with `create_new`, and links are made only once all data is
//! written, so nothing is ever written through a link or outside the target.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use filetime::FileTime;
use sha1::{Digest, Sha1 as Sha1Hasher};

use super::format::{IO_REPARSE_TAG_MOUNT_POINT, IO_REPARSE_TAG_SYMLINK, REPARSE_FLAG_NOT_FIXED};
use super::metadata::{Dentry, Image, Sha1, ZERO_HASH};

use super::stream::{disk_order, stream_blobs, BlobSink};
use super::{sidecar, ApplyOptions, ApplySummary, Blob, WimError, WimFile};
use crate::progress::Reporter;

/// Symbolic link reparse data flag: the substitute name is relative.
const SYMLINK_FLAG_RELATIVE: u32 = 1;

/// Largest reparse data accepted (Windows caps it at 16 KiB).
const MAX_REPARSE: u64 = 16 * 1024;

/// FILETIME of 1970-01-01 (100 ns units since 1601).
const UNIX_EPOCH_FILETIME: i64 = 116_444_736_000_000_000;

pub(crate) fn filetime_to_unix(ft: u64) -> FileTime {
    let t = i64::try_from(ft).unwrap_or(i64::MAX) - UNIX_EPOCH_FILETIME;
    let secs = t.div_euclid(10_000_000);
    let nanos = (t.rem_euclid(10_000_000) * 100) as u32;
    FileTime::from_unix_time(secs, nanos)
}

/// Why an entry is not applied, or `None` when its name is safe.
fn unsafe_name(entry: &Dentry) -> Option<&'static str> {
    let name = entry.name.as_str();
    if !entry.name_valid {
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

/// A file to write a blob into.
struct Destination {
    path: PathBuf,
    entry: usize,
}

struct Plan {
    /// Directories created, parents first (entry, path).
    dirs: Vec<(usize, PathBuf)>,
    /// Files, symlinks and hard links whose times are set (entry, path).
    leaves: Vec<(usize, PathBuf)>,
    /// Blob → the files that receive it.
    destinations: HashMap<Sha1, Vec<Destination>>,
    /// (existing file, new link) created after the data is written.
    hard_links: Vec<(PathBuf, PathBuf)>,
    /// Symbolic links and junctions, made after the data is written.
    links: Vec<PendingLink>,
}

/// A link to make once its reparse data has been read.
struct PendingLink {
    entry: usize,
    /// Its folder's entry (for relative targets).
    dir: usize,
    path: PathBuf,
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

    let mut summary = ApplySummary::default();
    let mut plan = build_tree(&image, &target_abs, reporter, &mut summary)?;

    // Data, in on-disk order: file contents and the reparse data of links.
    let mut blobs: Vec<(&Blob, Vec<Destination>)> = Vec::new();
    let mut destinations = plan.destinations;
    let mut hashes: Vec<Sha1> = destinations.keys().copied().collect();
    hashes.sort_unstable();
    for hash in hashes {
        let dests = destinations.remove(&hash).unwrap_or_default();
        let Some(blob) = wim.blob(&hash) else {
            return Err(WimError::MissingBlob {
                path: wim.path().to_path_buf(),
                files: name_files(&image, &dests),
                hash: hex::encode(hash),
            });
        };
        blobs.push((blob, dests));
    }
    // Blobs kept in memory: the reparse data of links, and for a metadata
    // file its reparse data and named streams, all read in this one pass.
    let mut keep = link_blobs(wim, &image, &plan.links)?;
    if options.metadata_path.is_some() {
        let held: u64 = keep.values().map(|b| b.size).sum();
        let already: HashMap<Sha1, usize> = keep.keys().map(|h| (*h, 0)).collect();
        let budget = sidecar::MAX_KEPT_BYTES.saturating_sub(held);
        for hash in sidecar::data_blobs(wim, &image, &already, budget).into_keys() {
            if let Some(blob) = wim.blob(&hash) {
                keep.insert(hash, blob);
            }
        }
    }
    let with_files: HashSet<Sha1> = blobs.iter().map(|(b, _)| b.hash).collect();
    for blob in keep.values() {
        if !with_files.contains(&blob.hash) {
            blobs.push((blob, Vec::new()));
        }
    }
    blobs.sort_by_key(|(b, _)| disk_order(wim, b));
    let total: u64 = blobs
        .iter()
        .map(|(b, d)| b.size.saturating_mul(d.len() as u64))
        .sum();
    reporter.on_start("Applying image", Some(total));
    let written = write_blobs(wim, &image, &blobs, &keep, reporter);
    reporter.on_complete();
    let (written, kept) = written?;
    summary.bytes = written;

    for link in &plan.links {
        let Some(e) = image.entries.get(link.entry) else {
            continue;
        };
        let data = kept.get(&e.reparse_hash).map_or(&[][..], Vec::as_slice);
        let depth = (!options.absolute_links).then(|| {
            image
                .path_of(link.dir)
                .split('/')
                .filter(|p| !p.is_empty())
                .count()
        });
        let Some(target) = link_target(data, e, wim.header().rp_fix, &target_abs, depth) else {
            let path = image.path_of(link.entry);
            reporter.warn(&format!("Skipping '{path}': its link target is unreadable"));
            summary.skipped.push(path);
            continue;
        };
        make_symlink(&target, &link.path).map_err(write_err(&link.path))?;
        summary.symlinks += 1;
        plan.leaves.push((link.entry, link.path.clone()));
    }

    for (existing, link) in &plan.hard_links {
        fs::hard_link(existing, link).map_err(write_err(link))?;
        summary.hard_links += 1;
    }

    // Timestamps: leaves, then directories deepest first, then the root.
    for (entry, path) in &plan.leaves {
        if let Some(e) = image.entries.get(*entry) {
            set_times(path, e).map_err(write_err(path))?;
        }
    }
    for (entry, path) in plan.dirs.iter().rev() {
        if let Some(e) = image.entries.get(*entry) {
            set_times(path, e).map_err(write_err(path))?;
        }
    }
    if let Some(root) = image.entries.first() {
        set_times(&target_abs, root).map_err(write_err(&target_abs))?;
    }

    if options.verify {
        reporter.verbose("Verifying the applied files");
        for (blob, dests) in &blobs {
            for d in dests {
                if hash_file(&d.path).map_err(write_err(&d.path))? != blob.hash {
                    return Err(WimError::VerifyFailed {
                        path: d.path.clone(),
                    });
                }
            }
        }
    }

    let meta = sidecar::build_from(wim, index, &image, options.metadata_path.is_some(), &kept)?;
    summary.not_represented = meta.not_represented();
    if let Some(path) = &options.metadata_path {
        meta.write(path)?;
    }
    Ok(summary)
}

fn name_files(image: &Image, dests: &[Destination]) -> String {
    let names: Vec<String> = dests
        .iter()
        .map(|d| format!("'{}'", image.path_of(d.entry)))
        .collect();
    names.join(", ")
}

fn build_tree(
    image: &Image,
    target: &Path,
    reporter: &dyn Reporter,
    summary: &mut ApplySummary,
) -> Result<Plan, WimError> {
    let mut plan = Plan {
        dirs: Vec::new(),
        leaves: Vec::new(),
        destinations: HashMap::new(),
        hard_links: Vec::new(),
        links: Vec::new(),
    };
    // Output path of each applied directory entry (None: skipped).
    let mut out: Vec<Option<PathBuf>> = vec![None; image.entries.len()];
    if let Some(slot) = out.first_mut() {
        *slot = Some(target.to_path_buf());
    }
    let mut link_primary: HashMap<u64, PathBuf> = HashMap::new();
    let mut stack: Vec<usize> = vec![0];
    let skip = |summary: &mut ApplySummary, path: String, why: &str| {
        reporter.warn(&format!("Skipping '{path}': {why}"));
        summary.skipped.push(path);
    };
    while let Some(dir) = stack.pop() {
        let Some(Some(dir_path)) = out.get(dir).cloned() else {
            continue;
        };
        let Some(d) = image.entries.get(dir) else {
            continue;
        };
        let mut names: HashSet<&str> = HashSet::new();
        for &child in &d.children {
            let Some(e) = image.entries.get(child) else {
                continue;
            };
            if let Some(why) = unsafe_name(e) {
                skip(summary, image.path_of(child), why);
                continue;
            }
            if !names.insert(e.name.as_str()) {
                skip(
                    summary,
                    image.path_of(child),
                    "another entry of the same folder has the same name",
                );
                continue;
            }
            let path = dir_path.join(&e.name);
            let werr = |source| WimError::Write {
                path: path.clone(),
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
                plan.links.push(PendingLink {
                    entry: child,
                    dir,
                    path,
                });
            } else if e.is_directory() {
                match fs::create_dir(&path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                        // Merge into a folder that was already there, never
                        // into a link.
                        let meta = fs::symlink_metadata(&path).map_err(werr)?;
                        if !meta.is_dir() {
                            return Err(werr(err));
                        }
                    }
                    Err(err) => return Err(werr(err)),
                }
                summary.directories += 1;
                if let Some(slot) = out.get_mut(child) {
                    *slot = Some(path.clone());
                }
                plan.dirs.push((child, path));
                stack.push(child);
            } else {
                summary.files += 1;
                if e.link_group != 0 {
                    if let Some(primary) = link_primary.get(&e.link_group) {
                        plan.hard_links.push((primary.clone(), path));
                        continue;
                    }
                    link_primary.insert(e.link_group, path.clone());
                }
                if e.data_hash == ZERO_HASH {
                    create_file(&path).map_err(werr)?;
                } else {
                    plan.destinations
                        .entry(e.data_hash)
                        .or_default()
                        .push(Destination {
                            path: path.clone(),
                            entry: child,
                        });
                }
                plan.leaves.push((child, path));
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
    links: &[PendingLink],
) -> Result<HashMap<Sha1, &'w Blob>, WimError> {
    let mut found = HashMap::new();
    let mut total = 0u64;
    for link in links {
        let Some(e) = image.entries.get(link.entry) else {
            continue;
        };
        if e.reparse_hash == ZERO_HASH || found.contains_key(&e.reparse_hash) {
            continue;
        }
        let Some(blob) = wim.blob(&e.reparse_hash) else {
            return Err(WimError::MissingBlob {
                path: wim.path().to_path_buf(),
                files: format!("'{}'", image.path_of(link.entry)),
                hash: hex::encode(e.reparse_hash),
            });
        };
        if blob.size > MAX_REPARSE {
            return Err(WimError::Invalid {
                path: wim.path().to_path_buf(),
                reason: format!(
                    "the data of '{}' declares {} bytes, more than the {MAX_REPARSE} accepted",
                    image.path_of(link.entry),
                    blob.size
                ),
            });
        }
        total += blob.size;
        if total > sidecar::MAX_KEPT_BYTES {
            return Err(WimError::Invalid {
                path: wim.path().to_path_buf(),
                reason: format!(
                    "the link targets of the image add up to more than the {} bytes accepted",
                    sidecar::MAX_KEPT_BYTES
                ),
            });
        }
        found.insert(e.reparse_hash, blob);
    }
    Ok(found)
}

fn utf16_at(buf: &[u8], offset: usize, len: usize) -> Option<String> {
    let bytes = buf.get(offset..offset.checked_add(len)?)?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

/// The Linux link target for a symbolic link or junction's reparse data
/// (without its 8-byte header), as `wimlib-imagex apply` writes it on
/// Linux. Only the substitute name is used (never the print name):
/// - a symbolic link flagged relative keeps its name as stored;
/// - otherwise a `\??\` prefix is removed together with the device that
///   follows it up to the next backslash (`C:`, `UNC`, `Volume{…}`), so
///   `\??\C:\x` gives `\x` and `\??\UNC\server\share` gives
///   `\server\share`; any other name (`C:\x`, `\\server\share`,
///   `\\?\C:\x`) is kept whole;
/// - backslashes become slashes and slashes backslashes;
/// - when the file was captured with reparse-point fixing (RP_FIX) and the
///   link was fixed, the apply folder's absolute path is put in front, as
///   text (`C:\etc` gives `<folder>C:/etc`, as wimlib does); with
///   `relative_depth` (the depth of the link's folder below the image root)
///   a target starting with `/` is made relative to the link's folder
///   instead, so the tree can be moved;
/// - an empty result is `/`.
///
/// `None` when the reparse data is unreadable or the name holds NUL.
pub(crate) fn link_target(
    data: &[u8],
    e: &Dentry,
    rp_fix: bool,
    target: &Path,
    relative_depth: Option<usize>,
) -> Option<String> {
    let u16_at = |o: usize| -> Option<usize> {
        Some(usize::from(u16::from_le_bytes([
            *data.get(o)?,
            *data.get(o + 1)?,
        ])))
    };
    let (sub_off, sub_len) = (u16_at(0)?, u16_at(2)?);
    let (relative, names_start) = if e.reparse_tag == IO_REPARSE_TAG_SYMLINK {
        let flags = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
        (flags & SYMLINK_FLAG_RELATIVE != 0, 12)
    } else {
        (false, 8)
    };
    let name = utf16_at(data, names_start + sub_off, sub_len)?;
    if name.contains('\0') {
        return None;
    }
    let mut rest = name.as_str();
    if !relative {
        if let Some(after) = rest.strip_prefix("\\??\\") {
            rest = after.find('\\').map_or("", |i| &after[i..]);
        }
    }
    let path: String = rest
        .chars()
        .map(|c| match c {
            '\\' => '/',
            '/' => '\\',
            c => c,
        })
        .collect();
    if !relative && rp_fix && e.reparse_flags & REPARSE_FLAG_NOT_FIXED == 0 {
        match (relative_depth, path.strip_prefix('/')) {
            (Some(depth), Some(inside)) => {
                // From the link's folder up to the image root, then down.
                let inside = inside.trim_end_matches('/');
                let mut up: Vec<&str> = vec![".."; depth];
                if !inside.is_empty() {
                    up.push(inside);
                }
                return Some(if up.is_empty() {
                    ".".to_string()
                } else {
                    up.join("/")
                });
            }
            (Some(_), None) if !path.is_empty() => return Some(path),
            _ => return Some(format!("{}{path}", target.to_string_lossy())),
        }
    }
    Some(if path.is_empty() {
        "/".to_string()
    } else {
        path
    })
}

#[cfg(unix)]
fn make_symlink(link: &str, path: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(link, path)
}

#[cfg(not(unix))]
fn make_symlink(_link: &str, _path: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symbolic links are only applied on Unix",
    ))
}

fn create_file(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

fn create_rw_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
}

fn set_times(path: &Path, e: &Dentry) -> io::Result<()> {
    filetime::set_symlink_file_times(
        path,
        filetime_to_unix(e.last_access_time),
        filetime_to_unix(e.last_write_time),
    )
}

fn hash_file(path: &Path) -> io::Result<Sha1> {
    let mut f = File::open(path)?;
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

/// A blob being written: the first of its files and the running hash. The
/// other files that use the blob get a copy once it is complete and
/// checked, one at a time, so a blob shared by thousands of files never
/// holds more than two descriptors.
struct Open {
    file: Option<File>,
    hasher: Sha1Hasher,
    got: u64,
    /// The bytes so far, for the reparse data of links.
    kept: Option<Vec<u8>>,
}

/// Writes blobs to their files, checking each one's SHA-1.
struct Writer<'a> {
    wim: &'a WimFile,
    image: &'a Image,
    blobs: &'a [(&'a Blob, Vec<Destination>)],
    /// Blobs to keep in memory (the reparse data of links), and what was kept.
    keep: &'a HashMap<Sha1, &'a Blob>,
    kept: Mutex<HashMap<Sha1, Vec<u8>>>,
    reporter: &'a dyn Reporter,
}

impl Writer<'_> {
    fn dests(&self, bi: usize) -> &[Destination] {
        self.blobs.get(bi).map_or(&[][..], |(_, d)| d.as_slice())
    }

    /// Copies the complete first file of a blob to its other files.
    fn copy_to_others(&self, first: &mut File, dests: &[Destination]) -> Result<(), WimError> {
        for d in dests.iter().skip(1) {
            let werr = |source| WimError::Write {
                path: d.path.clone(),
                source,
            };
            first
                .seek(SeekFrom::Start(0))
                .map_err(|source| WimError::Write {
                    path: dests.first().map(|f| f.path.clone()).unwrap_or_default(),
                    source,
                })?;
            let mut out = create_file(&d.path).map_err(werr)?;
            io::copy(first, &mut out).map_err(werr)?;
        }
        Ok(())
    }
}

impl BlobSink for Writer<'_> {
    type State = Open;

    /// Creates the first file of blob `bi`.
    fn start(&self, bi: usize) -> Result<Open, WimError> {
        let file = match self.dests(bi).first() {
            Some(d) => Some(create_rw_file(&d.path).map_err(|source| WimError::Write {
                path: d.path.clone(),
                source,
            })?),
            None => None,
        };
        let keep = self
            .blobs
            .get(bi)
            .is_some_and(|(b, _)| self.keep.contains_key(&b.hash));
        Ok(Open {
            file,
            hasher: Sha1Hasher::new(),
            got: 0,
            kept: keep.then(Vec::new),
        })
    }

    fn write(&self, bi: usize, state: &mut Open, data: &[u8]) -> Result<(), WimError> {
        let dests = self.dests(bi);
        state.hasher.update(data);
        state.got += data.len() as u64;
        if let Some(kept) = &mut state.kept {
            // Checked against the declared size when the list was made.
            kept.extend_from_slice(data);
        }
        if let (Some(f), Some(d)) = (&mut state.file, dests.first()) {
            f.write_all(data).map_err(|source| WimError::Write {
                path: d.path.clone(),
                source,
            })?;
        }
        self.reporter.on_progress(data.len() as u64);
        Ok(())
    }

    /// Checks blob `bi`'s size and SHA-1, then copies it to the blob's
    /// other files; on a mismatch its file is removed. Returns the bytes
    /// written.
    fn finish(&self, bi: usize, state: Open) -> Result<u64, WimError> {
        let Some((blob, dests)) = self.blobs.get(bi) else {
            return Ok(0);
        };
        let actual: [u8; 20] = state.hasher.finalize().into();
        if state.got != blob.size || actual != blob.hash {
            drop(state.file);
            if let Some(d) = dests.first() {
                let _ = fs::remove_file(&d.path);
            }
            return Err(WimError::HashMismatch {
                path: self.wim.path().to_path_buf(),
                files: name_files(self.image, dests),
                expected: hex::encode(blob.hash),
                actual: if state.got != blob.size {
                    format!("{} bytes instead of {}", state.got, blob.size)
                } else {
                    hex::encode(actual)
                },
            });
        }
        if let Some(mut first) = state.file {
            self.copy_to_others(&mut first, dests)?;
            self.reporter
                .on_progress(blob.size * dests.len().saturating_sub(1) as u64);
        }
        if let Some(kept) = state.kept {
            self.kept
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(blob.hash, kept);
        }
        Ok(blob.size * dests.len() as u64)
    }

    fn describe(&self, bi: usize) -> String {
        self.blobs
            .get(bi)
            .map(|(_, d)| name_files(self.image, d))
            .unwrap_or_default()
    }
}

/// Writes every blob to its destinations and keeps those of `keep` in
/// memory; returns the bytes written and the blobs kept.
fn write_blobs(
    wim: &WimFile,
    image: &Image,
    blobs: &[(&Blob, Vec<Destination>)],
    keep: &HashMap<Sha1, &Blob>,
    reporter: &dyn Reporter,
) -> Result<(u64, HashMap<Sha1, Vec<u8>>), WimError> {
    let writer = Writer {
        wim,
        image,
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

    fn reparse(tag: u32, name: &str, relative: bool) -> Vec<u8> {
        let units: Vec<u8> = name.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let len = units.len() as u16;
        let mut d = Vec::new();
        for v in [0u16, len, len + 2, len] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        if tag == IO_REPARSE_TAG_SYMLINK {
            d.extend_from_slice(&u32::from(relative).to_le_bytes());
        }
        d.extend_from_slice(&units);
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(&units);
        d
    }

    fn dentry(tag: u32, flags: u16) -> Dentry {
        Dentry {
            name: "l".into(),
            name_valid: true,
            short_name: String::new(),
            attributes: 0x400,
            security_id: u32::MAX,
            creation_time: 0,
            last_access_time: 0,
            last_write_time: 0,
            data_hash: ZERO_HASH,
            reparse_hash: ZERO_HASH,
            reparse_tag: tag,
            reparse_flags: flags,
            link_group: 0,
            named_streams: Vec::new(),
            object_id: None,
            unix: None,
            offset: 0,
            parent: 0,
            children: Vec::new(),
        }
    }

    #[test]
    fn link_targets_are_translated_like_wimlib() {
        let t = Path::new("/apply/here");
        let sym = IO_REPARSE_TAG_SYMLINK;
        let cases = [
            // (tag, stored name, relative flag, entry flags, rp_fix, expected)
            (sym, "..\\a.txt", true, 0, true, "../a.txt"),
            (sym, "\\??\\C:\\d1\\d2", false, 0, true, "/apply/here/d1/d2"),
            (
                sym,
                "\\??\\C:\\etc\\passwd",
                false,
                REPARSE_FLAG_NOT_FIXED,
                true,
                "/etc/passwd",
            ),
            (sym, "\\??\\C:\\d1", false, 0, false, "/d1"),
            (sym, "\\??\\C:\\", false, 0, true, "/apply/here/"),
            (sym, "\\??\\C:", false, 0, true, "/apply/here"),
            (sym, "C:\\etc", false, 0, true, "/apply/hereC:/etc"),
            (sym, "\\??\\UNC\\srv\\share", false, 0, false, "/srv/share"),
            (sym, "\\\\srv\\share", false, 0, false, "//srv/share"),
            (sym, "\\??\\C:\\x", true, 0, true, "/??/C:/x"),
            (sym, "/fwd", true, 0, true, "\\fwd"),
            (sym, "", false, 0, false, "/"),
            (sym, "", false, 0, true, "/apply/here"),
            (
                IO_REPARSE_TAG_MOUNT_POINT,
                "\\??\\C:\\Users",
                false,
                0,
                true,
                "/apply/here/Users",
            ),
        ];
        for (tag, name, relative, flags, rp_fix, expected) in cases {
            let data = reparse(tag, name, relative);
            let got = link_target(&data, &dentry(tag, flags), rp_fix, t, None);
            assert_eq!(got.as_deref(), Some(expected), "{name}");
        }
        assert_eq!(
            link_target(&[1, 2, 3], &dentry(sym, 0), true, t, None),
            None
        );
        assert_eq!(
            link_target(&reparse(sym, "a\0b", true), &dentry(sym, 0), true, t, None),
            None
        );
    }

    #[test]
    fn fixed_links_can_be_made_relative() {
        let t = Path::new("/apply/here");
        let sym = IO_REPARSE_TAG_SYMLINK;
        let cases = [
            ("\\??\\C:\\d1\\d2", 0, "d1/d2"),
            ("\\??\\C:\\d1\\d2", 2, "../../d1/d2"),
            ("\\??\\C:\\", 0, "."),
            ("\\??\\C:\\", 1, ".."),
        ];
        for (name, depth, expected) in cases {
            let data = reparse(sym, name, false);
            let got = link_target(&data, &dentry(sym, 0), true, t, Some(depth));
            assert_eq!(got.as_deref(), Some(expected), "{name} at depth {depth}");
        }
        // Links that were not fixed at capture stay absolute.
        let data = reparse(sym, "\\??\\C:\\etc", false);
        let got = link_target(
            &data,
            &dentry(sym, REPARSE_FLAG_NOT_FIXED),
            true,
            t,
            Some(3),
        );
        assert_eq!(got.as_deref(), Some("/etc"));
    }

    #[test]
    fn unsafe_names_are_recognised() {
        let mut e = dentry(0, 0);
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
            e.name = name.into();
            assert_eq!(unsafe_name(&e).is_some(), bad, "{name:?}");
        }
    }

    #[test]
    fn filetime_conversion() {
        let t = filetime_to_unix(UNIX_EPOCH_FILETIME as u64 + 15_000_000);
        assert_eq!((t.unix_seconds(), t.nanoseconds()), (1, 500_000_000));
        let t = filetime_to_unix(0);
        assert_eq!(t.unix_seconds(), -11_644_473_600);
    }
}
