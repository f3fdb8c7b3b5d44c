//! Move-ContainerImageRepository: moving the whole store elsewhere.
//!
//! A journal (`<home>/store-move.json`, naming both places) is written before
//! anything moves and deleted last. The store is renamed into place when the
//! destination is on the same file system, else copied to `<dest>.moving`
//! and renamed; only then does the configuration change and the old copy go.
//! If the move is interrupted, the next command finishes it when the
//! destination is complete and otherwise rolls it back, so the store is
//! always usable at one of the two places.
//!
//! The journal is not trusted to name what may be deleted: before anything
//! moves, a marker file (`.store-move`) holding the journal's random token is
//! written into the store, so the copies carry it too. Recovery deletes a
//! folder (the old copy, or an unfinished `<dest>.moving`) only when that
//! folder holds the marker with the journal's token; a journal naming any
//! other folder deletes nothing.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::{io_err, test_pause, Store, StoreError, STAGING_DIR, TRASH_DIR};
use crate::config::Home;
use crate::progress::Reporter;

/// The journal of a move in progress, in the home folder.
pub const MOVE_JOURNAL: &str = "store-move.json";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Journal {
    from: PathBuf,
    to: PathBuf,
    /// The token of the marker written into the store being moved; a
    /// journal without one (or whose folders lack it) deletes nothing.
    #[serde(default)]
    token: String,
    /// The folders this move created to hold `to` (deepest first): the
    /// configuration keeps them, so that moving away again removes them
    /// when they are left empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    created: Vec<PathBuf>,
}

/// The marker file in a store being moved (see the module documentation).
const MARKER: &str = ".store-move";

/// Whether `dir` is a store folder that this move marked.
fn carries_marker(dir: &Path, token: &str) -> bool {
    if token.is_empty() {
        return false;
    }
    crate::fsutil::dir::Dir::open(dir)
        .and_then(|d| d.read_limited(Path::new(MARKER), 1024))
        .is_ok_and(|bytes| bytes == token.as_bytes())
}

fn remove_marker(dir: &Path) {
    if let Ok(d) = crate::fsutil::dir::Dir::open(dir) {
        let _ = d.remove_file(Path::new(MARKER));
    }
}

fn moving_path(to: &Path) -> PathBuf {
    let mut name = to.file_name().unwrap_or_default().to_os_string();
    name.push(".moving");
    to.with_file_name(name)
}

pub(super) fn relocate(
    store: &Store,
    dest: &Path,
    reporter: &dyn Reporter,
) -> Result<PathBuf, StoreError> {
    let bad = |reason: String| StoreError::MoveTarget {
        path: dest.to_path_buf(),
        reason,
    };
    let dest = if dest.is_absolute() {
        dest.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| bad(format!("cannot tell the current folder: {e}")))?
            .join(dest)
    };
    if fs::symlink_metadata(&dest).is_ok() {
        return Err(bad("it already exists; choose a path that does not".into()));
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| bad("it has no parent folder".into()))?;
    let created = missing_folders(parent);
    if let Err(e) = fs::create_dir_all(parent) {
        remove_if_empty(&created);
        return Err(io_err("create", parent)(e));
    }
    let moved = move_store(store, &dest, parent, created.clone(), reporter);
    if moved.is_err() {
        remove_if_empty(&created);
    }
    moved
}

/// The folders from `path` up that do not exist yet, deepest first.
fn missing_folders(path: &Path) -> Vec<PathBuf> {
    path.ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && fs::symlink_metadata(p).is_err())
        .map(Path::to_path_buf)
        .collect()
}

/// Removes each folder of `folders` (deepest first) while it is empty; a
/// folder that holds anything stops the walk.
fn remove_if_empty(folders: &[PathBuf]) {
    for folder in folders {
        if fs::remove_dir(folder).is_err() {
            break;
        }
    }
}

fn move_store(
    store: &Store,
    dest: &Path,
    parent: &Path,
    created: Vec<PathBuf>,
    reporter: &dyn Reporter,
) -> Result<PathBuf, StoreError> {
    let bad = |reason: String| StoreError::MoveTarget {
        path: dest.to_path_buf(),
        reason,
    };
    let from = store.root().to_path_buf();
    fs::create_dir_all(&from).map_err(io_err("create", &from))?;
    let from = fs::canonicalize(&from).map_err(io_err("resolve", &from))?;
    let dest = fs::canonicalize(parent)
        .map_err(io_err("resolve", parent))?
        .join(dest.file_name().unwrap_or_default());
    if dest.starts_with(&from) {
        return Err(bad("it is inside the store".into()));
    }
    let home = store.home();
    if home.root().starts_with(&from) {
        return Err(bad(
            "the store folder holds the configuration; set CONTAINERIMAGE_HOME elsewhere first"
                .into(),
        ));
    }

    let journal_path = home.root().join(MOVE_JOURNAL);
    let token = hex::encode(sha2::Sha256::digest(format!(
        "{}:{}:{:?}",
        std::process::id(),
        from.display(),
        std::time::SystemTime::now()
    )));
    crate::fsutil::dir::Dir::open(&from)
        .and_then(|d| d.write_atomic(Path::new(MARKER), token.as_bytes()))
        .map_err(io_err("mark the store in", &from))?;
    let journal = Journal {
        from: from.clone(),
        to: dest.clone(),
        token,
        created,
    };
    let bytes = serde_json::to_vec_pretty(&journal).map_err(|e| StoreError::Io {
        what: "encode",
        path: journal_path.clone(),
        source: io::Error::other(e),
    })?;
    crate::fsutil::write_atomic(&journal_path, &bytes)
        .map_err(io_err("write the move journal", &journal_path))?;
    test_pause("move-started", reporter);

    let copied = match fs::rename(&from, &dest) {
        Ok(()) => false,
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            reporter.verbose(&format!(
                "{} is on another file system: copying the store",
                dest.display()
            ));
            let tmp = moving_path(&dest);
            if fs::symlink_metadata(&tmp).is_ok() {
                fs::remove_dir_all(&tmp).map_err(io_err("remove", &tmp))?;
            }
            if let Err(e) = copy_tree(&from, &tmp) {
                let _ = fs::remove_dir_all(&tmp);
                let _ = fs::remove_file(&journal_path);
                remove_marker(&from);
                return Err(StoreError::Io {
                    what: "copy the store to",
                    path: tmp,
                    source: e,
                });
            }
            test_pause("move-copied", reporter);
            fs::rename(&tmp, &dest).map_err(io_err("rename into place", &dest))?;
            true
        }
        Err(source) => {
            let _ = fs::remove_file(&journal_path);
            remove_marker(&from);
            return Err(StoreError::Io {
                what: "move the store to",
                path: dest,
                source,
            });
        }
    };
    test_pause("move-renamed", reporter);
    finish(home, &journal, copied, reporter)?;
    Ok(dest)
}

/// Points the configuration at `to`, removes the old copy and the journal.
fn finish(
    home: &Home,
    journal: &Journal,
    remove_from: bool,
    reporter: &dyn Reporter,
) -> Result<(), StoreError> {
    let (from, to) = (journal.from.as_path(), journal.to.as_path());
    let mut config = home.load()?;
    let default = home.store_path(&crate::config::Config::default());
    config.store = (to != default).then(|| to.to_path_buf());
    let old_parents = std::mem::replace(&mut config.store_parents, journal.created.clone());
    home.save(&config)?;
    remove_marker(to);
    if remove_from && from != to && from.exists() && !carries_marker(from, &journal.token) {
        reporter.warn(&format!(
            "the store now lives in {}; {} is not the store this move started from, so it is left alone",
            to.display(),
            from.display()
        ));
    } else if remove_from && from != to && from.exists() {
        if let Err(e) = fs::remove_dir_all(from) {
            reporter.warn(&format!(
                "the store now lives in {}, but the old copy {} could not be deleted: {e}",
                to.display(),
                from.display()
            ));
        }
    }
    if from != to && !from.exists() {
        // Folders an earlier move made for the old place, now empty.
        let mut old_parents = old_parents;
        old_parents.retain(|p| !to.starts_with(p));
        remove_if_empty(&old_parents);
    }
    let journal = home.root().join(MOVE_JOURNAL);
    fs::remove_file(&journal).map_err(io_err("remove", &journal))?;
    Ok(())
}

/// Finishes or rolls back a move that was interrupted. Called under the lock.
pub(super) fn recover(home: &Home, reporter: &dyn Reporter) -> Result<(), StoreError> {
    let path = home.root().join(MOVE_JOURNAL);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Io {
                what: "read",
                path,
                source,
            })
        }
    };
    let Ok(journal) = serde_json::from_slice::<Journal>(&bytes) else {
        // Written atomically, so damage means it was never valid: nothing moved.
        reporter.warn("ignoring an unreadable store move journal");
        return fs::remove_file(&path).map_err(io_err("remove", &path));
    };
    // The journal names two folders; only ones this move marked count.
    let configured = home.store_path(&home.load()?);
    let to_marked = carries_marker(&journal.to, &journal.token);
    if journal.to.is_dir() && (to_marked || configured == journal.to) {
        reporter.warn(&format!(
            "finishing an interrupted move of the image store to {}",
            journal.to.display()
        ));
        finish(home, &journal, true, reporter)
    } else {
        reporter.warn(&format!(
            "an interrupted move of the image store was rolled back; the store stays in {}",
            configured.display()
        ));
        let tmp = moving_path(&journal.to);
        if tmp.exists() && carries_marker(&tmp, &journal.token) {
            fs::remove_dir_all(&tmp).map_err(io_err("remove", &tmp))?;
        }
        remove_marker(&configured);
        fs::remove_file(&path).map_err(io_err("remove", &path))
    }
}

/// Copies a tree without following links, keeping hard links, permissions
/// and modification times. Staging and trash folders are not copied.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let mut links = std::collections::HashMap::new();
    copy_dir(from, to, true, &mut links)
}

fn copy_dir(
    from: &Path,
    to: &Path,
    top: bool,
    links: &mut std::collections::HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    fs::create_dir(to)?;
    for item in fs::read_dir(from)? {
        let item = item?;
        let name = item.file_name();
        if top && (name == STAGING_DIR || name == TRASH_DIR) {
            continue;
        }
        let src = item.path();
        let dst = to.join(&name);
        let meta = fs::symlink_metadata(&src)?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            copy_symlink(&src, &dst)?;
        } else if ft.is_dir() {
            copy_dir(&src, &dst, false, links)?;
        } else {
            match hard_link_key(&meta) {
                Some(key) => match links.get(&key) {
                    Some(first) => fs::hard_link(first, &dst)?,
                    None => {
                        copy_file(&src, &dst, &meta)?;
                        links.insert(key, dst);
                    }
                },
                None => copy_file(&src, &dst, &meta)?,
            }
        }
    }
    let meta = fs::metadata(from)?;
    filetime::set_file_mtime(to, filetime::FileTime::from_last_modification_time(&meta))?;
    Ok(())
}

fn copy_file(src: &Path, dst: &Path, meta: &fs::Metadata) -> io::Result<()> {
    fs::copy(src, dst)?;
    filetime::set_file_times(
        dst,
        filetime::FileTime::from_last_access_time(meta),
        filetime::FileTime::from_last_modification_time(meta),
    )
}

#[cfg(unix)]
fn copy_symlink(src: &Path, dst: &Path) -> io::Result<()> {
    let target = fs::read_link(src)?;
    std::os::unix::fs::symlink(target, dst)?;
    if let Ok(meta) = fs::symlink_metadata(src) {
        let _ = filetime::set_symlink_file_times(
            dst,
            filetime::FileTime::from_last_access_time(&meta),
            filetime::FileTime::from_last_modification_time(&meta),
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn copy_symlink(src: &Path, _dst: &Path) -> io::Result<()> {
    Err(io::Error::other(format!(
        "cannot copy the symbolic link {}",
        src.display()
    )))
}

#[cfg(unix)]
fn hard_link_key(meta: &fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    (meta.nlink() > 1).then(|| (meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn hard_link_key(_meta: &fs::Metadata) -> Option<(u64, u64)> {
    None
}

#[cfg(test)]
pub(super) fn copy_tree_for_test(from: &Path, to: &Path) -> io::Result<()> {
    copy_tree(from, to)
}
