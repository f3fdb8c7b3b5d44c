//! Cleaning up after a command that was interrupted (crash, `kill -9`, power
//! loss), and rebuilding a lost or damaged index: run by whoever takes the
//! store lock, before anything else.
//!
//! The image folders' own records decide what is installed. The index only
//! orders and summarises them, so nothing here deletes an image because the
//! index lacks it.

use std::io;
use std::path::Path;

use rustix::fs::FileType;

use super::index::{Index, Loaded};
use super::{read_record, ImageRecord, StoreError, CACHE_DIR, STAGING_DIR, TRASH_DIR};
use crate::fsutil::dir::Dir;
use crate::progress::Reporter;

/// The index and the published folders, made to agree.
pub(super) struct Reconciled {
    pub images: Vec<ImageRecord>,
    /// Records of the index whose folder is gone or holds another install.
    pub dropped: Vec<String>,
    /// Published folders the index did not list.
    pub adopted: Vec<String>,
}

/// What is installed: every published folder with a good record, in the
/// index's order, then the ones the index lacks by name.
pub(super) fn reconcile(listed: Vec<ImageRecord>, mut published: Vec<ImageRecord>) -> Reconciled {
    let mut images = Vec::with_capacity(published.len());
    let mut dropped = Vec::new();
    for r in listed {
        match published.iter().position(|p| p.full_name == r.full_name) {
            Some(i) => {
                let on_disk = published.swap_remove(i);
                if on_disk.install_token != r.install_token {
                    dropped.push(r.full_name.clone());
                }
                images.push(on_disk);
            }
            None => dropped.push(r.full_name),
        }
    }
    published.sort_by(|a, b| a.full_name.cmp(&b.full_name));
    let adopted = published.iter().map(|r| r.full_name.clone()).collect();
    images.extend(published);
    Reconciled {
        images,
        dropped,
        adopted,
    }
}

/// The records of the published image folders. Folders without a record are
/// not images (left alone); a damaged record is reported and skipped.
pub(super) fn published_records(
    root: &Dir,
    reporter: &dyn Reporter,
) -> Result<Vec<ImageRecord>, StoreError> {
    let entries = root.entries().map_err(|source| StoreError::Io {
        what: "read",
        path: root.path().to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries {
        if entry.name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let is_dir = match entry.file_type {
            FileType::Directory => true,
            FileType::Unknown => matches!(
                root.file_type(Path::new(&entry.name)),
                Ok(Some(FileType::Directory))
            ),
            _ => false,
        };
        if !is_dir {
            continue;
        }
        match read_record(root, &entry.name) {
            None => {}
            Some(Ok(record)) => out.push(record),
            Some(Err(why)) => reporter.warn(&format!(
                "{} is not listed: {why}",
                root.display_path(Path::new(&entry.name)).display()
            )),
        }
    }
    Ok(out)
}

/// Puts back images that a removal or reinstall moved into `.trash` but
/// never recorded as gone, empties `.staging` and `.trash`, rebuilds the
/// index from the image folders. Returns the index as it is afterwards
/// (saved if it changed).
pub(super) fn tidy(root: &Dir, reporter: &dyn Reporter) -> Result<Index, StoreError> {
    let (listed, reason) = match Index::load(root, reporter)? {
        Loaded::Good(index) => (index.images, None),
        Loaded::Missing => (Vec::new(), Some("missing".to_string())),
        Loaded::Damaged(why) => (Vec::new(), Some(format!("damaged ({why})"))),
    };
    for name in [STAGING_DIR, TRASH_DIR, CACHE_DIR] {
        remove_planted_link(root, name, reporter)?;
    }
    restore_from_trash(root, &listed, reporter)?;
    for name in [STAGING_DIR, TRASH_DIR] {
        empty_leftovers(root, name, reporter)?;
    }

    let published = published_records(root, reporter)?;
    let had_index = reason.is_none();
    let before: Vec<ImageRecord> = listed.clone();
    let result = reconcile(listed, published);
    if let Some(reason) = &reason {
        if !result.images.is_empty() {
            reporter.warn(&format!(
                "the store index {} is {reason}; rebuilt it from the {} image folder(s)",
                root.display_path(Path::new(super::index::INDEX_FILE))
                    .display(),
                result.images.len()
            ));
        }
    } else {
        for name in &result.dropped {
            reporter.warn(&format!(
                "{name} was not completely installed or removed by an interrupted command; it is listed as the image folder records it"
            ));
        }
        for name in &result.adopted {
            reporter.warn(&format!(
                "{name} is installed but was not listed (an interrupted command or an edited index); it is listed again"
            ));
        }
    }
    let index = Index {
        images: result.images,
        ..Index::empty()
    };
    let changed = index.images != before;
    if changed
        || (!had_index && !index.images.is_empty())
        || reason.as_deref().is_some_and(|r| r != "missing")
    {
        index.save(root)?;
    }
    Ok(index)
}

/// `.staging`, `.trash` and `.cache` are folders of ours; a link (or file)
/// of that name was planted: it is removed as itself, never followed.
fn remove_planted_link(root: &Dir, name: &str, reporter: &dyn Reporter) -> Result<(), StoreError> {
    let rel = Path::new(name);
    match root.file_type(rel) {
        Ok(None) | Ok(Some(FileType::Directory)) => Ok(()),
        Ok(Some(_)) => {
            reporter.warn(&format!(
                "{} is not a folder (a link or a file put there); removing it",
                root.display_path(rel).display()
            ));
            root.remove_file(rel).map_err(|source| StoreError::Io {
                what: "remove",
                path: root.display_path(rel),
                source,
            })
        }
        Err(source) => Err(StoreError::Io {
            what: "inspect",
            path: root.display_path(rel),
            source,
        }),
    }
}

/// A folder in `.trash` holding an image the index still lists, whose place
/// in the store is empty, was moved aside by a removal or a reinstall that
/// did not finish: it goes back.
fn restore_from_trash(
    root: &Dir,
    listed: &[ImageRecord],
    reporter: &dyn Reporter,
) -> Result<(), StoreError> {
    let trash = match root.open_dir(Path::new(TRASH_DIR)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Io {
                what: "open",
                path: root.display_path(Path::new(TRASH_DIR)),
                source,
            })
        }
    };
    let entries = trash.entries().map_err(|source| StoreError::Io {
        what: "read",
        path: trash.path().to_path_buf(),
        source,
    })?;
    for entry in entries {
        let Some(Ok(record)) = super::read_record_anywhere(&trash, &entry.name) else {
            continue;
        };
        let still_listed = listed
            .iter()
            .any(|r| r.full_name == record.full_name && r.install_token == record.install_token);
        let slot = Path::new(&record.full_name);
        if still_listed && matches!(root.file_type(slot), Ok(None)) {
            reporter.warn(&format!(
                "putting back {}, which an interrupted command had moved aside",
                record.full_name
            ));
            trash
                .rename_new(Path::new(&entry.name), root, slot)
                .map_err(|source| StoreError::Io {
                    what: "put back",
                    path: root.display_path(slot),
                    source,
                })?;
            root.sync();
        }
    }
    Ok(())
}

fn empty_leftovers(root: &Dir, name: &str, reporter: &dyn Reporter) -> Result<(), StoreError> {
    let dir = match root.open_dir(Path::new(name)) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Io {
                what: "open",
                path: root.display_path(Path::new(name)),
                source,
            })
        }
    };
    let entries = dir.entries().map_err(|source| StoreError::Io {
        what: "read",
        path: dir.path().to_path_buf(),
        source,
    })?;
    for entry in entries {
        let rel = Path::new(&entry.name);
        reporter.verbose(&format!(
            "removing {} left by an interrupted command",
            dir.display_path(rel).display()
        ));
        dir.remove_all(rel).map_err(|source| StoreError::Io {
            what: "remove",
            path: dir.display_path(rel),
            source,
        })?;
    }
    Ok(())
}
