//! One HTTP transfer into a partial file: a `GET`, resumed with `Range` when
//! the file already holds a prefix, and what its failure means for retrying.

use std::io::Read;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use sha2::Digest;

use super::partial::Partial;
use super::{DownloadError, FailureReason, Job};

/// Size of the buffer body bytes are read into.
const BUFFER: usize = 1 << 20;

/// Why one attempt did not finish the transfer.
pub(super) enum AttemptError {
    /// Worth trying the same URL again (after a pause when `backoff`).
    Transient {
        reason: String,
        retry_after: Option<Duration>,
        backoff: bool,
    },
    /// This URL will not work; try the next mirror.
    Permanent(FailureReason),
    /// A local problem (writing the file) that no mirror can fix.
    Local(DownloadError),
}

fn transient(reason: impl Into<String>) -> AttemptError {
    AttemptError::Transient {
        reason: reason.into(),
        retry_after: None,
        backoff: true,
    }
}

fn local(partial: &Partial, source: std::io::Error) -> AttemptError {
    AttemptError::Local(DownloadError::Write {
        path: partial.path().to_path_buf(),
        source,
    })
}

/// Fetches `url` into `partial`, resuming after what it holds. `Ok` means the
/// server sent everything it announced; the caller verifies size and hash.
/// `on_size` learns the size when the caller did not know it.
pub(super) fn attempt(
    client: &Client,
    url: &Url,
    authorization: Option<&reqwest::header::HeaderValue>,
    partial: &mut Partial,
    job: &Job<'_>,
    on_size: &mut dyn FnMut(u64) -> Result<(), DownloadError>,
) -> Result<(), AttemptError> {
    let reporter = job.reporter;
    let expected_size = job.size;
    let start = partial.len();
    let mut request = client.get(url.clone());
    if let Some(value) = authorization {
        let mut value = value.clone();
        value.set_sensitive(true);
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    if start > 0 {
        request = request.header(RANGE, format!("bytes={start}-"));
        reporter.verbose(&format!("GET {url} (resuming at byte {start})"));
    } else {
        reporter.verbose(&format!("GET {url}"));
    }
    let mut response = request.send().map_err(|e| {
        if e.is_builder() {
            // Nothing a retry could change (e.g. a URL reqwest cannot use).
            AttemptError::Permanent(FailureReason::BadRequest(describe(&e)))
        } else {
            transient(describe(&e))
        }
    })?;
    let status = response.status();
    if status.is_success() {
        reporter.verbose(&format!("{url}: HTTP {}", status_text(status)));
    }

    match status {
        StatusCode::PARTIAL_CONTENT => {
            let range = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range);
            match range {
                Some(r) if r.first == start && start > 0 => {}
                Some(r) if r.first == 0 => {
                    if start > 0 {
                        reporter.verbose(&format!(
                            "{url}: the server sent the file from byte 0 instead of {start}; starting over"
                        ));
                        partial.restart().map_err(|e| local(partial, e))?;
                        job.restarted();
                    }
                }
                other => {
                    let shown = other.map_or_else(|| "none".to_string(), |r| r.to_string());
                    partial.restart().map_err(|e| local(partial, e))?;
                    job.restarted();
                    return Err(AttemptError::Transient {
                        reason: format!(
                            "asked for bytes {start}- and got Content-Range {shown}; starting over"
                        ),
                        retry_after: None,
                        backoff: false,
                    });
                }
            }
            if let (Some(r), Some(size)) = (range, expected_size) {
                if r.total.is_some_and(|t| t != size) {
                    return Err(AttemptError::Permanent(FailureReason::SizeMismatch {
                        expected: size,
                        actual: r.total.unwrap_or_default(),
                    }));
                }
            }
        }
        StatusCode::OK => {
            if start > 0 {
                reporter.verbose(&format!(
                    "{url}: the server ignored the Range request; starting over"
                ));
                partial.restart().map_err(|e| local(partial, e))?;
                job.restarted();
            }
            let announced = content_length(&response);
            if let (Some(size), Some(len)) = (expected_size, announced) {
                if size != len {
                    return Err(AttemptError::Permanent(FailureReason::SizeMismatch {
                        expected: size,
                        actual: len,
                    }));
                }
            }
            if expected_size.is_none() {
                if let Some(len) = announced {
                    let limit = job.limit();
                    if len > limit {
                        return Err(AttemptError::Permanent(FailureReason::TooLarge { limit }));
                    }
                    on_size(len).map_err(AttemptError::Local)?;
                }
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            partial.restart().map_err(|e| local(partial, e))?;
            job.restarted();
            return Err(AttemptError::Transient {
                reason: format!("the server cannot resume at byte {start}; starting over"),
                retry_after: None,
                backoff: false,
            });
        }
        s if s == StatusCode::REQUEST_TIMEOUT
            || s == StatusCode::TOO_MANY_REQUESTS
            || s.is_server_error() =>
        {
            return Err(AttemptError::Transient {
                reason: format!("HTTP {}", status_text(s)),
                retry_after: retry_after(&response),
                backoff: true,
            });
        }
        s => {
            return Err(AttemptError::Permanent(FailureReason::Http {
                status: status_text(s),
            }))
        }
    }

    copy_body(&mut response, partial, job)
}

/// Streams the body into the partial file. Reads fill 1 MiB buffers; each
/// full buffer is written, then hashed on a second thread while the next one
/// fills, so SHA-256 runs beside the transfer instead of after it. Whatever
/// arrived before a failure is still written, so a retry resumes after it.
fn copy_body(
    response: &mut Response,
    partial: &mut Partial,
    job: &Job<'_>,
) -> Result<(), AttemptError> {
    let expected_size = job.size;
    let hasher = partial.take_hasher();
    let (result, hasher) = std::thread::scope(|scope| {
        let (to_hash, filled) = mpsc::sync_channel::<(Vec<u8>, usize)>(BUFFERS - 1);
        let (give_back, returned) = mpsc::channel::<Vec<u8>>();
        let worker = scope.spawn(move || {
            let mut hasher = hasher;
            for (buf, len) in filled {
                hasher.update(buf.get(..len).unwrap_or_default());
                let _ = give_back.send(buf);
            }
            hasher
        });
        let result = pump(response, partial, job, &to_hash, &returned);
        drop(to_hash);
        (result, worker.join())
    });
    match hasher {
        Ok(h) => partial.set_hasher(h),
        Err(_) => {
            return Err(local(
                partial,
                std::io::Error::other("the hashing thread stopped unexpectedly"),
            ))
        }
    }
    result?;
    if let Some(size) = expected_size {
        if partial.len() < size {
            return Err(transient(format!(
                "the connection ended after {} of {size} bytes",
                partial.len()
            )));
        }
    }
    Ok(())
}

/// Buffers in flight between reading and hashing.
const BUFFERS: usize = 3;

/// Watches the transfer rate: too few bytes over a whole window is a stall.
struct RateWatch {
    min_rate: u64,
    window: Duration,
    started: Instant,
    bytes: u64,
}

impl RateWatch {
    fn new(min_rate: u64, window: Duration) -> Self {
        RateWatch {
            min_rate,
            window,
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `n` more bytes; `Some(reason)` when the window just ended
    /// below the minimum rate.
    fn add(&mut self, n: usize) -> Option<String> {
        self.bytes += n as u64;
        let elapsed = self.started.elapsed();
        if elapsed < self.window {
            return None;
        }
        let needed = (self.min_rate as f64 * elapsed.as_secs_f64()) as u64;
        let stalled = (self.bytes < needed).then(|| {
            format!(
                "the transfer stalled: {} bytes in {:.1} s, below the minimum of {} bytes per second",
                self.bytes,
                elapsed.as_secs_f64(),
                self.min_rate
            )
        });
        self.started = Instant::now();
        self.bytes = 0;
        stalled
    }
}

/// Reads the body into buffers, writes each and passes it to the hasher.
fn pump(
    response: &mut Response,
    partial: &mut Partial,
    job: &Job<'_>,
    to_hash: &mpsc::SyncSender<(Vec<u8>, usize)>,
    returned: &mpsc::Receiver<Vec<u8>>,
) -> Result<(), AttemptError> {
    let reporter = job.reporter;
    let mut rate = RateWatch::new(job.settings.min_rate, job.settings.rate_window);
    let mut allocated = 1;
    let mut buf = vec![0u8; BUFFER];
    let mut filled = 0usize;
    loop {
        let free = buf.get_mut(filled..).unwrap_or_default();
        let read = match response.read(free) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => other,
        };
        let mut stalled = None;
        let ended = match &read {
            Ok(0) | Err(_) => true,
            Ok(n) => {
                job.watch.alive();
                // Counted as it arrives, so a slow server's bar still moves.
                reporter.on_progress(*n as u64);
                filled += n;
                stalled = rate.add(*n);
                stalled.is_some()
            }
        };
        if (ended && filled > 0) || filled == buf.len() {
            store(partial, buf.get(..filled).unwrap_or_default(), job)?;
            let next = match returned.try_recv() {
                Ok(b) => b,
                Err(_) if allocated < BUFFERS => {
                    allocated += 1;
                    vec![0u8; BUFFER]
                }
                Err(_) => returned.recv().map_err(|_| hasher_gone(partial))?,
            };
            let full = std::mem::replace(&mut buf, next);
            to_hash
                .send((full, filled))
                .map_err(|_| hasher_gone(partial))?;
            filled = 0;
        }
        if let Some(reason) = stalled {
            return Err(transient(format!(
                "{reason} (after {} bytes)",
                partial.len()
            )));
        }
        match read {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                return Err(transient(format!(
                    "{} after {} bytes",
                    describe_io(&e),
                    partial.len()
                )))
            }
        }
    }
}

fn hasher_gone(partial: &Partial) -> AttemptError {
    local(
        partial,
        std::io::Error::other("the hashing thread stopped unexpectedly"),
    )
}

/// Appends received bytes (unhashed: the hashing thread takes them next),
/// refusing any byte past the expected size (or, without one, the limit
/// for files of unknown size): nothing past it is written.
fn store(partial: &mut Partial, data: &[u8], job: &Job<'_>) -> Result<(), AttemptError> {
    let total = partial.len() + data.len() as u64;
    let limit = job.limit();
    if total > limit {
        return Err(AttemptError::Permanent(match job.size {
            Some(expected) => FailureReason::SizeMismatch {
                expected,
                actual: total,
            },
            None => FailureReason::TooLarge { limit },
        }));
    }
    partial.append_unhashed(data).map_err(|e| local(partial, e))
}

fn content_length(response: &Response) -> Option<u64> {
    response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// A `Retry-After` given in seconds (the HTTP-date form is treated as absent).
fn retry_after(response: &Response) -> Option<Duration> {
    response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

fn status_text(s: StatusCode) -> String {
    match s.canonical_reason() {
        Some(reason) => format!("{} {reason}", s.as_u16()),
        None => s.as_u16().to_string(),
    }
}

/// `Content-Range: bytes first-last/total` (total may be `*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ContentRange {
    pub first: u64,
    pub last: u64,
    pub total: Option<u64>,
}

impl std::fmt::Display for ContentRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.total {
            Some(t) => write!(f, "bytes {}-{}/{t}", self.first, self.last),
            None => write!(f, "bytes {}-{}/*", self.first, self.last),
        }
    }
}

pub(super) fn parse_content_range(v: &str) -> Option<ContentRange> {
    let spec = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = spec.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let first: u64 = first.trim().parse().ok()?;
    let last: u64 = last.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    if last < first || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some(ContentRange { first, last, total })
}

/// A reqwest error as one line: what happened and its causes.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_string();
    }
    let mut parts = Vec::new();
    for s in crate::error_causes(std::error::Error::source(e)) {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

fn describe_io(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::TimedOut {
        return "timed out (no data within the read timeout)".to_string();
    }
    if let Some(r) = e.get_ref().and_then(|r| r.downcast_ref::<reqwest::Error>()) {
        if r.is_timeout() {
            return "timed out (no data within the read timeout)".to_string();
        }
        return describe(r);
    }
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_below_the_minimum_rate_is_a_stall() {
        // A one-second window that began two seconds ago.
        let mut slow = RateWatch::new(1000, Duration::from_secs(1));
        slow.started = Instant::now()
            .checked_sub(Duration::from_secs(2))
            .expect("a clock two seconds back");
        let two_seconds_ago = slow.started;
        let reason = slow.add(10).expect("10 bytes in two seconds is too slow");
        assert!(
            reason.contains("below the minimum of 1000 bytes per second"),
            "{reason}"
        );
        let mut patient = RateWatch::new(1000, Duration::from_secs(3600));
        assert_eq!(patient.add(1), None, "the window has not ended");
        let mut any = RateWatch::new(0, Duration::ZERO);
        assert_eq!(any.add(1), None, "a minimum of 0 accepts anything");
        let mut fast = RateWatch::new(1000, Duration::from_secs(1));
        fast.started = two_seconds_ago;
        assert_eq!(
            fast.add(5000),
            None,
            "5000 bytes in two seconds is fast enough"
        );
    }

    #[test]
    fn reads_content_range() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some(ContentRange {
                first: 100,
                last: 199,
                total: Some(200)
            })
        );
        assert_eq!(
            parse_content_range("bytes 0-9/*").map(|r| r.total),
            Some(None)
        );
        assert_eq!(parse_content_range("bytes 10-5/20"), None);
        assert_eq!(parse_content_range("bytes 0-20/20"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range("bytes */20"), None);
    }
}
