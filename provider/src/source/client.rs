//! Fetching feed documents over HTTP.

use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::feed::HashCache;
use crate::progress::Reporter;

use super::{SourceError, CONNECT_TIMEOUT, FEED_DEADLINE, MAX_FEED_BYTES};

/// Fetches feed documents over HTTP. The HTTP client is built on first use,
/// so local sources cost nothing; proxies come from the environment
/// (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`).
///
/// A whole document, connection and body included, must arrive within a
/// deadline: [`FEED_DEADLINE`] by default (with the `test-hooks` feature,
/// `CONTAINERIMAGE_FEED_DEADLINE_MS` overrides it for tests).
pub struct FeedClient {
    deadline: Duration,
    client: OnceLock<Result<reqwest::blocking::Client, String>>,
    pub(super) hash_cache: Option<HashCache>,
}

impl Default for FeedClient {
    fn default() -> Self {
        FeedClient::new(feed_deadline())
    }
}

impl FeedClient {
    /// A client that gives each feed document at most `deadline`.
    pub fn new(deadline: Duration) -> Self {
        FeedClient {
            deadline,
            client: OnceLock::new(),
            hash_cache: None,
        }
    }

    /// Remembers the hashes of `.wim` files in folder sources in `file`
    /// (e.g. `<home>/cache/wim-hashes.json`), so unchanged files are not
    /// read again at the next search.
    pub fn with_hash_cache(mut self, file: PathBuf) -> Self {
        self.hash_cache = Some(HashCache::open(file));
        self
    }

    /// Writes remembered hashes back; a failure only costs time later.
    pub fn save_hash_cache(&self, reporter: &dyn Reporter) {
        if let Some(cache) = &self.hash_cache {
            if let Err(e) = cache.save() {
                reporter.verbose(&format!("cannot save the hash cache: {e}"));
            }
        }
    }

    fn client(&self, url: &str) -> Result<&reqwest::blocking::Client, SourceError> {
        let built = self.client.get_or_init(|| {
            reqwest::blocking::Client::builder()
                .timeout(self.deadline)
                .connect_timeout(CONNECT_TIMEOUT.min(self.deadline))
                .user_agent(concat!("containerimage/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.to_string())
        });
        built.as_ref().map_err(|e| SourceError::Client {
            url: url.to_string(),
            reason: e.clone(),
        })
    }

    /// The document at `url` and the URL it was finally served from
    /// (after redirects), which relative locations are resolved against.
    /// The whole fetch must finish within the deadline.
    pub fn get(
        &self,
        url: &crate::location::Url,
    ) -> Result<(Vec<u8>, crate::location::Url), SourceError> {
        match self.fetch(url, MAX_FEED_BYTES, false)? {
            Some(found) => Ok(found),
            // Not reached: only a fetch that may be absent answers None.
            None => Err(SourceError::Stopped {
                location: url.to_string(),
            }),
        }
    }

    /// A small document that may be absent (a feed's signature): `None`
    /// when the server answers 404 or 410, else the body, at most `limit`
    /// bytes ([`SourceError::TooLarge`] beyond), within the same deadline.
    pub fn get_optional(
        &self,
        url: &crate::location::Url,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        Ok(self.fetch(url, limit, true)?.map(|(body, _)| body))
    }

    fn fetch(
        &self,
        url: &crate::location::Url,
        limit: u64,
        may_be_absent: bool,
    ) -> Result<Option<(Vec<u8>, crate::location::Url)>, SourceError> {
        let started = Instant::now();
        let text = url.to_string();
        let late = || SourceError::Deadline {
            url: text.clone(),
            deadline: self.deadline,
        };
        let response = self
            .client(&text)?
            .get(url.clone())
            // reqwest applies this to the whole exchange, body included.
            .timeout(self.deadline)
            .send()
            .map_err(|source| {
                if source.is_timeout() && started.elapsed() >= self.deadline {
                    late()
                } else {
                    SourceError::Fetch {
                        url: text.clone(),
                        source,
                    }
                }
            })?;
        let status = response.status();
        if may_be_absent
            && matches!(
                status,
                reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::GONE
            )
        {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(SourceError::Status {
                url: text,
                status: status.to_string(),
            });
        }
        let final_url = response.url().clone();
        let mut body = Vec::new();
        let mut limited = response.take(limit + 1);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if started.elapsed() >= self.deadline {
                return Err(late());
            }
            let n = match limited.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) if started.elapsed() >= self.deadline => return Err(late()),
                Err(source) => {
                    return Err(SourceError::Read {
                        path: PathBuf::from(&text),
                        source,
                    })
                }
            };
            body.extend_from_slice(buf.get(..n).unwrap_or_default());
            if body.len() as u64 > limit {
                return Err(SourceError::TooLarge { location: text });
            }
        }
        Ok(Some((body, final_url)))
    }
}

/// [`FEED_DEADLINE`], or in test builds `CONTAINERIMAGE_FEED_DEADLINE_MS`.
fn feed_deadline() -> Duration {
    #[cfg(feature = "test-hooks")]
    if let Some(ms) = std::env::var("CONTAINERIMAGE_FEED_DEADLINE_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Duration::from_millis(ms.max(1));
    }
    FEED_DEADLINE
}
