//! Reading what a source offers: an HTTP feed, a feed file, or a folder
//! (its `feed.xml`, else its `.wim` files).

use std::io::Read;
use std::path::Path;

use crate::config::SourceConfig;
use crate::error_chain;
use crate::feed::{self, FeedBase, FeedEntry, HashCache, FEED_FILE_NAME};
use crate::location::{Location, Url};
use crate::progress::Reporter;
use crate::signing::{self, PinnedKey, SignatureError, MAX_SIGNATURE_BYTES, SIGNATURE_SUFFIX};

use super::{FeedClient, SourceError, MAX_FEED_BYTES};

/// Everything `source` offers. A source with a pinned key offers nothing
/// unless its feed's signature verifies with that key.
pub fn load(
    source: &SourceConfig,
    client: &FeedClient,
    reporter: &dyn Reporter,
) -> Result<Vec<FeedEntry>, SourceError> {
    let name = source.name.as_str();
    let started = std::time::Instant::now();
    let location = Location::parse(&source.location).map_err(|e| SourceError::BadLocation {
        location: source.location.clone(),
        source: e,
    })?;
    let pinned = match &source.public_key {
        None => None,
        Some(text) => {
            Some(
                PinnedKey::from_base64(text).ok_or_else(|| SourceError::BadPinnedKey {
                    name: name.to_string(),
                    key: text.clone(),
                })?,
            )
        }
    };
    let check = pinned.as_ref().map(|key| Check {
        name,
        key,
        reporter,
    });
    let entries = match location {
        Location::Http(url) => {
            reporter.verbose(&format!("Fetching the feed of source '{name}' from {url}"));
            let (body, final_url) = client.get(&url)?;
            if final_url != url {
                reporter.verbose(&format!("The feed of source '{name}' is at {final_url}"));
            }
            if let Some(check) = &check {
                check.remote(&url, &body, client)?;
            }
            feed::parse_entries(&body, url.as_str(), &FeedBase::Http(final_url), name)
                .map_err(SourceError::feed(name))?
        }
        Location::Path(path) => load_path(
            name,
            &path,
            check.as_ref(),
            client.hash_cache.as_ref(),
            reporter,
        )?,
    };
    reporter.verbose(&format!(
        "Source '{name}' lists {} image(s), read in {} ms",
        entries.len(),
        started.elapsed().as_millis()
    ));
    Ok(entries)
}

/// Checking a feed against the key pinned to its source.
struct Check<'a> {
    name: &'a str,
    key: &'a PinnedKey,
    reporter: &'a dyn Reporter,
}

impl Check<'_> {
    fn refused(&self, source: SignatureError) -> SourceError {
        SourceError::Unverified {
            name: self.name.to_string(),
            key_id: self.key.id().to_string(),
            source,
        }
    }

    /// Verifies `feed` against the signature text read from `location`.
    fn verify(&self, feed: &[u8], signature: &[u8], location: &str) -> Result<(), SourceError> {
        let verified = self
            .key
            .verify(feed, signature, location)
            .map_err(|e| self.refused(e))?;
        self.reporter.verbose(&format!(
            "Source '{}': the feed's signature {location} verifies with the pinned key ID {} ({}); trusted comment: {}",
            self.name,
            self.key.id(),
            if verified.prehashed { "prehashed" } else { "legacy" },
            signing::printable(&verified.trusted_comment)
        ));
        Ok(())
    }

    /// A feed read over HTTP(S): its signature is `<feed URL>.minisig`,
    /// fetched with the same client, deadline and URL rules, and a small
    /// size limit.
    fn remote(&self, feed_url: &Url, feed: &[u8], client: &FeedClient) -> Result<(), SourceError> {
        let mut sig_url = feed_url.clone();
        sig_url.set_path(&format!("{}{SIGNATURE_SUFFIX}", feed_url.path()));
        let location = sig_url.to_string();
        self.reporter.verbose(&format!(
            "Fetching the signature of source '{}' from {location}",
            self.name
        ));
        let signature = match client.get_optional(&sig_url, MAX_SIGNATURE_BYTES) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(self.refused(SignatureError::Missing { location })),
            Err(SourceError::TooLarge { .. }) => {
                return Err(self.refused(SignatureError::TooLarge { location }))
            }
            Err(e) => {
                let reason = match &e {
                    SourceError::Deadline { deadline, .. } => format!(
                        "it did not arrive within {} seconds",
                        deadline.as_secs_f64()
                    ),
                    SourceError::Status { status, .. } => format!("the server answered {status}"),
                    SourceError::Fetch { source, .. } => error_chain(source),
                    other => error_chain(other),
                };
                return Err(self.refused(SignatureError::Fetch { location, reason }));
            }
        };
        self.verify(feed, &signature, &location)
    }

    /// A local feed file: its signature is the file beside it.
    fn local(&self, feed_file: &Path, feed: &[u8]) -> Result<(), SourceError> {
        let sig_path = signing::signature_path(feed_file);
        let signature = signing::read_signature_file(&sig_path).map_err(|e| self.refused(e))?;
        self.verify(feed, &signature, &sig_path.display().to_string())
    }
}

fn load_path(
    name: &str,
    path: &Path,
    check: Option<&Check<'_>>,
    cache: Option<&HashCache>,
    reporter: &dyn Reporter,
) -> Result<Vec<FeedEntry>, SourceError> {
    let read_err = |source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_dir() {
        reporter.verbose(&format!(
            "Reading the feed of source '{name}' from {}",
            path.display()
        ));
        let bytes = read_feed_file(path)?;
        if let Some(check) = check {
            check.local(path, &bytes)?;
        }
        let base = FeedBase::Folder(path.parent().map(Path::to_path_buf).unwrap_or_default());
        return feed::parse_entries(&bytes, &path.display().to_string(), &base, name)
            .map_err(SourceError::feed(name));
    }
    let manifest = path.join(FEED_FILE_NAME);
    match read_feed_file(&manifest) {
        Ok(bytes) => {
            reporter.verbose(&format!(
                "Reading the feed of source '{name}' from {}",
                manifest.display()
            ));
            if let Some(check) = check {
                check.local(&manifest, &bytes)?;
            }
            let base = FeedBase::Folder(path.to_path_buf());
            feed::parse_entries(&bytes, &manifest.display().to_string(), &base, name)
                .map_err(SourceError::feed(name))
        }
        Err(SourceError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            if let Some(check) = check {
                return Err(check.refused(SignatureError::NoFeedFile {
                    folder: path.display().to_string(),
                }));
            }
            reporter.verbose(&format!(
                "Source '{name}': {} has no {FEED_FILE_NAME}; reading the .wim files in it",
                path.display()
            ));
            let scan =
                feed::scan_wim_folder(path, cache, reporter).map_err(SourceError::feed(name))?;
            for failure in &scan.failures {
                reporter.warn(&format!("source '{name}': skipping a file: {failure}"));
            }
            let base = FeedBase::Folder(path.to_path_buf());
            scan.records
                .into_iter()
                .map(|r| r.resolve(&base, &path.display().to_string(), name))
                .collect::<Result<_, _>>()
                .map_err(SourceError::feed(name))
        }
        Err(other) => Err(other),
    }
}

/// A local feed document: a regular file (never a device or FIFO, see
/// [`crate::location::open_local_file`]), refusing one too large to be a feed.
pub(crate) fn read_feed_file(path: &Path) -> Result<Vec<u8>, SourceError> {
    let read_err = |source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    };
    let (file, meta) = crate::location::open_local_file(path).map_err(read_err)?;
    if meta.len() > MAX_FEED_BYTES {
        return Err(SourceError::TooLarge {
            location: path.display().to_string(),
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_FEED_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FEED_BYTES {
        return Err(SourceError::TooLarge {
            location: path.display().to_string(),
        });
    }
    Ok(bytes)
}

/// Loads several sources at once. Each result is in the order of `sources`.
pub fn load_all(
    sources: &[SourceConfig],
    client: &FeedClient,
    reporter: &dyn Reporter,
) -> Vec<Result<Vec<FeedEntry>, SourceError>> {
    let results = if sources.len() == 1 {
        sources.iter().map(|s| load(s, client, reporter)).collect()
    } else {
        load_parallel(sources, client, reporter)
    };
    client.save_hash_cache(reporter);
    results
}

fn load_parallel(
    sources: &[SourceConfig],
    client: &FeedClient,
    reporter: &dyn Reporter,
) -> Vec<Result<Vec<FeedEntry>, SourceError>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .iter()
            .map(|s| scope.spawn(move || load(s, client, reporter)))
            .collect();
        handles
            .into_iter()
            .zip(sources)
            .map(|(h, s)| {
                h.join().unwrap_or_else(|_| {
                    Err(SourceError::Stopped {
                        location: s.location.clone(),
                    })
                })
            })
            .collect()
    })
}
