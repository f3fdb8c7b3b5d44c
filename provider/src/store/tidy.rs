//! Cleaning up after a command that was interrupted (crash, `kill -9`, power
//! loss): run by whoever takes the store lock, before anything else.

use std::fs;
use std::io;

use super::index::Index;
use super::{io_err, read_record, Store, StoreError, STAGING_DIR, TRASH_DIR};
use crate::progress::Reporter;

/// Removes staging and trash folders, published folders the index does not
/// record and records whose folder is missing or belongs to another install.
/// Returns the index as it is afterwards (saved if it changed).
pub(super) fn tidy(store: &Store, reporter: &dyn Reporter) -> Result<Index, StoreError> {
    let root = store.root();
    let mut index = Index::load(root)?;
    if !root.exists() {
        return Ok(index);
    }
    for leftover in [STAGING_DIR, TRASH_DIR] {
        let dir = root.join(leftover);
        match fs::read_dir(&dir) {
            Ok(items) => {
                for item in items.flatten() {
                    reporter.verbose(&format!(
                        "removing {} left by an interrupted command",
                        item.path().display()
                    ));
                    remove_any(&item.path()).map_err(io_err("remove", &item.path()))?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Io {
                    what: "read",
                    path: dir,
                    source,
                })
            }
        }
    }

    // Records whose folder is gone, or holds another install than recorded.
    let before = index.images.len();
    index.images.retain(|r| {
        let dir = store.image_path(&r.full_name);
        let intact = read_record(&dir).is_some_and(|on_disk| on_disk.install_token == r.install_token);
        if !intact {
            reporter.warn(&format!(
                "{} was not completely installed or removed by an interrupted command; it is no longer listed",
                r.full_name
            ));
        }
        intact
    });
    let changed = index.images.len() != before;

    // Published folders no record claims (they carry an image.json; anything
    // else in the store folder is left alone).
    let items = fs::read_dir(root).map_err(io_err("read", root))?;
    for item in items.flatten() {
        let name = item.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !item.path().is_dir() {
            continue;
        }
        let Some(on_disk) = read_record(&item.path()) else {
            continue;
        };
        let recorded = index
            .images
            .iter()
            .any(|r| r.full_name == name && r.install_token == on_disk.install_token);
        if !recorded {
            reporter.warn(&format!(
                "removing {} left incomplete by an interrupted install",
                item.path().display()
            ));
            remove_any(&item.path()).map_err(io_err("remove", &item.path()))?;
        }
    }
    if changed {
        index.save(root)?;
    }
    Ok(index)
}

fn remove_any(path: &std::path::Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
