//! The store's index: which images are installed, one JSON file replaced
//! atomically, read without a lock and written only under the store lock.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ImageRecord, StoreError};
use crate::fsutil::write_atomic;

pub(crate) const INDEX_FILE: &str = "index.json";
const INDEX_FORMAT: u32 = 1;

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

impl Index {
    /// Reads `<store>/index.json`; a missing file (or store) is an empty index.
    pub fn load(store: &Path) -> Result<Index, StoreError> {
        let path = store.join(INDEX_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let index: Index =
                    serde_json::from_slice(&bytes).map_err(|e| StoreError::DamagedIndex {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                if index.format > INDEX_FORMAT {
                    return Err(StoreError::DamagedIndex {
                        path,
                        message: format!(
                            "format {} is newer than this program understands ({INDEX_FORMAT})",
                            index.format
                        ),
                    });
                }
                Ok(index)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index {
                format: INDEX_FORMAT,
                images: Vec::new(),
            }),
            Err(source) => Err(StoreError::Io {
                what: "read the store index",
                path,
                source,
            }),
        }
    }

    /// Replaces `<store>/index.json` atomically.
    pub fn save(&self, store: &Path) -> Result<(), StoreError> {
        let path = store.join(INDEX_FILE);
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| StoreError::Io {
            what: "encode the store index",
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        bytes.push(b'\n');
        write_atomic(&path, &bytes).map_err(|source| StoreError::Io {
            what: "write the store index",
            path,
            source,
        })
    }

    pub fn position(&self, full_name: &str) -> Option<usize> {
        self.images
            .iter()
            .position(|r| r.full_name.eq_ignore_ascii_case(full_name))
    }
}
