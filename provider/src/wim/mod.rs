//! Reading `.wim` files: the format, the codecs, verification and applying
//! an image to a folder.
//!
//! The public surface is [`WimFile`]: open a file, look at its XML
//! information, apply an image, verify it.

mod apply;
mod blob_hash;
pub mod codec;
pub mod filetime;
pub mod format;
pub mod info;
mod link_target;
pub mod metadata;
mod out_dirs;
mod reader;
pub mod resource;
pub mod sidecar;
mod stream;
mod verify;
pub mod xml;

use std::path::{Path, PathBuf};

pub use codec::Compression;
pub use info::{ImageInfo, WimInfo, WindowsInfo, WindowsVersion};
pub use out_dirs::DESCRIPTORS;
pub use sidecar::Sidecar;

use crate::progress::Reporter;
use metadata::Sha1;
use resource::{ChunkPlan, ResourceSpec, Source};

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
    #[error("{path} has no image named '{name}'")]
    NoSuchImageName { path: PathBuf, name: String },
    #[error("reading {path} is not implemented yet")]
    NotImplemented { path: PathBuf },
    #[error("{path} is damaged: {what}")]
    Resource {
        path: PathBuf,
        what: String,
        #[source]
        source: resource::ResourceError,
    },
    #[error("{path}: the XML data is damaged")]
    Xml {
        path: PathBuf,
        #[source]
        source: xml::XmlError,
    },
    #[error("{path}: the metadata of image {index} is damaged")]
    Metadata {
        path: PathBuf,
        index: u32,
        #[source]
        source: metadata::MetadataError,
    },
    #[error("{path} is damaged: the data of {files} does not match its SHA-1 (expected {expected}, got {actual})")]
    HashMismatch {
        path: PathBuf,
        files: String,
        expected: String,
        actual: String,
    },
    #[error("{path} is damaged: the data of {files} (SHA-1 {hash}) is missing from the file")]
    MissingBlob {
        path: PathBuf,
        files: String,
        hash: String,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} differs from the image after writing it")]
    VerifyFailed { path: PathBuf },
    #[error("the integrity table of {path} does not match: {reason}")]
    Integrity { path: PathBuf, reason: String },
    #[error("cannot write the metadata file {path}")]
    Sidecar {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where a blob's bytes are.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BlobLocation {
    /// A resource of its own.
    Plain(ResourceSpec),
    /// A range of the concatenated data of solid run `run`.
    Solid { run: usize, offset: u64 },
}

/// A blob table entry, checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Blob {
    pub hash: Sha1,
    pub size: u64,
    pub location: BlobLocation,
}

/// Solid resources described by one run of blob-table entries; blob offsets
/// are positions in the concatenation of their data.
#[derive(Clone, Debug, Default)]
pub(crate) struct SolidRun {
    pub resources: Vec<(ResourceSpec, ChunkPlan)>,
    /// Where each resource starts in the concatenation.
    pub starts: Vec<u64>,
    pub total: u64,
}

/// Everything the header says, checked.
#[derive(Clone, Debug)]
pub struct WimHeaderInfo {
    pub version: u32,
    pub flags: u32,
    pub compression: Compression,
    pub chunk_size: u32,
    pub guid: [u8; 16],
    pub part_number: u16,
    pub total_parts: u16,
    pub image_count: u32,
    pub boot_index: u32,
    pub has_integrity_table: bool,
    pub rp_fix: bool,
}

/// A hash map for keys read from a WIM (SHA-1 digests, entry and folder
/// numbers): foldhash with a seed chosen per process, so that a file cannot
/// be made to collide its keys, at a fraction of the default hasher's cost.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;
/// The set of [`FastMap`].
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::quality::RandomState>;

/// An open `.wim` file.
pub struct WimFile {
    path: PathBuf,
    info: WimInfo,
    header: WimHeaderInfo,
    xml_bytes: Vec<u8>,
    integrity: Option<ResourceSpec>,
    blob_table: ResourceSpec,
    source: Source,
    blobs: FastMap<Sha1, Blob>,
    runs: Vec<SolidRun>,
    /// Metadata resources, in image order.
    images: Vec<Blob>,
}

impl WimFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed XML data.
    pub fn info(&self) -> &WimInfo {
        &self.info
    }

    /// The raw XML data as stored (UTF-16LE with a BOM).
    pub fn xml_bytes(&self) -> &[u8] {
        &self.xml_bytes
    }

    /// The checked header fields.
    pub fn header(&self) -> &WimHeaderInfo {
        &self.header
    }

    /// Number of images.
    pub fn image_count(&self) -> u32 {
        self.header.image_count
    }

    /// The compression of the file's (non-solid) resources.
    pub fn compression(&self) -> Compression {
        self.header.compression
    }

    /// The chunk size of the file's (non-solid) resources (0: uncompressed).
    pub fn chunk_size(&self) -> u32 {
        self.header.chunk_size
    }

    /// Whether the file holds solid resources.
    pub fn is_solid(&self) -> bool {
        !self.runs.is_empty()
    }

    /// The index (1-based) of the image named `name`.
    pub fn index_of(&self, name: &str) -> Result<u32, WimError> {
        self.info
            .images
            .iter()
            .find(|i| i.name.as_deref() == Some(name))
            .map(|i| i.index)
            .ok_or_else(|| WimError::NoSuchImageName {
                path: self.path.clone(),
                name: name.to_string(),
            })
    }

    /// Applies image `index` (1-based) to `target`, creating it if missing.
    pub fn apply(
        &self,
        index: u32,
        target: &Path,
        options: &ApplyOptions,
        reporter: &dyn Reporter,
    ) -> Result<ApplySummary, WimError> {
        apply::apply(self, index, target, options, reporter)
    }

    /// Checks the whole file: the integrity table when present, every blob's
    /// SHA-1 and every image's metadata. Returns the problems found (empty:
    /// the file is sound).
    pub fn verify(&self, reporter: &dyn Reporter) -> Vec<String> {
        verify::verify(self, reporter)
    }

    /// Bytes of compressed or stored chunks read from the file so far (each
    /// counted as its decoded size), for checking that a pass reads every
    /// chunk once.
    pub fn chunk_bytes_read(&self) -> u64 {
        self.source().chunk_bytes_read()
    }

    /// Checks the integrity table, if the file has one. `Ok(false)`: none.
    pub fn check_integrity(&self, reporter: &dyn Reporter) -> Result<bool, WimError> {
        verify::check_integrity(self, reporter)
    }

    /// The Windows-only metadata of image `index` (1-based).
    pub fn windows_metadata(&self, index: u32) -> Result<Sidecar, WimError> {
        let image = self.image(index)?;
        sidecar::build(self, index, &image, true)
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
    /// Root absolute links that point inside the image (fixed at capture) at
    /// the apply folder's absolute path, as `wimlib-imagex apply` does. When
    /// false (the default) they are written relative to the link's folder,
    /// so the tree can be moved.
    pub absolute_links: bool,
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
    /// Windows-only metadata this file system cannot hold, by kind and
    /// count (e.g. "named data streams: 3"); kept in the metadata file when
    /// one was asked for.
    pub not_represented: Vec<String>,
}
