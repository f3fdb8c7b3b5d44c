//! Feed manifests: what a feed lists, read from XML (`urn:containerimage:feed:1`)
//! or from the original provider's JSON index.

use crate::location::Location;
use crate::version::Version;

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
