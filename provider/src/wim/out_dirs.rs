//! The folders of a tree being applied, worked in through open handles.
//!
//! Every folder of the image is reached from the apply folder's handle (or,
//! while the tree is made, from its parent's) without following any
//! symbolic link ([`Dir::open_dir`]), and every file,
//! link and time is made relative to its folder's handle. A folder swapped
//! for a link by another process while the apply runs is therefore an error
//! (`ELOOP`), never a way out of the tree. Handles of the folders being
//! filled are kept in a small cache, so files are not resolved from the
//! root one by one, and the number of open descriptors stays bounded
//! whatever the number of folders or files.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::FastMap;
use crate::fsutil::dir::Dir;

/// Folder handles kept open at most (besides those in use by a writer):
/// enough that a tree of a few hundred folders, filled in the order its
/// data is stored rather than folder by folder, rarely reopens one, but
/// never more than a quarter of the process's descriptor limit.
const CACHED_DIRS: usize = 256;

/// Descriptors an apply may hold open at once, rounded up to the table's
/// next size: the cached folders, those of the folders being made, and a
/// margin for the files being written on every core and the rest of the
/// process (512). Worth reserving with
/// [`crate::fsutil::reserve_descriptors`] before threads start.
pub const DESCRIPTORS: usize =
    (CACHED_DIRS + super::apply::HANDLES_DEPTH + DESCRIPTOR_MARGIN).next_power_of_two();

/// Descriptors besides folders: files being written, the WIM, the rest.
const DESCRIPTOR_MARGIN: usize = 64;

// The README gives this number.
const _: () = assert!(DESCRIPTORS == 512);

fn cached_dirs() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    CACHED_DIRS.min(limit / 4).max(8)
}

/// The apply folder and the folders created in it, by image entry.
pub(crate) struct OutDirs {
    root: Dir,
    /// The apply folder's absolute path, for messages.
    root_path: PathBuf,
    /// Each applied folder's path relative to the apply folder, by entry
    /// (`None`: not a folder of the applied tree).
    rel: Vec<Option<PathBuf>>,
    cache: Mutex<FastMap<usize, Arc<Dir>>>,
    /// How many handles the cache keeps.
    cache_size: usize,
}

impl OutDirs {
    /// `root` is the open apply folder (entry 0), `entries` the number of
    /// entries of the image.
    pub(crate) fn new(root: Dir, root_path: PathBuf, entries: usize) -> OutDirs {
        let mut rel = vec![None; entries];
        if let Some(slot) = rel.first_mut() {
            *slot = Some(PathBuf::new());
        }
        OutDirs {
            root,
            root_path,
            rel,
            cache: Mutex::new(FastMap::default()),
            cache_size: cached_dirs(),
        }
    }

    /// Records that entry `dir` is the folder `name` inside folder `parent`.
    pub(crate) fn add(&mut self, dir: usize, parent: usize, name: &str) {
        let rel = self
            .rel
            .get(parent)
            .and_then(Option::as_ref)
            .map(|p| p.join(name));
        if let Some(slot) = self.rel.get_mut(dir) {
            *slot = rel;
        }
    }

    /// The path of `name` in folder `dir`, relative to the apply folder.
    fn rel_path(&self, dir: usize, name: &str) -> io::Result<PathBuf> {
        self.rel
            .get(dir)
            .and_then(Option::as_ref)
            .map(|p| p.join(name))
            .ok_or_else(|| io::Error::other("the folder is not part of the applied tree"))
    }

    /// The absolute path of `name` in folder `dir`, for messages.
    pub(crate) fn display(&self, dir: usize, name: &str) -> PathBuf {
        match self.rel.get(dir).and_then(Option::as_ref) {
            Some(rel) => self.root_path.join(rel).join(name),
            None => self.root_path.join(name),
        }
    }

    /// The absolute path of folder `dir` itself, for messages.
    pub(crate) fn display_dir(&self, dir: usize) -> PathBuf {
        match self.rel.get(dir).and_then(Option::as_ref) {
            Some(rel) => self.root_path.join(rel),
            None => self.root_path.clone(),
        }
    }

    /// Opens folder `dir` from the apply folder, following no link (not
    /// cached: for walking the tree once).
    pub(crate) fn open(&self, dir: usize) -> io::Result<Dir> {
        let rel = self.rel_path(dir, "")?;
        self.root.open_dir(&rel)
    }

    /// A handle of folder `dir`, from the cache or opened from the apply
    /// folder without following any link.
    pub(crate) fn get(&self, dir: usize) -> io::Result<Arc<Dir>> {
        let lock = || self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = lock().get(&dir) {
            return Ok(Arc::clone(d));
        }
        let opened = Arc::new(self.open(dir)?);
        let mut cache = lock();
        if cache.len() >= self.cache_size {
            // Any one will do: writers holding it keep their own reference.
            if let Some(k) = cache.keys().next().copied() {
                cache.remove(&k);
            }
        }
        cache.insert(dir, Arc::clone(&opened));
        Ok(opened)
    }

    /// Closes every cached handle.
    pub(crate) fn forget(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// A name as a relative path of one component.
pub(crate) fn name_path(name: &str) -> &Path {
    Path::new(name)
}
