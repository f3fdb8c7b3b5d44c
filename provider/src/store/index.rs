//! The store's index: which images are installed, one JSON file replaced
//! atomically, read without a lock and written only under the store lock.
//!
//! The index is a summary, not the truth: each image folder carries its own
//! record (`image.json`), and a missing, emptied or damaged index is rebuilt
//! from those records (see `tidy`). Losing the index never loses an image.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{check_record, ImageRecord, StoreError};
use crate::fsutil::dir::Dir;
use crate::progress::Reporter;

pub(crate) const INDEX_FILE: &str = "index.json";
const INDEX_FORMAT: u32 = 1;
/// An index larger than this is damaged (a record is well under 4 KiB).
const INDEX_LIMIT: u64 = 256 << 20;

/// The persisted index.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Index {
    #[serde(default = "format_version")]
    pub format: u32,
    #[serde(default)]
    pub images: Vec<ImageRecord>,
}

fn format_version() -> u32 {
    INDEX_FORMAT
}

/// What reading the index found.
pub(crate) enum Loaded {
    /// The index, with every record that passed the checks.
    Good(Index),
    /// No index file (a new store, or one whose index was deleted).
    Missing,
    /// An index that cannot be used as it is; the text says why.
    Damaged(String),
}

impl Index {
    pub fn empty() -> Index {
        Index {
            format: INDEX_FORMAT,
            images: Vec::new(),
        }
    }

    /// Reads `<store>/index.json`. Records that fail the checks of
    /// [`check_record`] are reported and left out, never followed.
    pub fn load(root: &Dir, reporter: &dyn Reporter) -> Result<Loaded, StoreError> {
        let bytes = match root.read_limited(Path::new(INDEX_FILE), INDEX_LIMIT) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Missing),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(StoreError::Io {
                    what: "read the store index",
                    path: root.display_path(Path::new(INDEX_FILE)),
                    source: e,
                })
            }
            Err(e) => return Ok(Loaded::Damaged(e.to_string())),
        };
        let mut index: Index = match serde_json::from_slice(&bytes) {
            Ok(i) => i,
            Err(e) => return Ok(Loaded::Damaged(e.to_string())),
        };
        if index.format > INDEX_FORMAT {
            return Err(StoreError::DamagedIndex {
                path: root.display_path(Path::new(INDEX_FILE)),
                message: format!(
                    "format {} is newer than this program understands ({INDEX_FORMAT})",
                    index.format
                ),
            });
        }
        index.images.retain(|r| match check_record(r) {
            Ok(()) => true,
            Err(why) => {
                reporter.warn(&format!("ignoring a record of the store index: {why}"));
                false
            }
        });
        Ok(Loaded::Good(index))
    }

    /// Replaces `<store>/index.json` atomically.
    pub fn save(&self, root: &Dir) -> Result<(), StoreError> {
        super::save_json(root, INDEX_FILE, "write the store index", self)
    }

    pub fn position(&self, full_name: &str) -> Option<usize> {
        self.images
            .iter()
            .position(|r| super::same_full_name(&r.full_name, full_name))
    }
}
