//! Verified, resumable, retried downloads of `.wim` files.
//!
//! [`fetch`] brings one image to a destination file:
//!
//! - bytes stream into `<dest>.partial` while SHA-256 is computed; the
//!   destination appears only once size and hash match (fsync, then an atomic
//!   rename). A mismatch deletes the partial file and reports expected and
//!   actual values;
//! - an interrupted transfer resumes with `Range: bytes=N-`, also across runs
//!   (a leftover `.partial` is re-hashed and continued); only a `206` whose
//!   `Content-Range` starts at `N` is appended to, anything else starts over;
//! - connection failures, timeouts (including a stall longer than the read
//!   timeout), a transfer slower than [`Settings::min_rate`] over a whole
//!   [`Settings::rate_window`] (4 KiB/s over 60 s), `408`, `429` and `5xx`
//!   are retried with exponential backoff, resuming after what arrived; a
//!   location that fails for good hands over to the next mirror;
//! - bounded: nothing is written past the expected size; an image of unknown
//!   size (the JSON index gives none) stops at [`MAX_UNSIZED_BYTES`]
//!   (64 GiB). A URL that is not http(s) is refused at once, never retried;
//! - `file://` URLs and local paths are copied with the same verification
//!   and bounds; only regular files are read (a device or FIFO is refused);
//! - `<dest>.partial` is never written through a symbolic link or a hard
//!   link planted at its name: such a name is replaced by a new file.
//!
//! With the `test-hooks` feature (the binary the tests run, never a release
//! build), `CONTAINERIMAGE_RETRY_BASE_MS`, `CONTAINERIMAGE_RETRIES`,
//! `CONTAINERIMAGE_READ_TIMEOUT_MS`, `CONTAINERIMAGE_MAX_UNSIZED_BYTES`,
//! `CONTAINERIMAGE_MIN_RATE` (bytes per second) and
//! `CONTAINERIMAGE_RATE_WINDOW_MS` override these defaults.

mod http;
mod partial;
mod watch;

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;

use crate::feed::FeedEntry;
use crate::location::Location;
use crate::progress::{human_bytes, Reporter};

pub use partial::partial_path;

pub(crate) use http::describe;
use http::AttemptError;
use partial::Partial;
use watch::Watch;

/// The most bytes written for an image whose size is not known in advance
/// (an entry of the JSON index, which gives no size or hash).
pub const MAX_UNSIZED_BYTES: u64 = 64 << 30;

/// How hard to try: timeouts, retries, bounds and an optional proxy.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Longest wait for the connection to open.
    pub connect_timeout: Duration,
    /// Longest wait for the response or for the next body bytes.
    pub read_timeout: Duration,
    /// Failed attempts in a row on one location before moving to the next.
    pub retries: u32,
    /// Pause before the first retry; it doubles on every further one.
    pub retry_base: Duration,
    /// The longest pause between retries.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a longer one counts as a failure.
    pub max_retry_after: Duration,
    /// Proxy URL for every request (`-Proxy`). Without one, `HTTPS_PROXY`,
    /// `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` apply.
    pub proxy: Option<String>,
    /// The most bytes written when the expected size is unknown.
    pub max_unsized: u64,
    /// The slowest transfer accepted, in bytes per second, averaged over
    /// [`Settings::rate_window`]; slower is a stall (transient, resumed).
    pub min_rate: u64,
    /// How long a transfer may stay below [`Settings::min_rate`].
    pub rate_window: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
            retries: 5,
            retry_base: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            proxy: None,
            max_unsized: MAX_UNSIZED_BYTES,
            min_rate: 4096,
            rate_window: Duration::from_secs(60),
        }
    }
}

impl Settings {
    /// The defaults, adjusted by the test switches of the module
    /// documentation. Without the `test-hooks` feature (release builds) the
    /// variables are not read.
    pub fn from_env() -> Settings {
        #[cfg(not(feature = "test-hooks"))]
        {
            Settings::default()
        }
        #[cfg(feature = "test-hooks")]
        Settings::from_test_env()
    }

    #[cfg(feature = "test-hooks")]
    fn from_test_env() -> Settings {
        let mut s = Settings::default();
        let number = |name: &str| -> Option<u64> { std::env::var(name).ok()?.trim().parse().ok() };
        if let Some(ms) = number("CONTAINERIMAGE_RETRY_BASE_MS") {
            s.retry_base = Duration::from_millis(ms);
        }
        if let Some(n) = number("CONTAINERIMAGE_RETRIES") {
            s.retries = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(ms) = number("CONTAINERIMAGE_READ_TIMEOUT_MS") {
            s.read_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(n) = number("CONTAINERIMAGE_MAX_UNSIZED_BYTES") {
            s.max_unsized = n;
        }
        if let Some(n) = number("CONTAINERIMAGE_MIN_RATE") {
            s.min_rate = n;
        }
        if let Some(ms) = number("CONTAINERIMAGE_RATE_WINDOW_MS") {
            s.rate_window = Duration::from_millis(ms.max(1));
        }
        s
    }
}

/// An HTTP client and the settings to use it with; build once, reuse.
pub struct Downloader {
    client: Client,
    settings: Settings,
}

impl Downloader {
    pub fn new(settings: Settings) -> Result<Downloader, DownloadError> {
        let mut builder = Client::builder()
            .user_agent(concat!("containerimage/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.read_timeout);
        if let Some(p) = &settings.proxy {
            let proxy = reqwest::Proxy::all(p.as_str()).map_err(|source| DownloadError::Proxy {
                proxy: p.clone(),
                source,
            })?;
            builder = builder.proxy(proxy);
        }
        let client = builder.build().map_err(DownloadError::Client)?;
        Ok(Downloader { client, settings })
    }

    /// A downloader with [`Settings::from_env`] and an optional `-Proxy`.
    pub fn from_env(proxy: Option<&str>) -> Result<Downloader, DownloadError> {
        let mut settings = Settings::from_env();
        settings.proxy = proxy.map(str::to_string);
        Downloader::new(settings)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

/// What to download: mirrors in order, and what the result must be.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Shown in progress and errors, e.g. `NanoServer 10.0.14300.1010`.
    pub label: String,
    pub locations: &'a [Location],
    /// Expected size in bytes, when the feed says.
    pub size: Option<u64>,
    /// Expected SHA-256, when the feed says. Without it the file is not
    /// verified (a warning says so) and never resumed across runs.
    pub sha256: Option<[u8; 32]>,
    /// An `Authorization` header for the first host (a registry's token).
    /// It is marked sensitive (never shown by `Debug`), and a redirect to
    /// another host or port goes without it.
    pub authorization: Option<reqwest::header::HeaderValue>,
}

impl<'a> From<&'a FeedEntry> for Request<'a> {
    fn from(e: &'a FeedEntry) -> Self {
        Request {
            label: format!("{} {}", e.name, e.version),
            locations: &e.locations,
            size: e.size,
            sha256: e.sha256,
            authorization: None,
        }
    }
}

/// How the destination came to hold the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Obtained {
    /// Transferred (or copied) from this location.
    Downloaded(Location),
    /// The destination already held a file with the expected hash; kept.
    AlreadyPresent,
}

/// A finished download.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The destination file.
    pub path: PathBuf,
    pub obtained: Obtained,
    pub size: u64,
    pub sha256: [u8; 32],
    /// The hash was checked against the feed's.
    pub verified: bool,
    /// Time spent, verification included.
    pub elapsed: Duration,
}

/// Why one location did not deliver the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailureReason {
    #[error("HTTP {status}")]
    Http { status: String },
    #[error("SHA-256 mismatch: expected {expected}, got {actual}")]
    HashMismatch { expected: String, actual: String },
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("gave up after {attempts} attempts; last error: {last}")]
    GaveUp { attempts: u32, last: String },
    #[error("the server asked to retry after {seconds} seconds, longer than the {limit} seconds allowed")]
    RetryTooLate { seconds: u64, limit: u64 },
    #[error("cannot read the file: {0}")]
    Unreadable(String),
    #[error(
        "more than {limit} bytes arrived for an image whose size the feed does not give; \
         the download stops there"
    )]
    TooLarge { limit: u64 },
    #[error("'{url}' is not an http:// or https:// URL")]
    NotHttp { url: String },
    #[error("the request cannot be made: {0}")]
    BadRequest(String),
}

/// A location and why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationFailure {
    pub location: String,
    pub reason: FailureReason,
}

/// The failures of every location tried, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failures(pub Vec<LocationFailure>);

impl fmt::Display for Failures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, failure) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  {}: {}", failure.location, failure.reason)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("'{proxy}' is not a usable proxy URL")]
    Proxy {
        proxy: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{label} has no download location")]
    NoLocation { label: String },
    #[error("not enough free space in {}: {needed} bytes needed, {free} bytes free", dir.display())]
    NoSpace {
        dir: PathBuf,
        needed: u64,
        free: u64,
    },
    #[error("cannot check the free space in {}", dir.display())]
    Space {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} exists and is not a file", path.display())]
    NotAFile { path: PathBuf },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not download {label}; every location failed:\n{failures}")]
    AllLocationsFailed { label: String, failures: Failures },
}

/// Progress context and bounds of one download.
pub(crate) struct Job<'a> {
    reporter: &'a dyn Reporter,
    label: &'a str,
    size: Option<u64>,
    settings: &'a Settings,
    /// When the server last sent something, to report a silent one.
    watch: &'a Watch,
}

impl Job<'_> {
    /// The most bytes the file may hold: its size, or the limit for files
    /// of unknown size.
    fn limit(&self) -> u64 {
        self.size.unwrap_or(self.settings.max_unsized)
    }
}

impl Job<'_> {
    /// The kept prefix was dropped: progress starts again from zero.
    fn restarted(&self) {
        self.reporter.on_complete();
        self.reporter.on_start(self.label, self.size);
    }
}

/// Downloads `request` to `dest` (see the module documentation for the
/// guarantees), reusable by every command that needs a `.wim` on disk.
///
/// - An existing `dest` whose SHA-256 matches the expected one is kept
///   ([`Obtained::AlreadyPresent`]) unless `force`.
/// - The folder of `dest` must exist; `<dest>.partial` is created beside it.
/// - Progress goes to `reporter` (`on_start`/`on_progress`/`on_complete`),
///   URLs, retries and sizes to `reporter.verbose`, a missing hash to `reporter.warn`.
/// - On failure `dest` is untouched; a `.partial` file stays behind only
///   when a later run can resume it (the hash is known and no mismatch was seen).
pub fn fetch(
    downloader: &Downloader,
    request: &Request<'_>,
    dest: &Path,
    force: bool,
    reporter: &dyn Reporter,
) -> Result<Outcome, DownloadError> {
    let started = Instant::now();
    if request.locations.is_empty() {
        return Err(DownloadError::NoLocation {
            label: request.label.clone(),
        });
    }
    if request.sha256.is_none() {
        reporter.warn(&format!(
            "the feed gives no SHA-256 for {}: the download cannot be verified \
             (the .wim's own SHA-1 checksums are still checked when it is applied)",
            request.label
        ));
    }

    let partial_file = partial_path(dest);
    // Without a hash a kept prefix cannot be trusted, so it is only resumed within one run.
    let keep = request.sha256.is_some();
    let mut partial =
        Partial::open(partial_file.clone(), keep, request.size).map_err(|source| {
            DownloadError::Write {
                path: partial_file.clone(),
                source,
            }
        })?;
    // Checked with the partial file locked: a concurrent download of the
    // same file has finished by now, or has not started.
    match already_present(request, dest, force, started) {
        Ok(None) => {}
        Ok(Some(outcome)) => {
            partial.discard();
            reporter.verbose(&format!(
                "{} already holds {} with the expected SHA-256",
                dest.display(),
                request.label
            ));
            return Ok(outcome);
        }
        Err(e) => {
            partial.discard();
            return Err(e);
        }
    }
    if partial.len() > 0 {
        reporter.verbose(&format!(
            "resuming {} after {} bytes left by an earlier run",
            partial_file.display(),
            partial.len()
        ));
        reporter.note(&format!(
            "{}: resuming at {}",
            request.label,
            human_bytes(partial.len())
        ));
    }
    if let Some(size) = request.size {
        check_space(dest, size.saturating_sub(partial.len()))?;
    }

    let watch = Watch::new();
    let job = Job {
        reporter,
        label: &request.label,
        size: request.size,
        settings: &downloader.settings,
        watch: &watch,
    };
    reporter.on_start(&request.label, request.size);
    if partial.len() > 0 {
        reporter.on_resume(partial.len());
    }
    reporter.on_partial_file(Some(partial.path()));
    let read_timeout = downloader.settings.read_timeout;
    let notice = (read_timeout / 3).min(Duration::from_secs(10));
    let result = watch.around(&request.label, notice, read_timeout, reporter, || {
        fetch_from_mirrors(downloader, request, &mut partial, &job, dest)
    });
    reporter.on_complete();
    reporter.on_partial_file(None);
    match result {
        Ok((location, sha256)) => {
            let size = partial.len();
            partial
                .persist(dest)
                .map_err(|source| DownloadError::Write {
                    path: dest.to_path_buf(),
                    source,
                })?;
            reporter.verbose(&format!(
                "saved {} ({size} bytes, SHA-256 {})",
                dest.display(),
                hex::encode(sha256)
            ));
            Ok(Outcome {
                path: dest.to_path_buf(),
                obtained: Obtained::Downloaded(location),
                size,
                sha256,
                verified: request.sha256.is_some(),
                elapsed: started.elapsed(),
            })
        }
        Err(e) => {
            // Keep a prefix worth resuming; anything unverifiable goes.
            if partial.len() == 0 || request.sha256.is_none() {
                partial.discard();
            } else {
                reporter.note(&format!(
                    "{}: the partial download ({}) is kept in {}; running the same command again resumes it",
                    request.label,
                    human_bytes(partial.len()),
                    partial_file.display()
                ));
            }
            Err(e)
        }
    }
}

fn already_present(
    request: &Request<'_>,
    dest: &Path,
    force: bool,
    started: Instant,
) -> Result<Option<Outcome>, DownloadError> {
    let meta = match std::fs::symlink_metadata(dest) {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    // A link is never taken for the file: the download replaces it.
    if meta.file_type().is_symlink() {
        return Ok(None);
    }
    if !meta.is_file() {
        return Err(DownloadError::NotAFile {
            path: dest.to_path_buf(),
        });
    }
    let Some(expected) = request.sha256 else {
        return Ok(None);
    };
    if force || request.size.is_some_and(|s| s != meta.len()) {
        return Ok(None);
    }
    let (sha256, size) = partial::hash_file(dest).map_err(|source| DownloadError::Read {
        path: dest.to_path_buf(),
        source,
    })?;
    if sha256 != expected {
        return Ok(None);
    }
    Ok(Some(Outcome {
        path: dest.to_path_buf(),
        obtained: Obtained::AlreadyPresent,
        size,
        sha256,
        verified: true,
        elapsed: started.elapsed(),
    }))
}

fn check_space(dest: &Path, needed: u64) -> Result<(), DownloadError> {
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let free = crate::fsutil::available_space(&dir).map_err(|source| DownloadError::Space {
        dir: dir.clone(),
        source,
    })?;
    if needed > free {
        return Err(DownloadError::NoSpace { dir, needed, free });
    }
    Ok(())
}

/// Tries each location in turn until one delivers a verified file.
fn fetch_from_mirrors(
    downloader: &Downloader,
    request: &Request<'_>,
    partial: &mut Partial,
    job: &Job<'_>,
    dest: &Path,
) -> Result<(Location, [u8; 32]), DownloadError> {
    let mut failures = Vec::new();
    for location in request.locations {
        let outcome = match location {
            Location::Http(url) => fetch_http(downloader, url, request, partial, job, dest),
            Location::Path(path) => copy_local(path, request, partial, job),
        };
        match outcome {
            Ok(sha256) => return Ok((location.clone(), sha256)),
            Err(AttemptError::Local(e)) => return Err(e),
            Err(AttemptError::Permanent(reason)) => {
                job.reporter
                    .verbose(&format!("{location} failed: {reason}"));
                failures.push(LocationFailure {
                    location: location.to_string(),
                    reason,
                });
            }
            Err(AttemptError::Transient { reason, .. }) => {
                // fetch_http turns exhausted retries into GaveUp; keep any stray one.
                failures.push(LocationFailure {
                    location: location.to_string(),
                    reason: FailureReason::GaveUp {
                        attempts: 1,
                        last: reason,
                    },
                });
            }
        }
    }
    Err(DownloadError::AllLocationsFailed {
        label: request.label.clone(),
        failures: Failures(failures),
    })
}

/// Checks size and hash of a complete partial file. On a mismatch the
/// content is dropped (the file emptied) and the reason returned.
fn verify(
    request: &Request<'_>,
    partial: &mut Partial,
    job: &Job<'_>,
) -> Result<[u8; 32], AttemptError> {
    let actual = partial.digest();
    let reason = if let Some(size) = request.size.filter(|s| *s != partial.len()) {
        Some(FailureReason::SizeMismatch {
            expected: size,
            actual: partial.len(),
        })
    } else {
        match request.sha256 {
            Some(expected) if expected != actual => Some(FailureReason::HashMismatch {
                expected: hex::encode(expected),
                actual: hex::encode(actual),
            }),
            _ => None,
        }
    };
    match reason {
        None => Ok(actual),
        Some(reason) => {
            partial.restart().map_err(|source| {
                AttemptError::Local(DownloadError::Write {
                    path: partial.path().to_path_buf(),
                    source,
                })
            })?;
            job.restarted();
            Err(AttemptError::Permanent(reason))
        }
    }
}

fn fetch_http(
    downloader: &Downloader,
    url: &reqwest::Url,
    request: &Request<'_>,
    partial: &mut Partial,
    job: &Job<'_>,
    dest: &Path,
) -> Result<[u8; 32], AttemptError> {
    let settings = &downloader.settings;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AttemptError::Permanent(FailureReason::NotHttp {
            url: url.to_string(),
        }));
    }
    let mut failures_in_a_row: u32 = 0;
    let mut attempts: u32 = 0;
    // Bytes in the partial file that this location did not send in this run
    // (an earlier run, another mirror): a mismatch then earns one fresh start.
    let mut foreign_prefix = partial.len() > 0;
    let mut size_checked = request.size.is_some();
    let mut on_size = |size: u64| -> Result<(), DownloadError> {
        if !size_checked {
            size_checked = true;
            check_space(dest, size)?;
        }
        Ok(())
    };
    loop {
        attempts += 1;
        let before = partial.len();
        // A partial file left complete by an earlier run needs no request.
        let complete = request.size.is_some_and(|s| s > 0 && s == partial.len());
        let result = if complete {
            verify(request, partial, job)
        } else {
            job.watch.begin(&host_of(url));
            let fetched = http::attempt(
                &downloader.client,
                url,
                request.authorization.as_ref(),
                partial,
                job,
                &mut on_size,
            );
            job.watch.end();
            fetched.and_then(|()| verify(request, partial, job))
        };
        match result {
            Ok(sha256) => return Ok(sha256),
            Err(AttemptError::Permanent(reason)) => {
                let mismatch = matches!(
                    reason,
                    FailureReason::HashMismatch { .. } | FailureReason::SizeMismatch { .. }
                );
                if mismatch && foreign_prefix {
                    foreign_prefix = false;
                    job.reporter.verbose(&format!(
                        "{url}: {reason}; the kept partial file may be stale, downloading again from byte 0"
                    ));
                    partial.restart().map_err(|source| {
                        AttemptError::Local(DownloadError::Write {
                            path: partial.path().to_path_buf(),
                            source,
                        })
                    })?;
                    job.restarted();
                    continue;
                }
                return Err(AttemptError::Permanent(reason));
            }
            Err(AttemptError::Local(e)) => return Err(AttemptError::Local(e)),
            Err(AttemptError::Transient {
                reason,
                retry_after,
                backoff,
            }) => {
                if partial.len() > before {
                    failures_in_a_row = 0;
                }
                if partial.len() == 0 {
                    foreign_prefix = false;
                }
                failures_in_a_row += 1;
                // Progress resets the count; this caps a server that keeps dropping.
                let give_up = failures_in_a_row > settings.retries
                    || attempts > settings.retries.saturating_mul(20).max(20);
                if give_up {
                    return Err(AttemptError::Permanent(FailureReason::GaveUp {
                        attempts,
                        last: reason,
                    }));
                }
                let pause = match retry_after {
                    Some(wait) if wait > settings.max_retry_after => {
                        return Err(AttemptError::Permanent(FailureReason::RetryTooLate {
                            seconds: wait.as_secs(),
                            limit: settings.max_retry_after.as_secs(),
                        }))
                    }
                    Some(wait) => wait,
                    None if backoff => backoff_delay(settings, failures_in_a_row),
                    None => Duration::ZERO,
                };
                job.reporter.verbose(&format!(
                    "{url}: {reason}; retry {failures_in_a_row} of {} in {} ms",
                    settings.retries,
                    pause.as_millis()
                ));
                job.reporter.note(&format!(
                    "{}: {reason}; retrying in {} (retry {failures_in_a_row} of {})",
                    job.label,
                    pause_words(pause),
                    settings.retries
                ));
                std::thread::sleep(pause);
            }
        }
    }
}

/// `host:port` of a URL, for messages.
fn host_of(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => url.to_string(),
    }
}

/// `2 s`, `250 ms`: a pause for people.
fn pause_words(pause: Duration) -> String {
    if pause >= Duration::from_secs(1) {
        format!("{} s", pause.as_secs_f64().round() as u64)
    } else {
        format!("{} ms", pause.as_millis())
    }
}

/// `retry_base × 2^(n-1)`, capped at `max_backoff`.
fn backoff_delay(settings: &Settings, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
    settings
        .retry_base
        .checked_mul(factor)
        .unwrap_or(settings.max_backoff)
        .min(settings.max_backoff)
}

/// Copies a local file into the partial file and verifies it. Only a
/// regular file is read, and never more than the expected size (or the
/// limit for files of unknown size), even if it grows while being copied.
fn copy_local(
    path: &Path,
    request: &Request<'_>,
    partial: &mut Partial,
    job: &Job<'_>,
) -> Result<[u8; 32], AttemptError> {
    let unreadable =
        |e: std::io::Error| AttemptError::Permanent(FailureReason::Unreadable(e.to_string()));
    let local_err = |partial: &Partial, source| {
        AttemptError::Local(DownloadError::Write {
            path: partial.path().to_path_buf(),
            source,
        })
    };
    job.reporter.verbose(&format!("copying {}", path.display()));
    let (file, meta) = crate::location::open_local_file(path).map_err(unreadable)?;
    let len = meta.len();
    if let Some(size) = request.size.filter(|s| *s != len) {
        return Err(AttemptError::Permanent(FailureReason::SizeMismatch {
            expected: size,
            actual: len,
        }));
    }
    let limit = job.limit();
    if len > limit {
        return Err(AttemptError::Permanent(FailureReason::TooLarge { limit }));
    }
    if partial.len() > 0 {
        partial.restart().map_err(|e| local_err(partial, e))?;
        job.restarted();
    }
    // One byte past the limit shows a file that grew beyond it.
    let mut reader = file.take(limit.saturating_add(1));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(unreadable(e)),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        if partial.len() + n as u64 > limit {
            let actual = partial.len() + n as u64;
            partial.restart().map_err(|e| local_err(partial, e))?;
            job.restarted();
            return Err(AttemptError::Permanent(match request.size {
                Some(expected) => FailureReason::SizeMismatch { expected, actual },
                None => FailureReason::TooLarge { limit },
            }));
        }
        partial.append(chunk).map_err(|e| local_err(partial, e))?;
        job.reporter.on_progress(n as u64);
    }
    verify(request, partial, job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Settings {
            retry_base: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            ..Settings::default()
        };
        let delays: Vec<u128> = (1..=5).map(|n| backoff_delay(&s, n).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 500, 500]);
        assert_eq!(backoff_delay(&s, 200), Duration::from_millis(500));
    }

    #[test]
    fn failures_list_every_location() {
        let f = Failures(vec![
            LocationFailure {
                location: "http://a/x.wim".into(),
                reason: FailureReason::Http {
                    status: "404 Not Found".into(),
                },
            },
            LocationFailure {
                location: "http://b/x.wim".into(),
                reason: FailureReason::SizeMismatch {
                    expected: 10,
                    actual: 9,
                },
            },
        ]);
        assert_eq!(
            f.to_string(),
            "  http://a/x.wim: HTTP 404 Not Found\n  http://b/x.wim: size mismatch: expected 10 bytes, got 9"
        );
    }
}
