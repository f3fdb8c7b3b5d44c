//! Feed manifests: what a feed lists, read from XML (`urn:containerimage:feed:1`)
//! or from the original provider's JSON index.
//!
//! Reading goes in three steps: the wire format (what the document says, with
//! the line of every element) is validated into a [`FeedRecord`] (typed
//! values, locations as written), which is resolved against the feed's own
//! location into a [`FeedEntry`] (absolute locations, the source's name).

mod hash_cache;
mod json;
mod lines;
mod wimfile;
mod write;
mod xml;

use std::path::PathBuf;

pub use hash_cache::HashCache;
pub use wimfile::{entry_record_for_wim, scan_wim_folder, wim_name_and_version, WimScan};
pub use write::{render_xml, upsert_entry, write_feed_file, FeedSignature, FEED_FILE_NAME};

use crate::location::{Location, Origin, Url};
use crate::version::Version;

/// The XML namespace of a feed manifest.
pub const FEED_NAMESPACE: &str = "urn:containerimage:feed:1";

/// One image a feed offers, validated and with absolute locations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedEntry {
    pub name: String,
    pub version: Version,
    pub publisher: Option<String>,
    pub description: Option<String>,
    pub architecture: Option<String>,
    /// Size in bytes (always present in XML feeds; absent in JSON indexes).
    pub size: Option<u64>,
    /// SHA-256 of the `.wim` (always present in XML feeds; absent in JSON indexes).
    pub sha256: Option<[u8; 32]>,
    /// Download locations, tried in order.
    pub locations: Vec<Location>,
    /// The name of the source this entry came from.
    pub source: String,
}

impl FeedEntry {
    /// The one rule for naming the `.wim` of an entry, in a save folder and
    /// in the store's download cache: `<Name>-<version as written, dots as
    /// dashes>.wim` (`NanoServer-10-0-14300-1010.wim`). A name the name rule
    /// refuses cannot become a file name.
    pub fn wim_file_name(&self) -> Result<String, crate::names::NameError> {
        crate::names::check_name(&self.name)?;
        Ok(format!("{}-{}.wim", self.name, self.version.dashed()))
    }

    /// The SHA-256 as lowercase hex, when the feed gave one.
    pub fn sha256_hex(&self) -> Option<String> {
        self.sha256.map(hex::encode)
    }
}

/// One `<Image>` of a manifest, validated, with its locations as written
/// (relative ones stay relative). This is what the feed writer writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedRecord {
    pub name: String,
    pub version: Version,
    pub publisher: Option<String>,
    pub description: Option<String>,
    pub architecture: Option<String>,
    pub size: Option<u64>,
    pub sha256: Option<[u8; 32]>,
    /// Locations as written in the feed, in mirror order.
    pub locations: Vec<String>,
    /// Where the record starts in its document (1-based; 0 when built in memory).
    pub line: usize,
}

impl FeedRecord {
    /// A record for a `.wim` saved into a feed folder as `file_name`, taking
    /// the descriptive fields from `entry` and the verified size and hash of
    /// the saved file.
    pub fn for_saved_file(entry: &FeedEntry, file_name: &str, size: u64, sha256: [u8; 32]) -> Self {
        FeedRecord {
            name: entry.name.clone(),
            version: entry.version.clone(),
            publisher: entry.publisher.clone(),
            description: entry.description.clone(),
            architecture: entry.architecture.clone(),
            size: Some(size),
            sha256: Some(sha256),
            locations: vec![file_name.to_string()],
            line: 0,
        }
    }

    /// Resolves the locations against `base` (the feed's own location) and
    /// tags the entry with the source's name.
    pub fn resolve(
        self,
        base: &FeedBase,
        feed: &str,
        source: &str,
    ) -> Result<FeedEntry, FeedError> {
        let mut locations = Vec::with_capacity(self.locations.len());
        for text in &self.locations {
            let location = base.join(text).map_err(|e| FeedError::Field {
                feed: feed.to_string(),
                line: self.line,
                field: "Location",
                problem: format!("{} {}: {e}", self.name, self.version),
            })?;
            locations.push(location);
        }
        Ok(FeedEntry {
            name: self.name,
            version: self.version,
            publisher: self.publisher,
            description: self.description,
            architecture: self.architecture,
            size: self.size,
            sha256: self.sha256,
            locations,
            source: source.to_string(),
        })
    }
}

/// What relative locations in a feed are relative to: the folder of a
/// local feed file, or the URL of a feed fetched over HTTP.
#[derive(Clone, Debug)]
pub enum FeedBase {
    Http(Url),
    Folder(PathBuf),
}

impl FeedBase {
    /// The base for a feed document read from `location` (a file or a URL).
    pub fn of_document(location: &Location) -> FeedBase {
        match location {
            Location::Http(url) => FeedBase::Http(url.clone()),
            Location::Path(p) => FeedBase::Folder(match p.parent() {
                Some(parent) => parent.to_path_buf(),
                None => PathBuf::new(),
            }),
        }
    }

    /// Resolves a location as written in a feed: relative ones against the
    /// feed, and only what a feed from there may name (see
    /// [`Location::resolve`]: a remote feed names only http(s) locations).
    pub fn join(&self, reference: &str) -> Result<Location, crate::location::LocationError> {
        match self {
            FeedBase::Http(url) => Location::resolve(Origin::Remote(url), reference),
            FeedBase::Folder(dir) => Location::resolve(Origin::LocalFolder(dir), reference),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("the feed {feed} is not valid (line {line}): {message}")]
    Syntax {
        feed: String,
        line: usize,
        message: String,
    },
    #[error("the feed {feed} is not valid (line {line}, {field}): {problem}")]
    Field {
        feed: String,
        line: usize,
        field: &'static str,
        problem: String,
    },
    #[error("the feed {feed} is not valid (line {line}, {field}): the image has no {field}")]
    Missing {
        feed: String,
        line: usize,
        field: &'static str,
    },
    #[error(
        "the feed {feed} lists more than {MAX_FEED_IMAGES} images (line {line}); \
         split it into several feeds"
    )]
    TooManyImages { feed: String, line: usize },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the feed {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("wrote the feed {path}, but cannot sign it")]
    Sign {
        path: PathBuf,
        #[source]
        source: crate::signing::SigningError,
    },
    #[error(
        "cannot tell the version of {path}: its XML has no WINDOWS/VERSION and its file name has \
         no version suffix; name the file like NanoServer-10-0-14300-1010.wim \
         (Install-ContainerOSImage also takes -Version)"
    )]
    NoVersion { path: PathBuf },
    #[error(
        "cannot tell an image name from the file name {path}; name the file like \
         NanoServer-10-0-14300-1010.wim (Install-ContainerOSImage also takes -Name)"
    )]
    NoName { path: PathBuf },
}

/// The most images one feed document may list. Every image a search reads
/// is held in memory, so this bounds what a feed can make a search take
/// (with [`crate::source`]'s 256 MiB document limit); real feeds list a
/// few dozen.
pub const MAX_FEED_IMAGES: usize = 100_000;

/// Reads a feed document, XML or the JSON index (told apart by their first
/// character), handing each record to `each` as soon as it is read and
/// validated, so no copy of the whole feed is built on the way.
pub fn for_each_record(
    bytes: &[u8],
    feed: &str,
    each: &mut dyn FnMut(FeedRecord) -> Result<(), FeedError>,
) -> Result<(), FeedError> {
    let text = decode(bytes, feed)?;
    let mut count = 0usize;
    let mut counted = |record: FeedRecord| {
        count += 1;
        if count > MAX_FEED_IMAGES {
            return Err(FeedError::TooManyImages {
                feed: feed.to_string(),
                line: record.line,
            });
        }
        each(record)
    };
    match text.trim_start().as_bytes().first() {
        Some(b'[') => json::parse(text, feed, &mut counted),
        _ => xml::parse(text, feed, &mut counted),
    }
}

/// Parses a feed document, XML or the JSON index, into records. `feed`
/// names the document in errors.
pub fn parse_records(bytes: &[u8], feed: &str) -> Result<Vec<FeedRecord>, FeedError> {
    let mut records = Vec::new();
    for_each_record(bytes, feed, &mut |r| {
        records.push(r);
        Ok(())
    })?;
    Ok(records)
}

/// Parses a feed document and resolves it into entries of `source`.
pub fn parse_entries(
    bytes: &[u8],
    feed: &str,
    base: &FeedBase,
    source: &str,
) -> Result<Vec<FeedEntry>, FeedError> {
    let mut entries = Vec::new();
    for_each_record(bytes, feed, &mut |r| {
        entries.push(r.resolve(base, feed, source)?);
        Ok(())
    })?;
    Ok(entries)
}

/// The document as UTF-8 text without a byte-order mark.
fn decode<'a>(bytes: &'a [u8], feed: &str) -> Result<&'a str, FeedError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| FeedError::Syntax {
        feed: feed.to_string(),
        line: lines::line_of(bytes, e.valid_up_to()),
        message: "the document is not UTF-8 text".into(),
    })
}

/// Parses a SHA-256 written as 64 hex digits (either case).
pub fn parse_sha256(text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "'{t}' is not a SHA-256: expected 64 hexadecimal digits"
        ));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(t, &mut out).map_err(|e| format!("'{t}' is not a SHA-256: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests;
