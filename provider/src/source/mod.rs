//! Package sources: a registered name and a location that yields a feed.
//!
//! A location is an `http(s)://` URL of a feed document, a `file://` URL or
//! local path of one, or a local folder: its `feed.xml`, else the `*.wim`
//! files in it and one level below.

mod check;
mod client;
mod load;
mod registry;

use std::path::PathBuf;
use std::time::Duration;

use crate::feed::FeedError;
use crate::location::LocationError;
use crate::signing::SignatureError;

pub use check::check_location;
pub use client::FeedClient;
pub use load::{load, load_all};
pub use registry::{matching, normalize_location, register, select, set, unregister, KeyChange};

/// The provider's name, as OneGet shows it.
pub const PROVIDER_NAME: &str = "ContainerImage";
/// The seeds' older name of the provider, accepted where a name is expected.
pub const PROVIDER_OLD_NAME: &str = "ContainerProvider";

/// The largest feed document read, from a server or a file.
pub(crate) const MAX_FEED_BYTES: u64 = 256 << 20;
/// How long fetching one feed document may take in all, connection,
/// redirects and body included: a server that trickles a feed, or stops
/// sending, is cut off.
pub const FEED_DEADLINE: Duration = Duration::from_secs(60);
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "no package source is registered; register one with \
         `Register-PackageSource -Name <name> -Location <feed URL, feed file or folder>`"
    )]
    NoneRegistered,
    #[error(
        "Unable to find package source '{0}'. Use Get-PackageSource to see all available package sources."
    )]
    NotFound(String),
    #[error(
        "a package source named '{0}' is already registered; add -Force to replace it, or use Set-PackageSource to change it"
    )]
    AlreadyRegistered(String),
    #[error("The package source name '{0}' should not have wildcards, correct it and try again.")]
    WildcardName(String),
    #[error("the package source name is empty")]
    EmptyName,
    #[error("'{location}' is not a usable source location")]
    BadLocation {
        location: String,
        #[source]
        source: LocationError,
    },
    #[error("cannot find the current folder to make '{location}' absolute")]
    CurrentDir {
        location: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot fetch the feed {url}")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "cannot fetch the feed {url}: it did not arrive within {} seconds",
        deadline.as_secs_f64()
    )]
    Deadline { url: String, deadline: Duration },
    #[error("cannot fetch the feed {url}: the server answered {status}")]
    Status { url: String, status: String },
    #[error("cannot fetch the feed {url}: no HTTP client ({reason})")]
    Client { url: String, reason: String },
    #[error("reading the source at {location} stopped unexpectedly")]
    Stopped { location: String },
    #[error("the feed {location} is larger than {MAX_FEED_BYTES} bytes")]
    TooLarge { location: String },
    #[error("cannot read the source {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the source '{name}' is pinned to the key ID {key_id}, but its feed's signature does not \
         verify; nothing from it is used"
    )]
    Unverified {
        name: String,
        key_id: String,
        #[source]
        source: SignatureError,
    },
    #[error(
        "the key pinned to the source '{name}' in the configuration is damaged ('{key}' is not a \
         minisign public key); nothing from the source is used"
    )]
    BadPinnedKey { name: String, key: String },
    #[error("the source '{name}' cannot be used")]
    Feed {
        name: String,
        #[source]
        source: FeedError,
    },
}

impl SourceError {
    /// Whether the source was refused because its feed is not signed by
    /// the key pinned to it: an error for the command, not a warning.
    pub fn is_unverified(&self) -> bool {
        matches!(
            self,
            SourceError::Unverified { .. } | SourceError::BadPinnedKey { .. }
        )
    }

    pub(crate) fn feed(name: &str) -> impl FnOnce(FeedError) -> SourceError + '_ {
        move |source| SourceError::Feed {
            name: name.to_string(),
            source,
        }
    }
}
