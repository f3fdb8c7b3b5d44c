//! What Install-ContainerImage installs, decided before anything is
//! downloaded: the images the command line or the pipeline names, found in
//! the sources (each source read once, however many objects are piped), one
//! entry per image, those already installed set aside, and the trust policy
//! applied. Only the question on the terminal is left to the command line.

use crate::config::SourceConfig;
use crate::feed::FeedEntry;
use crate::progress::Reporter;
use crate::query::{once_per_image, Query, ReadSources};
use crate::source::{FeedClient, SourceError};
use crate::store::{Store, StoreError};

use super::plan_feed_image;

/// One search: the sources to read and what to find in them.
#[derive(Clone, Debug)]
pub struct Wanted {
    pub sources: Vec<SourceConfig>,
    pub query: Query,
}

/// The entries the searches found, one per image.
#[derive(Debug, Default)]
pub struct Candidates {
    /// In the order found; an image (name and version) offered by several
    /// sources is kept once, from the first.
    pub entries: Vec<FeedEntry>,
    /// "No match was found …" messages, each an error to report.
    pub no_match: Vec<String>,
    /// Sources refused for their signature, each reported once.
    pub unverified: Vec<SourceError>,
}

/// Runs every search, reading each source once.
pub fn find_candidates(
    wanted: &[Wanted],
    client: &FeedClient,
    reporter: &dyn Reporter,
) -> Candidates {
    let every_source: Vec<SourceConfig> = wanted.iter().flat_map(|w| w.sources.clone()).collect();
    let mut read = ReadSources::read(&every_source, client, reporter);
    let mut found = Candidates::default();
    let mut entries = Vec::new();
    for w in wanted {
        let mut result = read.find(&w.sources, &w.query);
        found.unverified.append(&mut result.unverified_sources);
        found.no_match.extend(result.no_match_messages());
        entries.append(&mut result.entries);
    }
    found.entries = once_per_image(entries)
        .into_iter()
        .map(|(kept, _)| kept)
        .collect();
    found
}

/// Whether the registered source named `source` is trusted.
pub fn is_trusted(registered: &[SourceConfig], source: &str) -> bool {
    registered
        .iter()
        .any(|s| s.name.eq_ignore_ascii_case(source) && s.trusted)
}

/// Whether an entry may be installed as it is, or needs the user's yes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// From a trusted source, or `-Force` was given.
    Trusted,
    /// From an untrusted source: ask, and without a terminal refuse.
    NeedsApproval,
}

/// The candidates sorted out for installing.
#[derive(Debug, Default)]
pub struct Screened {
    /// What to install, in order, each with what the trust policy says.
    pub entries: Vec<(FeedEntry, Trust)>,
    /// Images already installed (errors to report; nobody is asked about them).
    pub already_installed: Vec<StoreError>,
}

/// Applies the already-installed check and the trust policy. With `force`
/// every entry is installed (reinstalled) without asking.
pub fn screen(
    store: &Store,
    registered: &[SourceConfig],
    entries: Vec<FeedEntry>,
    force: bool,
    reporter: &dyn Reporter,
) -> Result<Screened, StoreError> {
    let mut screened = Screened::default();
    if force {
        screened.entries = entries.into_iter().map(|e| (e, Trust::Trusted)).collect();
        return Ok(screened);
    }
    let installed = store.images(reporter)?;
    for entry in entries {
        let full_name = plan_feed_image(&entry).full_name;
        if installed
            .iter()
            .any(|r| crate::store::same_full_name(&r.full_name, &full_name))
        {
            screened
                .already_installed
                .push(StoreError::AlreadyInstalled { full_name });
            continue;
        }
        let trust = if is_trusted(registered, &entry.source) {
            Trust::Trusted
        } else {
            Trust::NeedsApproval
        };
        screened.entries.push((entry, trust));
    }
    Ok(screened)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_is_by_registered_name_ignoring_case() {
        let registered = [
            SourceConfig {
                name: "Mine".into(),
                location: "/x".into(),
                trusted: true,
                public_key: None,
            },
            SourceConfig {
                name: "Theirs".into(),
                location: "/y".into(),
                trusted: false,
                public_key: None,
            },
        ];
        assert!(is_trusted(&registered, "mine"));
        assert!(!is_trusted(&registered, "Theirs"));
        assert!(!is_trusted(&registered, "Unknown"));
    }
}
