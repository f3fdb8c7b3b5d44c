//! Reading `.wim` files: the format, the codecs, verification and applying
//! an image to a folder.
//!
//! The public surface is [`WimFile`]: open a file, look at its XML
//! information, apply an image, verify it.

pub mod codec;
pub mod info;

use std::path::{Path, PathBuf};

pub use codec::Compression;
pub use info::{ImageInfo, WimInfo, WindowsInfo, WindowsVersion};

use crate::progress::Reporter;

#[derive(Debug, thiserror::Error)]
pub enum WimError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid WIM file: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path}: {what} is not supported yet")]
    Unsupported { path: PathBuf, what: String },
    #[error("{path} has no image {index} (it holds {count})")]
    NoSuchImage {
        path: PathBuf,
        index: u32,
        count: u32,
    },
    #[error("reading {path} is not implemented yet")]
    NotImplemented { path: PathBuf },
}

/// An open `.wim` file.
pub struct WimFile {
    path: PathBuf,
    info: WimInfo,
}

impl WimFile {
    /// Opens and checks a `.wim` file: header, blob table, XML data.
    pub fn open(path: &Path) -> Result<WimFile, WimError> {
        Err(WimError::NotImplemented {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed XML data.
    pub fn info(&self) -> &WimInfo {
        &self.info
    }

    /// Applies image `index` (1-based) to `target`, creating it if missing.
    pub fn apply(
        &self,
        _index: u32,
        _target: &Path,
        _options: &ApplyOptions,
        _reporter: &dyn Reporter,
    ) -> Result<ApplySummary, WimError> {
        Err(WimError::NotImplemented {
            path: self.path.clone(),
        })
    }
}

/// How to apply an image.
#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    /// Check the integrity table (when present) before applying.
    pub check_integrity: bool,
    /// Read back and compare what was written.
    pub verify: bool,
    /// Where to write the Windows-only metadata (security descriptors,
    /// attributes, named streams, short names, reparse data, creation times).
    pub metadata_path: Option<PathBuf>,
}

/// What an apply did.
#[derive(Clone, Debug, Default)]
pub struct ApplySummary {
    pub directories: u64,
    pub files: u64,
    pub bytes: u64,
    pub hard_links: u64,
    pub symlinks: u64,
    /// Entries skipped (unsafe names and the like), already reported as warnings.
    pub skipped: Vec<String>,
}
