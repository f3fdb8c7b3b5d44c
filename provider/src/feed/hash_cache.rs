//! Remembers the SHA-256 of `.wim` files by path, size and modification
//! time, so a folder source is hashed once rather than at every search.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Cached {
    size: u64,
    modified_secs: u64,
    modified_nanos: u32,
    sha256: String,
}

/// The largest cache file read; a larger one is treated as damaged.
const MAX_CACHE_BYTES: u64 = 64 << 20;

/// A file of remembered hashes. A missing, damaged or oversized file, or
/// one that is not a regular file, is an empty cache.
pub struct HashCache {
    path: PathBuf,
    entries: Mutex<BTreeMap<String, Cached>>,
    changed: AtomicBool,
}

impl HashCache {
    pub fn open(path: PathBuf) -> HashCache {
        let entries = read_bounded(&path)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        HashCache {
            path,
            entries: Mutex::new(entries),
            changed: AtomicBool::new(false),
        }
    }

    fn stamp(meta: &Metadata) -> Option<(u64, u64, u32)> {
        let m = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        Some((meta.len(), m.as_secs(), m.subsec_nanos()))
    }

    /// The remembered hash of `file`, if its size and modification time
    /// are still those it had when hashed.
    pub(crate) fn get(&self, file: &Path, meta: &Metadata) -> Option<[u8; 32]> {
        let (size, secs, nanos) = Self::stamp(meta)?;
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let c = entries.get(&file.to_string_lossy().into_owned())?;
        if (c.size, c.modified_secs, c.modified_nanos) != (size, secs, nanos) {
            return None;
        }
        super::parse_sha256(&c.sha256).ok()
    }

    pub(crate) fn put(&self, file: &Path, meta: &Metadata, sha256: &[u8; 32]) {
        let Some((size, modified_secs, modified_nanos)) = Self::stamp(meta) else {
            return;
        };
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(
            file.to_string_lossy().into_owned(),
            Cached {
                size,
                modified_secs,
                modified_nanos,
                sha256: hex::encode(sha256),
            },
        );
        self.changed.store(true, Ordering::Relaxed);
    }

    /// Writes the cache back (atomically) if anything was added. A cache
    /// folder that is a symbolic link is left alone (nothing is written
    /// where it points).
    pub fn save(&self) -> std::io::Result<()> {
        if !self.changed.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            if std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(std::io::Error::other(format!(
                    "{} is a symbolic link; the cache is not written through it",
                    dir.display()
                )));
            }
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Forget files that are gone, so the cache does not grow forever.
        entries.retain(|path, _| Path::new(path).exists());
        let bytes = serde_json::to_vec(&*entries).map_err(std::io::Error::other)?;
        write_atomic(&self.path, &bytes)
    }
}

/// The cache file's bytes, if it is a regular file of a sane size.
fn read_bounded(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let (file, meta) = crate::location::open_local_file(path).ok()?;
    if meta.len() > MAX_CACHE_BYTES {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_CACHE_BYTES).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_the_file_changes_and_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.wim");
        std::fs::write(&file, b"one").expect("write");
        let cache_path = dir.path().join("cache/hashes.json");
        let cache = HashCache::open(cache_path.clone());
        let meta = std::fs::metadata(&file).expect("meta");
        assert_eq!(cache.get(&file, &meta), None);
        cache.put(&file, &meta, &[7; 32]);
        assert_eq!(cache.get(&file, &meta), Some([7; 32]));
        cache.save().expect("save");

        let reopened = HashCache::open(cache_path.clone());
        assert_eq!(reopened.get(&file, &meta), Some([7; 32]));
        std::fs::write(&file, b"longer").expect("rewrite");
        let changed = std::fs::metadata(&file).expect("meta");
        assert_eq!(
            reopened.get(&file, &changed),
            None,
            "a changed file is hashed again"
        );

        std::fs::write(&cache_path, b"{damaged").expect("damage");
        assert_eq!(HashCache::open(cache_path).get(&file, &meta), None);
    }
}
